"""``python -m backend.risk.test_global_stop``: the global daily-loss stop drilled against a
real Redis and real engines. A CLI, not a test module (pytest is told to skip it).

The sprint plan names this path; the code lives in ``backend.risk.global_stop_drill`` and this module only hands its
entry point on.
"""

from backend.risk.global_stop_drill import main

if __name__ == "__main__":
    raise SystemExit(main())
