"""Strategy files are hostile input: every case a hostile or careless author can write is refused with
one line naming the limit, exit 2, in bounded time and memory; the compiler is fuzzed."""

from __future__ import annotations

import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backend.src.core.settings import REPO_ROOT
from backend.src.trading.levilang import LeviError, compile_text
from backend.src.trading.levilang.__main__ import main

HEAD = "name: hostile\n"


def balanced(leaves: int) -> str:
    """A sum of ``leaves`` terms as a balanced tree: wide, never deep."""
    return "1" if leaves == 1 else f"({balanced(leaves // 2)}+{balanced(leaves - leaves // 2)})"


CASES = {
    "200k_terms": (HEAD + "entry: " + " + ".join(["close"] * 200_000) + " > 0\n", "MAX_FILE_BYTES"),
    "30k_terms": (HEAD + "entry: " + "+".join(["close"] * 30_000) + " > 0\n", "MAX_EXPR_CHARS"),
    "1500_terms_in_a_flat_chain": (HEAD + "entry: " + "+".join(["1"] * 1_500) + " > 0\n", "MAX_DEPTH"),
    "700_terms_wide_not_deep": (HEAD + "entry: " + balanced(700) + " > 0\n", "MAX_TERMS"),
    "100k_unary_minus": (HEAD + "entry: " + "-" * 100_000 + "close > 0\n", "MAX_EXPR_CHARS"),
    "3k_unary_minus": (HEAD + "entry: " + "-" * 3_000 + "close > 0\n", "MAX_DEPTH"),
    "deep_parentheses": (HEAD + "entry: " + "(" * 250 + "close" + ")" * 250 + " > 0\n", "nested"),
    "deep_calls": (HEAD + "entry: " + "abs(" * 100 + "close" + ")" * 100 + " > 0\n", "MAX_DEPTH"),
    "deep_not": (HEAD + "entry: " + "not " * 500 + "close > 0\n", "MAX_DEPTH"),
    "100k_digit_number": (HEAD + "entry: close > " + "9" * 100_000 + "\n", "MAX_EXPR_CHARS"),
    "4k_digit_number": (HEAD + "entry: close > " + "9" * 3_900 + "\n", "out of range"),
    "huge_float": (HEAD + "entry: close > 1e400\n", "MAX_NUMBER"),
    "ema_1e12": (HEAD + "entry: ema(close, 1e12) > 0\n", "MAX_LENGTH"),
    "200k_params": (HEAD + "params:\n" + "".join(f"  p{i}: {i}\n" for i in range(200_000)) + "entry: close > 0\n",
                    "MAX_FILE_BYTES"),
    "300_params": (HEAD + "params:\n" + "".join(f"  p{i}: {i}\n" for i in range(300)) + "entry: close > 0\n",
                   "MAX_PARAMS"),
    "param_out_of_range": (HEAD + "params:\n  k: 1.0e+300\nentry: close > k\n", "MAX_NUMBER"),
    "long_param_name": (HEAD + "params:\n  " + "p" * 500 + ": 1\nentry: close > 0\n", "MAX_NAME"),
    "many_conditions": (HEAD + "entry:\n" + "  - close > 0\n" * 100, "MAX_CONDITIONS"),
    "alias_bomb": ("name: x\na: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                   "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nentry: close > 0\n", "aliases"),
    "deep_yaml": (HEAD + "entry: close > 0\ndescription: " + "[" * 10_000 + "]" * 10_000 + "\n", "MAX_YAML_DEPTH"),
}
BINARY = bytes(range(256)) * 64


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.timeout(30)
def test_a_hostile_file_gets_one_line_and_exit_2(tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]) -> None:
    text, limit = CASES[case]
    path = tmp_path / f"{case}.levi.yaml"
    path.write_text(text)
    tracemalloc.start()
    try:
        code = main(["check", str(path)])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith(f"levilang: error: {path}"), err
    assert limit in err[0], err[0]
    assert len(err[0]) < 400
    assert peak < 64 * 1024 * 1024, f"{peak / 1e6:.0f} MB to refuse it"


@pytest.mark.parametrize(("data", "expected"), [
    (BINARY, "not UTF-8 text (byte 0x80 at offset 128)"),
    (b"name: x\nentry: close > 0\n# caf\xe9\n", "line 3: not UTF-8 text"),
    (b"\x00\x01\x02name", "not valid YAML"),
    (b"x" * (50 * 1024 * 1024), "MAX_FILE_BYTES"),  # a 50 MB file is not read past the limit
])
@pytest.mark.timeout(30)
def test_bytes_that_are_not_a_strategy(tmp_path: Path, data: bytes, expected: str,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "garbage.levi.yaml"
    path.write_bytes(data)
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0], err


def test_the_real_command_exits_2_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "deep.levi.yaml"
    path.write_text(CASES["3k_unary_minus"][0])
    res = subprocess.run([sys.executable, "-m", "backend.src.trading.levilang", "check", str(path)],  # noqa: S603
                         capture_output=True, text=True, cwd=REPO_ROOT, timeout=60, check=False)
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1 and "MAX_DEPTH" in res.stderr


def test_real_strategies_are_far_below_the_limits() -> None:
    for path in sorted((REPO_ROOT / "backend" / "strategies").glob("*.levi.yaml")):
        assert compile_text(path.read_text(), str(path)).warmup_candles < 10_000


# ---------------------------------------------------------------------------- fuzzing

ATOMS = st.sampled_from(["close", "open", "high", "low", "volume", "prob_up", "1", "2.5", "-3", "1e308", "1e999",
                         "rsi(close)", "ema(close, 20)", "sma(close, 0)", "close[1]", "close[-1]", "'x'", "True"])


def expressions() -> st.SearchStrategy[str]:
    return st.recursive(ATOMS, lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from([" + ", " - ", " * ", " / ", " > ", " < ", " and ", " or ",
                                          " crosses_above ", " @ "]), inner).map("".join),
        inner.map(lambda x: f"({x})"), inner.map(lambda x: f"-{x}"), inner.map(lambda x: f"not {x}"),
        st.tuples(st.sampled_from(["abs", "min", "max", "ema", "highest", "nope"]), inner).map(
            lambda t: f"{t[0]}({t[1]}, 3)"),
    ), max_leaves=40)


@settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(expr=expressions(), timeframe=st.sampled_from(["", "timeframe: 5m\n"]))
def test_fuzzed_expressions_compile_or_are_refused_in_one_line(expr: str, timeframe: str) -> None:
    text = f"name: fuzz\n{timeframe}entry: {expr}\n"
    try:
        compile_text(text)
    except LeviError as exc:
        assert "\n" not in str(exc)


@settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(max_size=400))
def test_fuzzed_files_compile_or_are_refused_in_one_line(text: str) -> None:
    try:
        compile_text(text)
    except LeviError as exc:
        assert "\n" not in str(exc)
