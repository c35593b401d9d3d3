"""The assignment ledger in the shared PostgreSQL store: the `LedgerBackend` contract
(`fleet.work.ledgerbackend`) on rows keyed by the store's namespace (`fleet.store.schema`, version 2).

Writers are serialised per namespace. Every write transaction starts by locking (and bumping) the
namespace's one row in `fleet_ledger_head`, and holds that row lock until it commits or rolls back.
This does for PostgreSQL what `BEGIN IMMEDIATE` does for SQLite:
- compare-and-set: the state read and the row written cannot interleave with another writer, so a
  transition, `reassign` and `annotate_once` behave exactly as on SQLite (the same errors, the same
  exactly-once);
- event cursors: an event's id comes from a sequence (`bigserial`), but a sequence alone hands ids out
  at `nextval`, not at commit, so two open transactions could commit 11 before 10 and a reader that
  saw 11 would skip 10 for ever. Under the head lock, ids are drawn only by the one writer holding
  it, which makes them visible before the next writer draws any: a reader that saw cursor N never
  later finds a new event with an id <= N. Ids are strictly increasing, never reused, not contiguous
  (a rolled-back writer leaves a gap; ids are shared by every namespace).
The bumped number is `data_version`: a waiter polls it and reads rows only when it moved.

Times are epoch seconds from this host's clock, as with SQLite (the writer's `time.time()`; tracking
compares them with the agents' journals on the same host). Order comes from cursors and ids, not
times: across hosts, times are as close as the hosts' clocks (run NTP).

Failures: an unreachable database or a connection broken mid-transaction is `store_unavailable`
(`fleet.store.db`); the transaction committed whole or not at all. A call that failed on a stale
connection before its COMMIT was sent is run once more on a fresh one. A writer stuck holding the
head lock past the store's lock timeout makes the others fail with `timeout` (retryable).
PostgreSQL text cannot hold NUL: a NUL in a plain text field is stored as U+FFFD (JSON fields escape
it and keep it).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Final, TypeVar

from fleet.store.db import Database

from .ledgersql import (
    DEFAULT_EVENT_PAGE,
    MAX_EVENT_PAGE,
    MAX_LIST,
    REQUEST_TTL,
    check_scope,
    dumps,
    event_text,
    expected_states,
    field_values,
    list_query,
    not_found,
    reassign_conflict,
    request_conflict,
    state_conflict,
)
from .lifecycle import END_STATES, AssignmentState, StateConflict, check_transition
from .records import (
    LIST_COLUMNS,
    TASK_PREVIEW_CHARS,
    Assignment,
    AssignmentSummary,
    Event,
    RequestRecord,
    assignment_from_row,
    loads_or_none,
    new_assignment_id,
    next_id,
    request_sha,
)
from .schema import DB_NAME

T = TypeVar("T")

#: Locks the namespace's head row (created on first use) for the rest of the transaction.
_HEAD: Final = ("INSERT INTO fleet_ledger_head AS h (namespace, version) VALUES (%s, 1) "
                "ON CONFLICT (namespace) DO UPDATE SET version = h.version + 1 RETURNING version")
_EVENT_COLUMNS: Final = "id, time, assignment, agent, actor, kind, from_state, to_state, details"
_SUMMARY_COLUMNS: Final = (f"id, agent, holder, substr(task, 1, {TASK_PREVIEW_CHARS}), length(task), skills, "
                           "write_paths, deadline, state, turn_id, report, verification, reason, created_at, "
                           "updated_at, sent_at, ended_at")


def _pg(sql: str) -> str:
    """The shared SQL text (SQLite's `?` placeholders) for psycopg (`%s`); no literal `?` or `%` in it."""
    return sql.replace("?", "%s")


def _clean(params: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(p.replace("\x00", "\ufffd") if isinstance(p, str) else p for p in params)


def _field(text: str | None, key: str) -> Any:
    """One top-level key of a stored JSON object (None when absent or not an object)."""
    value = loads_or_none(text)
    return value.get(key) if isinstance(value, dict) else None


def _event(r: tuple[Any, ...]) -> Event:
    return Event(int(r[0]), r[1], r[2], r[3], r[4], r[5], r[6], r[7], json.loads(r[8]))


class PgLedger:
    """The ledger of one fleet (the store's namespace) in PostgreSQL. Safe from many threads (a
    connection each, `fleet.store.db`), processes and hosts. `clock` is injectable for tests.
    `close()` leaves the `Database` open: its owner (the service) closes it."""

    def __init__(self, db: Database, state_dir: Path, *, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._ns = db.namespace
        self._clock = clock
        self.path = Path(state_dir) / DB_NAME  # the watchdog's local memory, not the ledger

    def __repr__(self) -> str:
        return f"PgLedger({self._db!r})"

    def close(self) -> None:
        """Nothing of its own to close (see the class docstring)."""

    def __enter__(self) -> PgLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- assignments -------------------------------------------------------------------------------

    def create(self, *, task: str, holder: str, actor: str, agent: str | None = None, prompt: str | None = None,
               skills: Iterable[str] = (), read_paths: Iterable[str] = (), write_paths: Iterable[str] = (),
               checks: Iterable[str] = (), deadline: float | None = None, request_id: str | None = None,
               request: Mapping[str, Any] | None = None, details: Mapping[str, Any] | None = None,
               repo: str | None = None, budget: int | None = None) -> tuple[Assignment, bool]:
        """As `Ledger.create`: a `queued` assignment and its `created` event; idempotent by `request_id`."""
        sha = request_sha(request if request is not None else {"task": task})
        row: dict[str, Any] = {
            "namespace": self._ns, "id": "", "agent": agent, "holder": holder, "task": task, "prompt": prompt,
            "skills": dumps(list(skills)), "read_paths": dumps(list(read_paths)),
            "write_paths": dumps(list(write_paths)), "checks": dumps(list(checks)), "deadline": deadline,
            "state": "queued", "request_id": request_id, "repo": repo, "budget": budget,
        }
        text = event_text("created", details or {})

        def body(x: _Tx) -> tuple[Assignment, bool]:
            now = self._clock()
            newest = x.one("SELECT max(id) FROM fleet_assignment WHERE namespace = %s", (self._ns,))
            new_id = row["id"] = next_id(new_assignment_id(now), newest[0] if newest else None)
            row.update(created_at=now, updated_at=now)
            if request_id is not None:
                x.run("DELETE FROM fleet_request WHERE namespace = %s AND created_at < %s",
                      (self._ns, now - REQUEST_TTL))
                prior = x.one("SELECT sha, result FROM fleet_request WHERE namespace = %s AND scope = 'assign' "
                              "AND id = %s", (self._ns, request_id))
                if prior is not None:
                    if prior[0] != sha:
                        raise request_conflict("assign", request_id)
                    return self._get(x, json.loads(prior[1])["assignment"]), True
                x.run("INSERT INTO fleet_request (namespace, scope, id, sha, result, created_at) "
                      "VALUES (%s, 'assign', %s, %s, %s, %s)",
                      (self._ns, request_id, sha, dumps({"assignment": new_id}), now))
            created = x.one(f"INSERT INTO fleet_assignment ({', '.join(row)}) VALUES ({', '.join(['%s'] * len(row))}) "
                            f"RETURNING {LIST_COLUMNS}", tuple(row.values()))
            self._event(x, now, new_id, agent, actor, "created", None, "queued", text)
            return assignment_from_row(created or ()), False

        return self._write(body)

    def transition(self, assignment: str, to: AssignmentState, *, actor: str,
                   expect: AssignmentState | Iterable[AssignmentState] | None = None,
                   details: Mapping[str, Any] | None = None, **fields: Any) -> Assignment:
        """As `Ledger.transition`: compare-and-set, one event, `StateConflict` / `InvalidTransition` /
        `AssignmentNotFound` alike."""
        expected = expected_states(expect)
        sets = field_values(fields)
        text = event_text("transition", {**(details or {}), **({"fields": sorted(fields)} if fields else {})})

        def body(x: _Tx) -> Assignment:
            now = self._clock()
            current = self._row(x, assignment)[0]
            if expected is not None and current not in expected:
                raise state_conflict(assignment, current, expected)
            check_transition(assignment, current, to)
            values = {**sets, "state": to, "updated_at": now}
            if to == "sent":
                values["sent_at"] = now
            if to in END_STATES:
                values["ended_at"] = now
            updated = self._update(x, assignment, values, current=current)
            self._event(x, now, assignment, updated.agent, actor, "transition", current, to, text)
            return updated

        return self._write(body)

    def reassign(self, assignment: str, *, from_agent: str, to_agent: str, actor: str,
                 expect: Iterable[AssignmentState] = ("sent", "working"),
                 details: Mapping[str, Any] | None = None, **fields: Any) -> Assignment:
        """As `Ledger.reassign`: compare-and-set on its agent and state, one `reassigned` event."""
        expected = expected_states(expect) or set()
        sets = field_values(fields)
        text = event_text("reassigned", {"from": from_agent, "to": to_agent, **(details or {})})

        def body(x: _Tx) -> Assignment:
            now = self._clock()
            current, agent = self._row(x, assignment)
            conflict = reassign_conflict(assignment, current, agent, expected, from_agent)
            if conflict is not None:
                raise conflict
            values = {**sets, "agent": to_agent, "turn_id": None, "sent_at": now, "updated_at": now}
            updated = self._update(x, assignment, values, current=current)
            self._event(x, now, assignment, to_agent, actor, "reassigned", None, None, text, moved_from=from_agent)
            return updated

        return self._write(body)

    def handed_over(self, agent: str, since: float) -> str | None:
        """The assignment most recently reassigned away from `agent` at or after `since`, if any."""
        rows = self._read("SELECT assignment FROM fleet_event WHERE namespace = %s AND moved_from = %s "
                          "AND kind = 'reassigned' AND time >= %s ORDER BY id DESC LIMIT 1", (self._ns, agent, since))
        return str(rows[0][0]) if rows else None

    def annotate(self, assignment: str, kind: str, *, actor: str, details: Mapping[str, Any] | None = None,
                 **fields: Any) -> Event:
        """As `Ledger.annotate`: an event without a state change, optionally setting `fields`."""
        sets = field_values(fields)
        text = event_text(kind, details or {})

        def body(x: _Tx) -> Event:
            now = self._clock()
            agent = self._row(x, assignment)[1]
            if sets:
                agent = self._update(x, assignment, {**sets, "updated_at": now}).agent
            return self._event(x, now, assignment, agent, actor, kind, None, None, text)

        return self._write(body)

    def annotate_once(self, assignment: str, kind: str, key: str, *, actor: str,
                      details: Mapping[str, Any] | None = None) -> Event | None:
        """As `Ledger.annotate_once`: checked and written under the head lock, so processes on any
        host copying the same fact at once record it once."""
        text = event_text(kind, {**(details or {}), "key": key})

        def body(x: _Tx) -> Event | None:
            now = self._clock()
            agent = self._row(x, assignment)[1]
            if x.one("SELECT 1 FROM fleet_event WHERE namespace = %s AND assignment = %s AND kind = %s AND key = %s",
                     (self._ns, assignment, kind, key)) is not None:
                return None
            return self._event(x, now, assignment, agent, actor, kind, None, None, text, key=key)

        return self._write(body)

    def record_event(self, kind: str, *, actor: str, agent: str | None = None,
                     details: Mapping[str, Any] | None = None) -> Event:
        """Append an event that belongs to no assignment."""
        text = event_text(kind, details or {})
        return self._write(lambda x: self._event(x, self._clock(), None, agent, actor, kind, None, None, text))

    def set_usage(self, assignment: str, usage: Mapping[str, int]) -> bool:
        """Store the assignment's token usage; False when it was already that (or there is no such
        assignment). Leaves `updated_at` alone."""
        text = json.dumps(dict(usage), sort_keys=True, separators=(",", ":"))
        return self._write(lambda x: x.one(
            "UPDATE fleet_assignment SET usage = %s WHERE namespace = %s AND id = %s AND usage IS DISTINCT FROM %s "
            "RETURNING 1", (text, self._ns, assignment, text)) is not None)

    def get(self, assignment: str) -> Assignment:
        rows = self._read(f"SELECT {LIST_COLUMNS} FROM fleet_assignment WHERE namespace = %s AND id = %s",
                          (self._ns, assignment))
        if not rows:
            raise not_found(assignment)
        return assignment_from_row(rows[0])

    def baseline(self, assignment: str) -> dict[str, Any] | None:
        rows = self._read("SELECT baseline FROM fleet_assignment WHERE namespace = %s AND id = %s",
                          (self._ns, assignment))
        if not rows:
            raise not_found(assignment)
        baseline: dict[str, Any] | None = loads_or_none(rows[0][0])
        return baseline

    def assignments(self, *, open_only: bool = False, agent: str | None = None,
                    states: Iterable[AssignmentState] | None = None, limit: int = 100,
                    before: str | None = None) -> list[Assignment]:
        sql, params = list_query(LIST_COLUMNS, open_only, agent, states, limit, before, table="fleet_assignment",
                                 namespace=self._ns)
        return [assignment_from_row(r) for r in self._read(_pg(sql), params)]

    def summaries(self, *, open_only: bool = False, agent: str | None = None,
                  states: Iterable[AssignmentState] | None = None, limit: int = 100,
                  before: str | None = None) -> list[AssignmentSummary]:
        """As `Ledger.summaries`; the report's status and the verdict are read from the JSON here, so
        a document PostgreSQL's JSON type would refuse cannot break a listing."""
        sql, params = list_query(_SUMMARY_COLUMNS, open_only, agent, states, limit, before,
                                 table="fleet_assignment", namespace=self._ns)
        return [AssignmentSummary(r[0], r[1], r[2], r[3], r[4], tuple(json.loads(r[5])), tuple(json.loads(r[6])),
                                  r[7], r[8], r[9], _field(r[10], "status"), _field(r[11], "verdict"), *r[12:])
                for r in self._read(_pg(sql), params)]

    def queued(self, limit: int = 100) -> list[Assignment]:
        rows = self._read(f"SELECT {LIST_COLUMNS} FROM fleet_assignment WHERE namespace = %s AND state = 'queued' "
                          "ORDER BY id LIMIT %s", (self._ns, max(1, min(limit, MAX_LIST))))
        return [assignment_from_row(r) for r in rows]

    def agent_load(self) -> dict[str, tuple[int, float | None]]:
        rows = self._read("SELECT agent, count(*) FILTER (WHERE state IN ('queued', 'sent', 'working', 'reported')), "
                          "max(sent_at) FROM fleet_assignment WHERE namespace = %s AND agent IS NOT NULL "
                          "GROUP BY agent", (self._ns,))
        return {agent: (int(n or 0), last) for agent, n, last in rows}

    # -- events ------------------------------------------------------------------------------------

    def events_since(self, cursor: int = 0, limit: int = DEFAULT_EVENT_PAGE, *,
                     assignment: str | None = None) -> tuple[list[Event], int]:
        """Events with a cursor above `cursor`, oldest first, and the cursor to pass next time."""
        sql = f"SELECT {_EVENT_COLUMNS} FROM fleet_event WHERE namespace = %s AND id > %s"
        params: list[Any] = [self._ns, max(0, int(cursor))]
        if assignment is not None:
            sql += " AND assignment = %s"
            params.append(assignment)
        sql += " ORDER BY id LIMIT %s"
        params.append(max(1, min(limit, MAX_EVENT_PAGE)))
        events = [_event(r) for r in self._read(sql, tuple(params))]
        return events, (events[-1].cursor if events else max(0, int(cursor)))

    def events_for(self, assignment: str) -> list[Event]:
        return self.events_since(0, MAX_EVENT_PAGE, assignment=assignment)[0]

    def latest_cursor(self) -> int:
        rows = self._read("SELECT coalesce(max(id), 0) FROM fleet_event WHERE namespace = %s", (self._ns,))
        return int(rows[0][0])

    def data_version(self) -> int:
        """The namespace's write count: it moves whenever any writer (this one included) commits."""
        rows = self._read("SELECT version FROM fleet_ledger_head WHERE namespace = %s", (self._ns,))
        return int(rows[0][0]) if rows else 0

    # -- idempotency for plain sends ---------------------------------------------------------------

    def begin_request(self, scope: str, request_id: str, request: Mapping[str, Any]) -> RequestRecord:
        """As `Ledger.begin_request`."""
        check_scope(scope)
        sha = request_sha(request)

        def body(x: _Tx) -> RequestRecord:
            now = self._clock()
            x.run("DELETE FROM fleet_request WHERE namespace = %s AND created_at < %s", (self._ns, now - REQUEST_TTL))
            row = x.one("SELECT sha, result, created_at FROM fleet_request WHERE namespace = %s AND scope = %s "
                        "AND id = %s", (self._ns, scope, request_id))
            if row is None:
                x.run("INSERT INTO fleet_request (namespace, scope, id, sha, result, created_at) "
                      "VALUES (%s, %s, %s, %s, NULL, %s)", (self._ns, scope, request_id, sha, now))
                return RequestRecord(scope, request_id, sha, None, now, fresh=True)
            if row[0] != sha:
                raise request_conflict(scope, request_id)
            return RequestRecord(scope, request_id, sha, loads_or_none(row[1]), row[2], fresh=False)

        return self._write(body)

    def find_request(self, scope: str, request_id: str) -> RequestRecord | None:
        rows = self._read("SELECT sha, result, created_at FROM fleet_request WHERE namespace = %s AND scope = %s "
                          "AND id = %s AND created_at >= %s",
                          (self._ns, scope, request_id, self._clock() - REQUEST_TTL))
        if not rows:
            return None
        return RequestRecord(scope, request_id, rows[0][0], loads_or_none(rows[0][1]), rows[0][2], fresh=False)

    def finish_request(self, scope: str, request_id: str, result: Mapping[str, Any]) -> None:
        self._write(lambda x: x.run("UPDATE fleet_request SET result = %s WHERE namespace = %s AND scope = %s "
                                    "AND id = %s", (dumps(dict(result)), self._ns, scope, request_id)))

    def forget_request(self, scope: str, request_id: str) -> None:
        self._write(lambda x: x.run("DELETE FROM fleet_request WHERE namespace = %s AND scope = %s AND id = %s "
                                    "AND result IS NULL", (self._ns, scope, request_id)))

    def prune_requests(self, max_age: float = REQUEST_TTL) -> int:
        """Drop idempotency records older than `max_age` seconds; returns how many."""
        return self._write(lambda x: len(x.all(
            "DELETE FROM fleet_request WHERE namespace = %s AND created_at < %s RETURNING 1",
            (self._ns, self._clock() - max_age))))

    # -- internals ---------------------------------------------------------------------------------

    def _write(self, body: Callable[[_Tx], T]) -> T:
        """`body` in one transaction that first takes the namespace's head lock; run once more on a
        fresh connection when a stale one failed before COMMIT (nothing had landed)."""
        def once() -> T:
            with self._db.transaction() as cur:
                x = _Tx(cur.connection)
                x.run(_HEAD, (self._ns,))
                return body(x)

        return self._db.retrying(once)

    def _read(self, sql: str, params: tuple[Any, ...] | list[Any]) -> list[tuple[Any, ...]]:
        """One statement outside a transaction (its own snapshot); retried once on a stale connection."""
        return self._db.query(sql, _clean(params))

    def _row(self, x: _Tx, assignment: str) -> tuple[AssignmentState, str | None]:
        row = x.one("SELECT state, agent FROM fleet_assignment WHERE namespace = %s AND id = %s",
                    (self._ns, assignment))
        if row is None:
            raise not_found(assignment)
        return row[0], row[1]

    def _get(self, x: _Tx, assignment: str) -> Assignment:
        row = x.one(f"SELECT {LIST_COLUMNS} FROM fleet_assignment WHERE namespace = %s AND id = %s",
                    (self._ns, assignment))
        if row is None:
            raise not_found(assignment)
        return assignment_from_row(row)

    def _update(self, x: _Tx, assignment: str, values: Mapping[str, Any], *,
                current: str | None = None) -> Assignment:
        """Set `values` on the row (still in state `current`, when given) and return it updated."""
        assigned = ", ".join(f"{k} = %s" for k in values)
        sql = f"UPDATE fleet_assignment SET {assigned} WHERE namespace = %s AND id = %s"
        params: tuple[Any, ...] = (*values.values(), self._ns, assignment)
        if current is not None:
            sql += " AND state = %s"
            params += (current,)
        row = x.one(f"{sql} RETURNING {LIST_COLUMNS}", params)
        if row is None:  # cannot happen under the head lock; fail loudly if it does
            raise StateConflict(f"Assignment {assignment} changed during its update.", hint="Retry the operation.",
                                assignment=assignment)
        return assignment_from_row(row)

    def _event(self, x: _Tx, now: float, assignment: str | None, agent: str | None, actor: str, kind: str,
               from_state: str | None, to_state: str | None, text: str, *, key: str | None = None,
               moved_from: str | None = None) -> Event:
        row = x.one("INSERT INTO fleet_event (namespace, time, assignment, agent, actor, kind, from_state, to_state, "
                    "details, key, moved_from) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
                    (self._ns, now, assignment, agent, actor, kind, from_state, to_state, text, key, moved_from))
        return Event(int(row[0]) if row else 0, now, assignment, agent, actor, kind, from_state, to_state,
                     json.loads(text))


class _Tx:
    """A transaction's statements, each on a cursor of its own (in pipeline mode a cursor's result is
    reliable only for the one statement it ran), with NUL-free text parameters."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def run(self, sql: str, params: tuple[Any, ...]) -> None:
        self._conn.execute(sql, _clean(params))

    def one(self, sql: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = self._conn.execute(sql, _clean(params)).fetchone()
        return row

    def all(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = self._conn.execute(sql, _clean(params)).fetchall()
        return rows
