"""The audit log in the shared PostgreSQL store: `fleet_audit` (`fleet.store.schema`, version 4), an
`fleet.audit.AuditSink`.

One row per record: namespace, the host that wrote it (the state dir's name, `[store] host`), the
record's time and event, and the whole record as JSON; records copied later from a host's file
(`write_keyed`) also carry a key unique in the namespace, so a copy is never made twice.
Append-only: a trigger refuses UPDATE, DELETE and TRUNCATE. Ids come from a sequence, so `records`
reads every host's records back in the order they were written (per host, exactly; across hosts, in
commit order; copies in the order they were copied).

A lease change's records are added in the lease's own transaction (`insert`): they commit together.
Otherwise writing never blocks an operation for long or fails it: `write` raises (and `fleet.audit.record`
logs and drops the record), and after a failure the sink skips the database for `RETRY_AFTER`
seconds, so a store that is down costs one connect timeout, not one per operation. The local
`audit.jsonl` has every record either way.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any, Final

from fleet.errors import StoreUnavailable

from .db import Database

#: Seconds a sink whose write failed leaves the database alone (its records are dropped meanwhile).
RETRY_AFTER: Final = 30.0
_INSERT: Final = "INSERT INTO fleet_audit (namespace, host, time, event, record) VALUES (%s, %s, %s, %s, %s)"


def _row(entry: dict[str, Any], default_time: float) -> tuple[float, str, str]:
    """A record's time (`default_time` when it has none), event and JSON text, as `fleet_audit` stores them."""
    return (float(entry.get("time", default_time)), str(entry["event"]),
            json.dumps(entry, separators=(",", ":"), ensure_ascii=False, default=str))


class PgAuditSink:
    """Audit records of `db`'s namespace, marked with `host` (default: the store settings' `host`,
    this state dir's name, else this machine's hostname)."""

    def __init__(self, db: Database, *, host: str | None = None) -> None:
        self._db = db
        self.host = host or db.host
        self._failed_at: float | None = None

    def __repr__(self) -> str:
        return f"PgAuditSink({self._db!r}, host={self.host!r})"

    def write(self, entry: dict[str, Any]) -> None:
        now = time.monotonic()
        if self._failed_at is not None and now - self._failed_at < RETRY_AFTER:
            raise StoreUnavailable(f"The store {self._db.settings.display} failed an audit write moments ago.",
                                   hint="Check `fleet store status`; the local audit.jsonl has the record.")
        try:
            with self._db.mapped_errors():
                self._db.connection().execute(_INSERT, (self._db.namespace, self.host, *_row(entry, time.time())))
        except Exception:
            self._failed_at = now
            raise
        self._failed_at = None

    def insert(self, cur: Any, entries: Sequence[dict[str, Any]]) -> None:
        """Add `entries` in the caller's transaction (`cur`): they commit with the change they record, or
        neither does (the lease store's changes; one round trip fewer than `write` after the commit)."""
        cur.executemany(_INSERT, [(self._db.namespace, self.host, *_row(e, time.time())) for e in entries])

    def write_keyed(self, records: Sequence[tuple[str, dict[str, Any]]]) -> int:
        """Insert `records` (key, record) in one transaction, skipping every key the namespace already
        has: a retry after a crash or a lost answer adds nothing. Returns how many were new. Raises the
        store's errors, with no pause afterwards (its caller, the watchdog's tick, retries next tick)."""
        unique = dict(records)
        if not unique:
            return 0
        rows = [(key, *_row(e, 0.0)) for key, e in unique.items()]
        with self._db.transaction() as cur:
            cur.execute("INSERT INTO fleet_audit (namespace, host, time, event, record, key) "
                        "SELECT %s, %s, t, e, r, k FROM unnest(%s::text[], %s::float8[], %s::text[], %s::text[]) "
                        "AS u(k, t, e, r) ON CONFLICT (namespace, key) WHERE key IS NOT NULL DO NOTHING RETURNING id",
                        (self._db.namespace, self.host, *map(list, zip(*rows, strict=True))))
            return len(cur.fetchall())

    def records(self, *, after: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
        """The namespace's records with id above `after`, oldest first: each the record with its
        `id` and `host`."""
        with self._db.mapped_errors():
            rows = self._db.connection().execute(
                "SELECT id, host, record FROM fleet_audit WHERE namespace = %s AND id > %s ORDER BY id LIMIT %s",
                (self._db.namespace, after, max(1, limit))).fetchall()
        return [{**json.loads(r[2]), "id": int(r[0]), "host": r[1]} for r in rows]
