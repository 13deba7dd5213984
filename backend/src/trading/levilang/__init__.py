"""LeviLang: strategies as declarative YAML (``*.levi.yaml``), compiled to a ``Strategy``, never
evaluated as code. Reference: docs/LEVILANG.md."""

from backend.src.trading.levilang.errors import LeviError
from backend.src.trading.levilang.spec import Compiled, compile_file, compile_text

__all__ = ["Compiled", "LeviError", "compile_file", "compile_text"]
