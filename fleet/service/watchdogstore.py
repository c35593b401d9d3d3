"""Which store keeps the watchdog's memory (`fleet.watchdog.backend.WatchdogBackend`): the shared
PostgreSQL store when `[store]` is set (`fleet.watchdog.pgstore`), else the SQLite tables in
`<state_dir>/fleet.db` (`fleet.watchdog.store`). The tick's fallback file for a ledger that is down
stays as it was (`fleet.service.tick.run_tick`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fleet.watchdog.backend import WatchdogBackend
from fleet.watchdog.store import WatchdogStore, will_restart

if TYPE_CHECKING:
    from .core import Service


def open_watchdog_store(svc: Service, *, probe: bool = False) -> WatchdogBackend:
    """The watchdog's store for `svc`'s fleet. With `probe`, a shared store is connected at once, so a
    database that is down raises here (`store_unavailable`) instead of in the middle of a tick."""
    if svc.config.store is not None:
        from fleet.watchdog.pgstore import PgWatchdogStore  # noqa: PLC0415 (only with [store]: psycopg)

        store = PgWatchdogStore(svc.store)
        if probe:
            store.probe()
        return store
    return WatchdogStore(svc.ledger.path)


def watchdog_will_restart(svc: Service, agent: str, every: float, now: float) -> bool:
    """`will_restart` against the store the watchdog uses; False when it cannot be read."""
    if svc.config.store is not None:
        from fleet.watchdog.pgstore import PgWatchdogStore  # noqa: PLC0415 (only with [store]: psycopg)

        return PgWatchdogStore(svc.store).will_restart(agent, every, now)
    return will_restart(svc.ledger.path, agent, every, now)
