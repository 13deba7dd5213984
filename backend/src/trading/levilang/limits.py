"""How big a LeviLang file may be. Strategy files are input from outside (a dashboard upload, a file an
operator was sent, a hot reload): every one of these bounds is checked before the work it guards, so a
hostile file is refused with one line in bounded time and memory, and the compiler never recurses
deeper than ``MAX_DEPTH``. Each error names the limit it hit.

The bounds are far above any real strategy (the examples use a few hundred bytes, a depth below 10
and a few dozen terms per expression)."""

from __future__ import annotations

import ast
import math

from backend.src.trading.levilang.errors import LeviError

MAX_FILE_BYTES = 256 * 1024
MAX_EXPR_CHARS = 4_000  # one expression (an indicator or one condition)
MAX_DEPTH = 64  # nesting of an expression's syntax tree (parentheses, operators, calls)
MAX_TERMS = 1_000  # syntax nodes in one expression
MAX_NODES = 10_000  # compiled graph nodes in a whole file
MAX_PARAMS = 256
MAX_INDICATORS = 256
MAX_CONDITIONS = 64  # in one entry/exit list
MAX_NAME = 64  # characters of a param or indicator name
MAX_LENGTH = 10_000  # bars: an indicator's length, an offset
MAX_NUMBER = 1e15  # magnitude of any number in a file (prices, thresholds)
MAX_YAML_DEPTH = 32  # nesting of the YAML document itself


def check_size(data: bytes | str, where: str) -> None:
    n = len(data.encode() if isinstance(data, str) else data)
    if n > MAX_FILE_BYTES:
        raise LeviError(where, None, f"the file is {n} bytes; at most {MAX_FILE_BYTES} (MAX_FILE_BYTES)")


def decode(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise LeviError(where, line, f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})") from None


def check_expression(text: str, where: str, line: int) -> None:
    """Before Python's parser sees it (within this length the parser answers at once, with a tree, a
    SyntaxError or a RecursionError the compiler turns into a MAX_DEPTH error)."""
    if len(text) > MAX_EXPR_CHARS:
        raise LeviError(where, line, f"an expression of {len(text)} characters; at most {MAX_EXPR_CHARS} "
                                     "(MAX_EXPR_CHARS)")


def check_tree(tree: ast.AST, where: str, line: int) -> None:
    """Depth and size of a parsed expression, walked without recursion."""
    stack = [(tree, 1)]
    terms = 0
    while stack:
        node, depth = stack.pop()
        terms += 1
        if depth > MAX_DEPTH:
            raise LeviError(where, line, f"an expression nested more than {MAX_DEPTH} deep (MAX_DEPTH)")
        if terms > MAX_TERMS:
            raise LeviError(where, line, f"an expression of more than {MAX_TERMS} terms (MAX_TERMS)")
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float) \
                and not isinstance(node.value, bool):
            value = node.value if isinstance(node.value, float) or abs(node.value) <= MAX_NUMBER else math.inf
            shown = str(node.value)
            check_number(float(value), where, line, shown if len(shown) <= 20 else f"{shown[:20]}...")
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))


def check_number(value: float, where: str, line: int | None, shown: str) -> None:
    if not math.isfinite(value) or abs(value) > MAX_NUMBER:
        raise LeviError(where, line, f"the number {shown} is out of range (finite, at most {MAX_NUMBER:g} "
                                     "in magnitude: MAX_NUMBER)")


def check_count(what: str, n: int, limit: int, name: str, where: str, line: int | None) -> None:
    if n > limit:
        raise LeviError(where, line, f"{n} {what}; at most {limit} ({name})")
