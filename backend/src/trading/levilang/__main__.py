"""``python -m backend.src.trading.levilang check FILE [FILE ...]``: validate LeviLang files and print
their compiled rule trees (exit 2 and one line naming the file, line and field on the first error)."""

from __future__ import annotations

import argparse
import sys

from backend.src.core.errors import EXIT_USAGE
from backend.src.core.settings import cli_path
from backend.src.trading.levilang import LeviError, compile_file


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="levilang", description="Check LeviLang strategy files.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    check = sub.add_parser("check", help="validate files and print their compiled rule trees")
    check.add_argument("files", nargs="+", type=cli_path)
    args = ap.parse_args(argv)
    for f in args.files:
        try:
            print(compile_file(f).tree())
        except LeviError as exc:
            print(f"levilang: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except (RecursionError, MemoryError) as exc:  # a limit the checks missed: still one line, exit 2
            print(f"levilang: error: {f}: too large or too deeply nested ({type(exc).__name__})", file=sys.stderr)
            return EXIT_USAGE
    return 0


if __name__ == "__main__":
    sys.exit(main())
