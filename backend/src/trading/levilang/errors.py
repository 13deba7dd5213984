"""A LeviLang error names the file, the line and the field."""

from __future__ import annotations


class LeviError(ValueError):
    def __init__(self, where: str, line: int | None, msg: str) -> None:
        self.where, self.line, self.msg = where, line, msg
        super().__init__(f"{where}: line {line}: {msg}" if line is not None else f"{where}: {msg}")
