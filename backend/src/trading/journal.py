"""Where a trader writes what it does before it takes effect: the journal. An engine's is a file,
fsynced (``engine.journal.FileJournal``); a backtest's lives in memory (``MemoryJournal``). Same
entries, same order: that is what makes a backtest's fills comparable one for one with an engine's."""

from __future__ import annotations

from typing import Any, Protocol


class Journal(Protocol):
    entries: list[dict[str, Any]]

    def append(self, entry: dict[str, Any], *, gen: int) -> dict[str, Any]:
        """Record ``entry`` (durably, for the engine) and return it with ``seq`` and ``gen`` set."""

    def of_type(self, kind: str) -> list[dict[str, Any]]: ...


class MemoryJournal:
    """The backtester's journal: the file journal's semantics without a file."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []
        self.seq = 0

    def append(self, entry: dict[str, Any], *, gen: int) -> dict[str, Any]:
        self.seq += 1
        full = {"seq": self.seq, "gen": gen, **entry}
        self.entries.append(full)
        return full

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.entries if e["type"] == kind]
