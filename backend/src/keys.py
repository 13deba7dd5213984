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

    @property
    def managers_pattern(self) -> str:
        return f"{self.ns}manager:*"

    def commands(self, owner: str) -> str:
        """Stream of operator commands for one manager (consumer group ``manager``)."""
        return f"{self.ns}commands:{owner}"

    def command_result(self, command_id: str) -> str:
        """Hash: status (done | error | expired), detail, done_at. TTL one day."""
        return f"{self.ns}command:{command_id}"

    def config(self, symbol: str) -> str:
        """Hash: version, json — the engine config the manager wants applied (hot reload)."""
        return f"{self.ns}config:{symbol}"

    @property
    def recovery_histogram(self) -> str:
        """Hash: cumulative-free bucket counts ``le:<bound>``, plus ``sum`` and ``count``."""
        return f"{self.ns}watchdog:recovery_hist"

    @property
    def global_stop(self) -> str:
        """Set while the portfolio-wide stop is active (value: reason)."""
        return f"{self.ns}risk:global_stop"
