"""LeviLang text → a rule graph. Expressions are read with Python's expression parser and only a
whitelist of node types compiles (names, numbers, arithmetic, comparisons, and/or/not, calls of
known indicators, ``x[k]`` offsets, ``@ 1h``); nothing is ever evaluated as code.

Surface syntax over Python's: ``a crosses_above b`` / ``a crosses_below b`` (also as functions) and
``expr @ 1h`` (the expression on the 1-hour bars resampled from the engine's candles).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

from backend.src.trading.levilang import limits
from backend.src.trading.levilang.errors import LeviError
from backend.src.trading.levilang.nodes import Const, Context, Cross, Field, Indicator, Lag, Node, Op

PRICE = ("open", "high", "low", "close", "volume")
MODEL = ("prob_up", "confidence")
FEEDS = ("sentiment", "funding_rate", "onchain_netflow", "onchain_active_addresses", "onchain_whale_transactions")
POSITION = ("bars_held", "bars_since_exit", "unrealized_pct", "in_position", "in_long", "in_short", "side")
CONDITIONS = ("in_position", "in_long", "in_short")
# name: (minimum args, maximum args, defaults for the trailing ones); the first argument is a series
INDICATORS: dict[str, tuple[int, int, tuple[float, ...]]] = {
    "sma": (2, 2, ()), "ema": (2, 2, ()), "rsi": (1, 2, (14,)), "atr": (0, 1, (14,)),
    "bb_upper": (2, 3, (2.0,)), "bb_lower": (2, 3, (2.0,)), "bb_mid": (2, 3, (2.0,)),
    "macd": (1, 4, (12, 26, 9)), "macd_signal": (1, 4, (12, 26, 9)), "macd_hist": (1, 4, (12, 26, 9)),
    "returns": (1, 2, (1,)), "volatility": (2, 2, ()), "zscore": (2, 2, ()),
    "highest": (2, 2, ()), "lowest": (2, 2, ()), "volume_z": (1, 1, ()),
}
MATH = {"abs": (1, 1), "min": (2, 8), "max": (2, 8)}
TF_RE = re.compile(r"^([1-9]\d{0,4})([mhdw])$")
UNIT_MS = {"m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
BINOPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
CMPOPS = {ast.Gt: ">", ast.GtE: ">=", ast.Lt: "<", ast.LtE: "<=", ast.Eq: "==", ast.NotEq: "!="}


def timeframe_ms(text: str) -> int | None:
    m = TF_RE.match(text.strip())
    return int(m.group(1)) * UNIT_MS[m.group(2)] if m else None


@dataclass
class Graph:
    """Nodes per context, shared sub-expressions compiled once."""

    base_ms: int | None
    contexts: dict[int, Context] = field(default_factory=dict)
    memo: dict[tuple[int, str], Node] = field(default_factory=dict)
    uses: set[str] = field(default_factory=set)

    def add(self, node: Node, key: str) -> Node:
        mk = (node.tf_ms, key)
        if mk in self.memo:
            return self.memo[mk]
        self.contexts.setdefault(node.tf_ms, Context(node.tf_ms)).nodes.append(node)
        self.memo[mk] = node
        return node


class ExprCompiler:
    def __init__(self, graph: Graph, where: str, line: int, names: dict[str, Node], consts: dict[str, float]) -> None:
        self.g, self.where, self.line, self.names, self.consts = graph, where, line, names, consts

    def fail(self, node: ast.AST | None, msg: str) -> LeviError:
        extra = (getattr(node, "lineno", 1) - 1) if node is not None else 0
        return LeviError(self.where, self.line + extra, msg)

    def compile(self, text: str, want_bool: bool) -> Node:
        limits.check_expression(text, self.where, self.line)
        src = re.sub(r"\bcrosses_above\b", ">>", text)
        src = re.sub(r"\bcrosses_below\b", "<<", src)
        src = re.sub(r"@\s*([0-9]+[a-zA-Z]+)\b", r"@ '\1'", src)
        try:
            tree = ast.parse(src.strip(), mode="eval")
        except SyntaxError as exc:
            raise LeviError(self.where, self.line + (exc.lineno or 1) - 1,
                            f"cannot read `{text.strip()[:80]}`: {exc.msg}") from None
        except (RecursionError, MemoryError):
            raise LeviError(self.where, self.line, f"an expression nested more than {limits.MAX_DEPTH} deep "
                                                   "(MAX_DEPTH)") from None
        limits.check_tree(tree, self.where, self.line)  # the compiler below recurses at most MAX_DEPTH deep
        node, is_bool = self.expr(tree.body, 0)
        limits.check_count("compiled nodes", sum(len(c.nodes) for c in self.g.contexts.values()),
                           limits.MAX_NODES, "MAX_NODES", self.where, self.line)
        if want_bool and not is_bool:
            raise self.fail(tree.body, f"`{text.strip()}` is a number; a rule needs a condition (e.g. `x > y`)")
        if not want_bool and is_bool:
            raise self.fail(tree.body, f"`{text.strip()}` is a condition; a number is needed here")
        return node

    def _num(self, n: ast.AST, tf: int) -> Node:
        node, is_bool = self.expr(n, tf)
        if is_bool:
            raise self.fail(n, f"`{ast.unparse(n)}` is a condition where a number is needed")
        return node

    def _cond(self, n: ast.AST, tf: int) -> Node:
        node, is_bool = self.expr(n, tf)
        if not is_bool:
            raise self.fail(n, f"`{ast.unparse(n)}` is a number where a condition is needed")
        return node

    def op(self, tf: int, kind: str, deps: tuple[Node, ...]) -> Node:
        return self.g.add(Op(tf, kind, deps), f"{kind}({','.join(str(id(d)) for d in deps)})")

    def expr(self, n: ast.AST, tf: int) -> tuple[Node, bool]:
        if isinstance(n, ast.Constant):
            if isinstance(n.value, bool) or not isinstance(n.value, int | float):
                raise self.fail(n, f"`{ast.unparse(n)}` is not a number (text and booleans are not values)")
            return Const(float(n.value)), False
        if isinstance(n, ast.Name):
            return self.name(n, tf)
        if isinstance(n, ast.BinOp):
            return self.binop(n, tf)
        if isinstance(n, ast.UnaryOp) and isinstance(n.op, ast.USub):
            return self.op(tf, "neg", (self._num(n.operand, tf),)), False
        if isinstance(n, ast.UnaryOp) and isinstance(n.op, ast.Not):
            return self.op(tf, "not", (self._cond(n.operand, tf),)), True
        if isinstance(n, ast.BoolOp):
            kind = "and" if isinstance(n.op, ast.And) else "or"
            return self.op(tf, kind, tuple(self._cond(v, tf) for v in n.values)), True
        if isinstance(n, ast.Compare):
            return self.compare(n, tf), True
        if isinstance(n, ast.Subscript):
            return self.offset(n, tf)
        if isinstance(n, ast.Call):
            return self.call(n, tf)
        raise self.not_levilang(n)

    def not_levilang(self, n: ast.AST) -> LeviError:
        return self.fail(n, f"`{ast.unparse(n)}`: not LeviLang (allowed: numbers, names, + - * /, comparisons, "
                            "and/or/not, indicator calls, x[k], @ 1h)")

    def binop(self, n: ast.BinOp, tf: int) -> tuple[Node, bool]:
        if isinstance(n.op, ast.MatMult):
            return self.resampled(n, tf)
        if isinstance(n.op, ast.RShift | ast.LShift):
            return self.cross(n.left, n.right, isinstance(n.op, ast.RShift), tf), True
        if type(n.op) in BINOPS:
            return self.op(tf, BINOPS[type(n.op)], (self._num(n.left, tf), self._num(n.right, tf))), False
        raise self.not_levilang(n)

    def compare(self, n: ast.Compare, tf: int) -> Node:
        parts, left = [], self._num(n.left, tf)
        for cmp, right_ast in zip(n.ops, n.comparators, strict=True):
            if type(cmp) not in CMPOPS:
                raise self.fail(n, f"`{ast.unparse(n)}`: unsupported comparison")
            right = self._num(right_ast, tf)
            parts.append(self.op(tf, CMPOPS[type(cmp)], (left, right)))
            left = right
        return parts[0] if len(parts) == 1 else self.op(tf, "and", tuple(parts))

    def name(self, n: ast.Name, tf: int) -> tuple[Node, bool]:
        nm = n.id
        if nm in self.consts:
            return Const(self.consts[nm]), False
        if nm in self.names:
            node = self.names[nm]
            if tf and node.tf_ms != tf:
                raise self.fail(n, f"`{nm}` is defined on another timeframe; write `@` around the whole expression")
            return node, False
        if nm in ("true", "false", "True", "False"):
            raise self.fail(n, f"`{nm}` is not a condition; compare values instead")
        if nm in PRICE or (not tf and nm in MODEL + FEEDS + POSITION):
            self.g.uses.add(nm)
            return self.g.add(Field(tf, nm), nm), nm in CONDITIONS
        if nm in MODEL + FEEDS + POSITION:
            raise self.fail(n, f"`{nm}` exists on the engine's timeframe only, not inside `@`")
        raise self.fail(n, f"unknown name `{nm}` (prices: {', '.join(PRICE)}; model: {', '.join(MODEL)}; "
                           f"feeds: {', '.join(FEEDS)}; position: {', '.join(POSITION)}; or an indicator/param)")

    def resampled(self, n: ast.BinOp, tf: int) -> tuple[Node, bool]:
        if tf:
            raise self.fail(n, "`@` inside `@`: give one timeframe per expression")
        if not (isinstance(n.right, ast.Constant) and isinstance(n.right.value, str)):
            raise self.fail(n, "`@` takes a timeframe like 15m, 1h, 4h, 1d")
        ms = timeframe_ms(n.right.value)
        if ms is None:
            raise self.fail(n, f"`{n.right.value}` is not a timeframe (e.g. 15m, 1h, 4h, 1d)")
        base = self.g.base_ms
        if base is None:
            raise self.fail(n, "`@` needs the file's `timeframe:` (the engine's candle timeframe, e.g. 5m)")
        if ms % base or ms <= base:
            raise self.fail(n, f"timeframe {n.right.value} is not a multiple of the strategy's timeframe "
                               f"({base // 60_000}m)")
        return self.expr(n.left, ms)

    def cross(self, a: ast.AST, b: ast.AST, above: bool, tf: int) -> Node:
        left, right = self._num(a, tf), self._num(b, tf)
        kind = "above" if above else "below"
        return self.g.add(Cross(tf, left, right, above), f"cross_{kind}({id(left)},{id(right)})")

    def offset(self, n: ast.Subscript, tf: int) -> tuple[Node, bool]:
        k = n.slice
        neg = isinstance(k, ast.UnaryOp) and isinstance(k.op, ast.USub)
        if neg or not (isinstance(k, ast.Constant) and isinstance(k.value, int) and not isinstance(k.value, bool)):
            if neg:
                raise self.fail(n, f"`{ast.unparse(n)}` looks into the future: offsets count bars back and are ≥ 0")
            raise self.fail(n, f"`{ast.unparse(n)}`: an offset is a whole number of bars back, like close[1]")
        if k.value > limits.MAX_LENGTH:
            raise self.fail(n, f"`{ast.unparse(n)}`: at most {limits.MAX_LENGTH} bars back (MAX_LENGTH)")
        x, is_bool = self.expr(n.value, tf)
        if k.value == 0:
            return x, is_bool
        return self.g.add(Lag(tf, x, k.value), f"lag({id(x)},{k.value})"), is_bool

    def call(self, n: ast.Call, tf: int) -> tuple[Node, bool]:
        if not isinstance(n.func, ast.Name) or n.keywords:
            raise self.fail(n, f"`{ast.unparse(n)}`: call indicators by name with plain arguments, like ema(close, 20)")
        fn, args = n.func.id, n.args
        if fn in ("crosses_above", "crosses_below"):
            if len(args) != 2:
                raise self.fail(n, f"`{fn}` takes 2 arguments, got {len(args)}")
            return self.cross(args[0], args[1], fn == "crosses_above", tf), True
        if fn in MATH:
            return self.math(n, fn, tf), False
        return self.indicator(n, fn, tf), False

    def math(self, n: ast.Call, fn: str, tf: int) -> Node:
        lo, hi = MATH[fn]
        if not lo <= len(n.args) <= hi:
            raise self.fail(n, f"`{fn}` takes {lo} to {hi} arguments, got {len(n.args)}")
        return self.op(tf, fn, tuple(self._num(a, tf) for a in n.args))

    def indicator(self, n: ast.Call, fn: str, tf: int) -> Node:
        args = n.args
        if fn not in INDICATORS:
            raise self.fail(n, f"unknown indicator `{fn}` (known: {', '.join(sorted(INDICATORS))})")
        lo, hi, defaults = INDICATORS[fn]
        if not lo <= len(args) <= hi:
            want = f"{lo}" if lo == hi else (f"{lo} or {hi}" if hi == lo + 1 else f"{lo} to {hi}")
            raise self.fail(n, f"`{fn}` takes {want} argument{'s' if hi > 1 else ''}, got {len(args)}")
        in_call = fn not in ("atr", "volume_z")  # these read the bar's own fields
        series: Node | None = None
        if fn == "volume_z":
            series, fn = self._num(ast.Name("volume"), tf), "zscore"
        elif in_call:
            series = self._num(args[0], tf)
        params = [self.number(a, fn) for a in (args[1:] if in_call else args)]
        missing = hi - (1 if in_call else 0) - len(params)
        if missing > 0:
            params += list(defaults[len(defaults) - missing:])
        if any(p <= 0 for p in params) or any(p != int(p) for p in params[:1]):
            raise self.fail(n, f"`{ast.unparse(n)}`: lengths are whole numbers ≥ 1")
        if any(p > limits.MAX_LENGTH for p in params):
            raise self.fail(n, f"`{ast.unparse(n)}`: lengths of at most {limits.MAX_LENGTH} bars (MAX_LENGTH)")
        if fn.startswith("macd") and not params[0] < params[1]:
            raise self.fail(n, f"`{ast.unparse(n)}`: the fast length must be below the slow one")
        key = f"{fn}({id(series) if series is not None else ''},{params})"
        return self.g.add(Indicator(tf, fn, series, tuple(params)), key)

    def number(self, a: ast.AST, fn: str) -> float:
        if isinstance(a, ast.Name) and a.id in self.consts:
            return self.consts[a.id]
        if isinstance(a, ast.Constant) and isinstance(a.value, int | float) and not isinstance(a.value, bool):
            return float(a.value)
        raise self.fail(a, f"`{fn}`: `{ast.unparse(a)}` must be a number or a param")
