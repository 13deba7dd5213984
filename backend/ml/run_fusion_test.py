"""``python -m backend.ml.run_fusion_test``: the production model through the engine's
ensemble strategy, candle by candle.

The sprint plan names this path; the code lives in ``backend.ml.research.fusion_check`` and this module only hands its
entry point on.
"""

from backend.ml.research.fusion_check import main

if __name__ == "__main__":
    raise SystemExit(main())
