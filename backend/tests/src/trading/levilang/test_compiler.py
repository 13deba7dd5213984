"""LeviLang: every bad input is one error naming the file and line; good files compile to a tree."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from backend.src.core.settings import REPO_ROOT
from backend.src.trading.levilang import LeviError, compile_file, compile_text

EXAMPLES = sorted((REPO_ROOT / "backend" / "strategies").glob("*.levi.yaml"))
GOOD = """levilang: 1
name: t
timeframe: 5m
indicators:
  fast: ema(close, 3)
entry: fast crosses_above sma(close, 5) and close @ 15m > 0
exit: fast < sma(close, 5)
"""


def error(text: str) -> str:
    with pytest.raises(LeviError) as info:
        compile_text(text, "s.levi.yaml")
    return str(info.value)


def test_the_shipped_examples_compile() -> None:
    assert len(EXAMPLES) == 4
    for path in EXAMPLES:
        c = compile_file(path)
        assert c.warmup_candles > 0 and len(c.source_hash) == 16


@pytest.mark.parametrize(("text", "expected"), [
    ("name: t\nentry: [close > 1\n", ": not valid YAML"),
    ("name: t\nentry: foo(close) > 1\n", "line 2: unknown indicator `foo`"),
    ("name: t\nentry: close > \"abc\"\n", "line 2: `'abc'` is not a number"),
    ("name: t\nentry: close[-1] > close\n", "line 2: `close[-1]` looks into the future"),
    ("name: t\ntimeframe: 5m\nentry: close @ 7m > 1\n", "line 3: timeframe 7m is not a multiple"),
    ("name: t\nentry: close @ 1h > 1\n", "needs the file's `timeframe:`"),
    ("name: t\nentry: close\n", "line 2: `close` is a number; a rule needs a condition"),
    ("name: t\nentry: sma(close > 1, 5) > 1\n", "is a condition where a number is needed"),
    ("name: t\nentyr: close > 1\nentry: close > 1\n", "line 2: unknown key `entyr`"),
    ("name: t\nentry: close > 1\nsizing: {method: martingale}\n", "line 3: `sizing.method`"),
    ("name: t\nentry: __import__('os') > 1\n", "unknown indicator `__import__`"),
    ("name: t\nentry: close.real > 1\n", "not LeviLang"),
    ("name: t\nentry: bogus > 1\n", "unknown name `bogus`"),
    ("name: t\nentry: sma(close, 0) > 1\n", "lengths are whole numbers"),
    ("entry: close > 1\n", "`name` is missing"),
])
def test_bad_files_name_the_line(text: str, expected: str) -> None:
    msg = error(text)
    assert msg.startswith("s.levi.yaml: ")
    assert expected in msg, msg


def test_argument_count_error_matches_the_reference() -> None:
    text = "\n".join(["name: t"] + [f"# {i}" for i in range(10)] + ["entry: rsi(close, 14, 3) > 1", ""])
    assert error(text) == "s.levi.yaml: line 12: `rsi` takes 1 or 2 arguments, got 3"


def test_tree_and_warmup_follow_the_graph() -> None:
    c = compile_text(GOOD)
    tree = c.tree()
    assert "crosses_above(ema(close, 3), sma(close, 5))" in tree and "close@15m" in tree
    # ema(3) has infinite memory: 30 bars until its seed weighs under 1e-9 (0.5 ** 30), the cross one
    # more and the first value; sma(5) needs 5 candles; close @ 15m one closed 15m bar (3) plus alignment (3)
    assert c.warmup_candles == 32
    longer = compile_text(GOOD.replace("sma(close, 5) and", "sma(close, 60) and"))
    assert longer.warmup_candles == 61


def test_the_hash_ignores_comments_but_not_rules() -> None:
    a, b = compile_text(GOOD), compile_text("# a comment\n" + GOOD)
    assert a.source_hash == b.source_hash
    assert compile_text(GOOD.replace("ema(close, 3)", "ema(close, 4)")).source_hash != a.source_hash


def test_check_command(tmp_path: Path) -> None:
    ok = subprocess.run([sys.executable, "-m", "backend.src.trading.levilang", "check", str(EXAMPLES[0])],
                        capture_output=True, text=True, cwd=REPO_ROOT, timeout=60)
    assert ok.returncode == 0 and "entry:" in ok.stdout
    bad = tmp_path / "bad.levi.yaml"
    bad.write_text("name: x\nentry: close > 'abc'\n")
    res = subprocess.run([sys.executable, "-m", "backend.src.trading.levilang", "check", str(bad)],
                         capture_output=True, text=True, cwd=REPO_ROOT, timeout=60)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [f"levilang: error: {bad}: line 2: `'abc'` is not a number "
                                               "(text and booleans are not values)"]
