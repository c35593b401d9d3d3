"""The watchdog's memory in the shared PostgreSQL store: `WatchdogBackend` (`fleet.watchdog.backend`)
on the tables of migration 3 (`fleet.store.schema`), keyed by the store's namespace.

Rows are the SQLite store's (`fleet.watchdog.store`), with the host that wrote them: the state dir's
name among the namespace's hosts (`fleet.config.store`, `[store] host`), so two state dirs on one
machine are two hosts. Each host's watchdog keeps records only for its own agents, and the keys
(agent names, assignment ids) are unique across a namespace, so hosts never write each other's
rows: sharing is safe. `forget_ladders`
drops only this host's ladders, and ticks are this host's (`fleet watchdog status` and
`will_restart` ask about the watchdog on this machine). Failures are the store's (`fleet.store.db`):
`store_unavailable`, which the tick treats as a ledger fault.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict
from typing import Any

from fleet.errors import FleetError
from fleet.store.db import Database

from .store import (
    MAX_TICKS,
    AgentRecord,
    LadderRecord,
    TickRecord,
    agent_from_value,
    dumps,
    ladder_from_row,
    ladder_value,
    restart_expected,
)

_UPSERT = ("INSERT INTO fleet_watchdog_state (namespace, kind, key, agent, host, value, updated_at) "
           "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (namespace, kind, key) DO UPDATE SET "
           "agent = excluded.agent, host = excluded.host, value = excluded.value, updated_at = excluded.updated_at")


class PgWatchdogStore:
    """The watchdog's records of one namespace; `host` (default: the store settings' `host`, this
    state dir's name, else this machine's hostname) marks this host's rows. `close()` does not close
    `db` (the service owns it)."""

    def __init__(self, db: Database, *, host: str | None = None) -> None:
        self._db = db
        self._ns = db.namespace
        self.host = host or db.host

    def __repr__(self) -> str:
        return f"PgWatchdogStore({self._db!r}, host={self.host!r})"

    def close(self) -> None:
        pass

    def __enter__(self) -> PgWatchdogStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def probe(self) -> None:
        """Connect (and check the schema) now: raises `StoreUnavailable` / `StoreSchemaMismatch`."""
        self._query("SELECT 1", ())

    def _query(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        return self._db.query(sql, params)  # once more when a stale connection failed it (nothing had run)

    # -- ladders and agents ---------------------------------------------------------------------

    def ladders(self, assignments: Iterable[str]) -> dict[str, LadderRecord]:
        wanted = list(dict.fromkeys(assignments))
        if not wanted:
            return {}
        rows = self._query("SELECT key, agent, value FROM fleet_watchdog_state WHERE namespace = %s "
                           "AND kind = 'ladder' AND key = ANY(%s)", (self._ns, wanted))
        return {key: ladder_from_row(key, agent, value) for key, agent, value in rows}

    def agents(self) -> dict[str, AgentRecord]:
        rows = self._query("SELECT key, value FROM fleet_watchdog_state WHERE namespace = %s AND kind = 'agent'",
                           (self._ns,))
        return {key: agent_from_value(value) for key, value in rows}

    def save_ladder(self, record: LadderRecord, now: float) -> None:
        self._query(_UPSERT, (self._ns, "ladder", record.assignment, record.agent, self.host, ladder_value(record),
                              now))

    def save_agent(self, record: AgentRecord, now: float) -> None:
        self._query(_UPSERT, (self._ns, "agent", record.agent, record.agent, self.host, dumps(asdict(record)), now))

    def forget_ladders(self, keep: Iterable[str]) -> int:
        kept = set(keep)
        rows = self._query("SELECT key FROM fleet_watchdog_state WHERE namespace = %s AND kind = 'ladder' "
                           "AND host = %s", (self._ns, self.host))
        stale = [k for (k,) in rows if k not in kept]
        if not stale:
            return 0
        gone = self._query("DELETE FROM fleet_watchdog_state WHERE namespace = %s AND kind = 'ladder' "
                           "AND host = %s AND key = ANY(%s) RETURNING key", (self._ns, self.host, stale))
        return len(gone)

    # -- ticks ----------------------------------------------------------------------------------

    def add_tick(self, at: float, *, dry_run: bool, ms: int, skipped: str | None,
                 actions: list[dict[str, Any]]) -> int:
        with self._db.transaction() as cur:
            cur.execute("INSERT INTO fleet_watchdog_tick (namespace, host, at, dry_run, ms, skipped, actions) "
                        "VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
                        (self._ns, self.host, at, dry_run, ms, skipped, dumps(actions)))
            row = cur.fetchone()
            tick_id = int(row[0]) if row else 0
            cur.execute("DELETE FROM fleet_watchdog_tick WHERE namespace = %s AND host = %s AND id < ("
                        "SELECT coalesce(min(id), 0) FROM (SELECT id FROM fleet_watchdog_tick WHERE namespace = %s "
                        "AND host = %s ORDER BY id DESC LIMIT %s) AS kept)",
                        (self._ns, self.host, self._ns, self.host, MAX_TICKS))
        return tick_id

    def ticks(self, limit: int = 10, *, acted_only: bool = False) -> list[TickRecord]:
        sql = ("SELECT id, at, dry_run, ms, skipped, actions FROM fleet_watchdog_tick "
               "WHERE namespace = %s AND host = %s")
        if acted_only:
            sql += " AND actions != '[]'"
        rows = self._query(sql + " ORDER BY id DESC LIMIT %s", (self._ns, self.host, max(1, limit)))
        return [TickRecord(int(r[0]), float(r[1]), bool(r[2]), int(r[3]), r[4], json.loads(r[5])) for r in rows]

    def will_restart(self, agent: str, every: float, now: float) -> bool:
        """As `store.will_restart`; False when the store cannot be read."""
        try:
            rows = self._query(
                "SELECT (SELECT max(at) FROM fleet_watchdog_tick WHERE namespace = %s AND host = %s), "
                "(SELECT value FROM fleet_watchdog_state WHERE namespace = %s AND kind = 'agent' AND key = %s)",
                (self._ns, self.host, self._ns, agent))
        except FleetError:  # a read for a hint: unreadable means "no"
            return False
        last, value = rows[0] if rows else (None, None)
        return restart_expected(last, value, every, now)

