"""The command-line tools' argument parser: a usage error is one line naming the argument, exit 2."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from backend.src.core.errors import EXIT_USAGE


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        print(f"{self.prog.split()[0]}: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)
