"""A ``*.levi.yaml`` file → ``Compiled``: every key checked, every expression compiled, errors with
the file, line and field; the warm-up length derived from the indicator graph."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from backend.src.trading.levilang import limits
from backend.src.trading.levilang.compiler import ExprCompiler, Graph, timeframe_ms
from backend.src.trading.levilang.errors import LeviError
from backend.src.trading.levilang.nodes import Node

KEYS = ("levilang", "name", "description", "timeframe", "params", "indicators", "entry", "exit", "entry_short",
        "exit_short", "sizing",
        "stop_loss_pct", "take_profit_pct", "trailing_stop_pct", "cooldown_bars", "min_hold_bars")
SIZING = {"fixed_fraction": "fraction", "kelly": "fraction", "fixed_quote": "amount"}


@dataclass
class Compiled:
    path: str
    name: str
    source_hash: str
    graph: Graph
    entry: Node
    exit: Node | None
    entry_short: Node | None  # shorts (perpetual symbols only): the same rules, the other side
    exit_short: Node | None
    sizing: tuple[str, float]
    stop_loss_pct: float | None
    take_profit_pct: float | None
    trailing_stop_pct: float | None
    cooldown_bars: int
    min_hold_bars: int
    warmup_candles: int
    indicators: dict[str, Node]

    def tree(self) -> str:
        tf = f"{self.graph.base_ms // 60_000}m" if self.graph.base_ms else "the engine's"
        lines = [f"strategy {self.name}  (hash {self.source_hash}, timeframe {tf}, warm-up {self.warmup_candles} "
                 "candles)"]
        lines += [f"  {k} = {v.tree()}" for k, v in self.indicators.items()]
        lines.append(f"  entry: {self.entry.tree()}")
        lines.append(f"  exit:  {self.exit.tree() if self.exit is not None else '(none: exits by stops only)'}")
        if self.entry_short is not None:
            lines.append(f"  entry_short: {self.entry_short.tree()}")
            lines.append(f"  exit_short:  {self.exit_short.tree() if self.exit_short is not None else '(stops only)'}")
        lines.append(f"  sizing: {self.sizing[0]} {self.sizing[1]:g}")
        for k in ("stop_loss_pct", "take_profit_pct", "trailing_stop_pct"):
            if getattr(self, k) is not None:
                lines.append(f"  {k}: {getattr(self, k):g}")
        lines.append(f"  cooldown {self.cooldown_bars} bars, minimum hold {self.min_hold_bars} bars")
        return "\n".join(lines)


def compile_file(path: Path) -> Compiled:
    where = str(path)
    try:
        with path.open("rb") as fh:
            data = fh.read(limits.MAX_FILE_BYTES + 1)  # never more than the limit is read
    except OSError as exc:
        raise LeviError(where, None, f"cannot read: {exc.strerror}") from None
    limits.check_size(data, where)
    return compile_text(limits.decode(data, where), where)


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def compile_text(text: str, where: str = "<text>") -> Compiled:
    limits.check_size(text, where)
    try:
        _check_yaml_shape(text, where)
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = str(getattr(exc, "problem", None) or exc).splitlines()[0][:200]
        raise LeviError(where, mark.line + 1 if mark else None, f"not valid YAML: {problem}") from None
    if not isinstance(root, yaml.MappingNode) or not isinstance(data, dict):
        raise LeviError(where, None, "a LeviLang file is a mapping (name:, entry:, exit:, ...)")
    nodes = {str(k.value): (k, v) for k, v in root.value}
    _check_keys(data, nodes, where)

    def line(key: str) -> int:
        return _line(nodes[key][1])

    def num(key: str, lo: float, hi: float, *, whole: bool = False) -> float | None:
        return _number(data, key, lo, hi, whole, where, line)

    if data.get("levilang", 1) != 1:
        raise LeviError(where, line("levilang"), "`levilang`: this engine reads version 1")
    base_ms = None
    if "timeframe" in data:
        base_ms = timeframe_ms(str(data["timeframe"]))
        if base_ms is None:
            raise LeviError(where, line("timeframe"), f"`timeframe`: {data['timeframe']!r} is not one like 5m, 1h")
    consts = _params(data, where, line)
    graph = Graph(base_ms)
    names = _indicators(data, nodes, graph, where, line, consts)

    def rule(key: str) -> Node:
        raw = data[key]
        parts = raw if isinstance(raw, list) else [raw]
        if not parts or not all(isinstance(p, str) for p in parts):
            raise LeviError(where, line(key), f"`{key}` is a condition or a list of conditions (all must hold)")
        limits.check_count(f"conditions in `{key}`", len(parts), limits.MAX_CONDITIONS, "MAX_CONDITIONS", where,
                           line(key))
        comp = ExprCompiler(graph, where, line(key), names, consts)
        compiled = [comp.compile(p, want_bool=True) for p in parts]
        return compiled[0] if len(compiled) == 1 else comp.op(0, "and", tuple(compiled))

    entry = rule("entry")
    exit_ = rule("exit") if "exit" in data else None
    entry_short = rule("entry_short") if "entry_short" in data else None
    if "exit_short" in data and entry_short is None:
        raise LeviError(where, line("exit_short"), "`exit_short` without `entry_short`: nothing opens a short")
    exit_short = rule("exit_short") if "exit_short" in data else None
    sizing = _sizing(data, where, line)
    warm = _warmup(graph)
    canonical = json.dumps(data, sort_keys=True, default=str)
    return Compiled(
        path=where, name=str(data["name"]), source_hash=hashlib.sha256(canonical.encode()).hexdigest()[:16],
        graph=graph, entry=entry, exit=exit_, entry_short=entry_short, exit_short=exit_short, sizing=sizing,
        stop_loss_pct=num("stop_loss_pct", 0.01, 99), take_profit_pct=num("take_profit_pct", 0.01, 10_000),
        trailing_stop_pct=num("trailing_stop_pct", 0.01, 99),
        cooldown_bars=int(num("cooldown_bars", 0, 100_000, whole=True) or 0),
        min_hold_bars=int(num("min_hold_bars", 0, 100_000, whole=True) or 0),
        warmup_candles=warm, indicators=names)


def _check_yaml_shape(text: str, where: str) -> None:
    """Before anything is built: no anchors or aliases (a few lines of them expand to gigabytes), and no
    nesting deeper than MAX_YAML_DEPTH (PyYAML's composer recurses on it). Reads events, never recurses."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        line = event.start_mark.line + 1 if event.start_mark is not None else None
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise LeviError(where, line, "YAML anchors and aliases (&, *) are not allowed in a LeviLang file")
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > limits.MAX_YAML_DEPTH:
                raise LeviError(where, line, f"YAML nested more than {limits.MAX_YAML_DEPTH} deep (MAX_YAML_DEPTH)")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _check_keys(data: dict[str, Any], nodes: dict[str, Any], where: str) -> None:
    for key, (k, _) in nodes.items():
        if key not in KEYS:
            raise LeviError(where, _line(k), f"unknown key `{key}` (known: {', '.join(KEYS)})")
    for need in ("name", "entry"):
        if need not in data:
            raise LeviError(where, None, f"`{need}` is missing")


def _number(data: dict[str, Any], key: str, lo: float, hi: float, whole: bool, where: str, line: Any) -> float | None:
    v = data.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or not lo <= v <= hi \
            or (whole and v != int(v)):
        kind = "a whole number" if whole else "a number"
        raise LeviError(where, line(key), f"`{key}` must be {kind} from {lo:g} to {hi:g}, got {v!r}")
    return float(v)


def _indicators(data: dict[str, Any], nodes: dict[str, Any], graph: Graph, where: str, line: Any,
                consts: dict[str, float]) -> dict[str, Node]:
    names: dict[str, Node] = {}
    if "indicators" not in data:
        return names
    if not isinstance(data["indicators"], dict):
        raise LeviError(where, line("indicators"), "`indicators` maps names to expressions")
    limits.check_count("indicators", len(data["indicators"]), limits.MAX_INDICATORS, "MAX_INDICATORS", where,
                       line("indicators"))
    for k_node, v_node in nodes["indicators"][1].value:
        nm = str(k_node.value)
        if not nm.isidentifier() or nm in consts or len(nm) > limits.MAX_NAME:
            raise LeviError(where, _line(k_node), f"indicators.{nm[:limits.MAX_NAME]}: not a usable name")
        expr = ExprCompiler(graph, where, _line(v_node), names, consts)
        names[nm] = expr.compile(str(v_node.value), want_bool=False)
    return names


def _warmup(graph: Graph) -> int:
    """Base candles before every node has a value: a node on a higher timeframe needs its bars'
    worth of base candles, plus one bar for alignment."""
    warm = 0
    for ctx in graph.contexts.values():
        for n in ctx.nodes:
            ratio = n.tf_ms // graph.base_ms if (n.tf_ms and graph.base_ms) else 1
            warm = max(warm, (n.warmup + 1) * ratio + (ratio if n.tf_ms else 0))
    return warm


def _params(data: dict[str, Any], where: str, line: Any) -> dict[str, float]:
    raw = data.get("params") or {}
    if not isinstance(raw, dict):
        raise LeviError(where, line("params"), "`params` maps names to numbers")
    if not raw:
        return {}
    limits.check_count("params", len(raw), limits.MAX_PARAMS, "MAX_PARAMS", where, line("params"))
    out = {}
    for k, v in raw.items():
        shown = str(k)[:limits.MAX_NAME]
        if not str(k).isidentifier() or len(str(k)) > limits.MAX_NAME:
            raise LeviError(where, line("params"), f"params.{shown}: a name of letters, digits and _ "
                                                   f"(at most {limits.MAX_NAME}: MAX_NAME)")
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise LeviError(where, line("params"), f"params.{shown}: a number, got {str(v)[:40]!r}")
        limits.check_number(float(v), where, line("params"), f"params.{shown}")
        out[str(k)] = float(v)
    return out


def _sizing(data: dict[str, Any], where: str, line: Any) -> tuple[str, float]:
    raw = data.get("sizing", {"method": "fixed_fraction", "fraction": 1.0})
    if not isinstance(raw, dict) or raw.get("method") not in SIZING:
        raise LeviError(where, line("sizing") if "sizing" in data else None,
                        f"`sizing.method`: one of {', '.join(SIZING)}")
    method = str(raw["method"])
    field = SIZING[method]
    extra = set(raw) - {"method", field}
    if extra:
        raise LeviError(where, line("sizing"), f"`sizing`: unknown field {sorted(extra)[0]} for {method}")
    v = raw.get(field, 1.0)
    hi = 1e12 if method == "fixed_quote" else 1.0
    if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v <= hi:
        raise LeviError(where, line("sizing"), f"`sizing.{field}`: a number in (0, {hi:g}], got {v!r}")
    return method, float(v)
