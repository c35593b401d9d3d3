"""What the service uses of the watchdog's memory between ticks: `WatchdogBackend`.

Two stores satisfy it: `fleet.watchdog.store.WatchdogStore` (SQLite tables in `<state_dir>/fleet.db`,
or in the fallback file while the ledger is unusable) and `fleet.watchdog.pgstore.PgWatchdogStore`
(tables in the shared PostgreSQL store, keyed by namespace), which the service picks when `[store]`
is set. Sharing one namespace between hosts is safe: each host's watchdog writes records only for
its own agents, and the keys (agent names, assignment ids) are unique across a namespace, so no two
hosts write the same row; ticks are kept per host.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from .store import AgentRecord, LadderRecord, TickRecord


class WatchdogBackend(Protocol):
    def close(self) -> None: ...

    def __enter__(self) -> WatchdogBackend: ...

    def __exit__(self, *exc: object) -> None: ...

    def ladders(self, assignments: Iterable[str]) -> dict[str, LadderRecord]: ...

    def agents(self) -> dict[str, AgentRecord]: ...

    def save_ladder(self, record: LadderRecord, now: float) -> None: ...

    def save_agent(self, record: AgentRecord, now: float) -> None: ...

    def forget_ladders(self, keep: Iterable[str]) -> int:
        """Drop the ladders (of this host's) whose assignments are not in `keep`; returns how many."""
        ...

    def add_tick(self, at: float, *, dry_run: bool, ms: int, skipped: str | None,
                 actions: list[dict[str, Any]]) -> int: ...

    def ticks(self, limit: int = 10, *, acted_only: bool = False) -> list[TickRecord]:
        """This host's newest ticks first; `acted_only` keeps those that did something."""
        ...

    def will_restart(self, agent: str, every: float, now: float) -> bool:
        """Whether a running watchdog will restart `agent` after a crash (see `store.will_restart`)."""
        ...
