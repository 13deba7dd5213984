"""``python -m backend.ml.auto_tuner``: Optuna tuning of the ensemble on a walk-forward backtest.

The sprint plan names this path; the code lives in ``backend.ml.research.auto_tuner`` and this module only hands its
entry point on.
"""

from backend.ml.research.auto_tuner import main

if __name__ == "__main__":
    raise SystemExit(main())
