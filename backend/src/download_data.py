"""``python -m backend.src.download_data``: the OHLCV downloader's command (see ``market.download``)."""

from __future__ import annotations

import sys

from backend.src.market.download import main

if __name__ == "__main__":
    sys.exit(main())
