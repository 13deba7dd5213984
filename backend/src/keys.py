"""Redis key names. Every key lives under the settings' namespace prefix."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    ns: str = "levibot:"

    def state(self, symbol: str) -> str:
        """Hash: status, pid, started_at, restarts, last_error, position, equity, pnl, ..."""
        return f"{self.ns}engine:{symbol}"

    def heartbeat(self, symbol: str) -> str:
        """String ``<pid>:<generation>:<unix ts>`` with a TTL."""
        return f"{self.ns}hb:{symbol}"

    def lease(self, symbol: str) -> str:
        """String ``<generation>:<owner>:<pid>``; the engine that holds it may trade."""
        return f"{self.ns}lease:{symbol}"

    def generation(self, symbol: str) -> str:
        """Monotonic fencing counter for the symbol's lease."""
        return f"{self.ns}gen:{symbol}"

    @property
    def engines(self) -> str:
        """Set of every symbol that has a state hash."""
        return f"{self.ns}engines"

    @property
    def events(self) -> str:
        """Stream of crash / hung / restart / failed events for alerting."""
        return f"{self.ns}events"

    @property
    def recoveries(self) -> str:
        """List of watchdog recovery times (seconds), newest first, capped."""
        return f"{self.ns}watchdog:recoveries"

    def manager(self, owner: str) -> str:
        """Hash describing a live manager (pid, host, symbols), with a TTL."""
        return f"{self.ns}manager:{owner}"
