"""``python -m backend.risk.test_manager``: the risk manager's sizing and portfolio limits
against a real Redis. A CLI, not a test module (pytest is told to skip it).

The sprint plan names this path; the code lives in ``backend.risk.manager_drill`` and this module only hands its
entry point on.
"""

from backend.risk.manager_drill import main

if __name__ == "__main__":
    raise SystemExit(main())
