"""``python -m backend.ml.parity SYMBOL [--ohlcv FILE] [--json]``: why an engine's PnL differs from its backtest.

The code lives in ``backend.ml.research.parity``; this module only hands its entry point on.
"""

from backend.ml.research.parity import main

if __name__ == "__main__":
    raise SystemExit(main())
