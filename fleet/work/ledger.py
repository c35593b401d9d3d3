"""The assignment ledger: SQLite at `<state_dir>/fleet.db`, shared by every fleet process.

The schema, its migrations and opening the file live in `fleet.work.schema`; the row types in
`fleet.work.records`; the SQL text and errors the operations share in `fleet.work.ledgersql`.

Concurrency: the CLI, the MCP server and the watchdog open the file at once. WAL mode lets readers
run beside a writer; a busy timeout makes writers queue instead of failing; transactions are a few
statements long. A write that still cannot get the lock within the timeout raises `LedgerBusy`
(retryable), never a raw `database is locked`. One `Ledger` object serialises its own callers with a
lock, so it may be shared by threads.

`synchronous=FULL`: a committed transition survives a power cut (each commit costs one fsync;
assignments are few).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Final

from fleet.errors import LedgerBusy, LedgerError, RequestIdConflict
from fleet.fsutil import ensure_dir

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
    SUMMARY_COLUMNS,
    Assignment,
    AssignmentSummary,
    Event,
    RequestRecord,
    assignment_from_row,
    loads_or_none,
    new_assignment_id,
    next_id,
    request_sha,
    summary_from_row,
)
from .schema import DB_NAME, SCHEMA_VERSION, connect, ledger_busy

__all__ = [
    "BUSY_TIMEOUT", "DB_NAME", "MAX_LIST", "REQUEST_TTL", "SCHEMA_VERSION",
    "Assignment", "AssignmentSummary", "Event", "Ledger", "LedgerBusy", "LedgerError", "RequestIdConflict",
    "RequestRecord", "new_assignment_id", "request_conflict", "request_sha",
]

#: How long a writer waits for the lock before `LedgerBusy`. Transactions hold it for milliseconds;
#: ten seconds covers a stalled disk without hanging a CLI call for long.
BUSY_TIMEOUT: Final = 10.0


class Ledger:
    """A connection to `<state_dir>/fleet.db`. Open one per process (or share it between threads);
    `close()` it, or use it as a context manager. `clock` is injectable for tests."""

    def __init__(self, state_dir: Path, *, clock: Callable[[], float] = time.time,
                 busy_timeout: float = BUSY_TIMEOUT) -> None:
        self.path = ensure_dir(Path(state_dir)) / DB_NAME
        self._clock = clock
        self._lock = threading.RLock()
        self._db = connect(self.path, busy_timeout)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- assignments -------------------------------------------------------------------------------

    def create(
        self,
        *,
        task: str,
        holder: str,
        actor: str,
        agent: str | None = None,
        prompt: str | None = None,
        skills: Iterable[str] = (),
        read_paths: Iterable[str] = (),
        write_paths: Iterable[str] = (),
        checks: Iterable[str] = (),
        deadline: float | None = None,
        request_id: str | None = None,
        request: Mapping[str, Any] | None = None,
        details: Mapping[str, Any] | None = None,
        repo: str | None = None,
        budget: int | None = None,
    ) -> tuple[Assignment, bool]:
        """Insert a new assignment in state `queued`, with its `created` event; returns it and
        `duplicate`.

        With `request_id`, creation is idempotent in one transaction: the same id with the same
        `request` (any JSON-able mapping; the sha of its canonical JSON is compared) returns the
        assignment the first call created and `duplicate=True`, creating nothing; the same id with a
        different request raises `RequestIdConflict`. Expired request ids are pruned here too. `repo`
        restricts it to agents working in worktrees of that repository; `budget` is its token budget.
        """
        sha = request_sha(request if request is not None else {"task": task})
        row = {
            "id": "", "agent": agent, "holder": holder, "task": task, "prompt": prompt,
            "skills": dumps(list(skills)), "read_paths": dumps(list(read_paths)),
            "write_paths": dumps(list(write_paths)), "checks": dumps(list(checks)), "deadline": deadline,
            "state": "queued", "request_id": request_id, "repo": repo, "budget": budget,
        }
        with self._write() as db:
            now = self._clock()
            newest = db.execute("SELECT MAX(id) FROM assignments").fetchone()[0]
            new_id = row["id"] = next_id(new_assignment_id(now), newest)
            row.update(created_at=now, updated_at=now)
            if request_id is not None:
                db.execute("DELETE FROM request_ids WHERE created_at < ?", (now - REQUEST_TTL,))
                prior = db.execute("SELECT sha, result FROM request_ids WHERE scope = 'assign' AND id = ?",
                                   (request_id,)).fetchone()
                if prior is not None:
                    if prior[0] != sha:
                        raise request_conflict("assign", request_id)
                    existing = json.loads(prior[1])["assignment"]
                    return self._get(db, existing), True
                db.execute("INSERT INTO request_ids (scope, id, sha, result, created_at) VALUES ('assign', ?, ?, ?, ?)",
                           (request_id, sha, dumps({"assignment": new_id}), now))
            cols = ", ".join(row)
            db.execute(f"INSERT INTO assignments ({cols}) VALUES ({', '.join('?' * len(row))})", tuple(row.values()))
            self._event(db, now, new_id, agent, actor, "created", None, "queued", details or {})
            return self._get(db, new_id), False

    def transition(self, assignment: str, to: AssignmentState, *, actor: str,
                   expect: AssignmentState | Iterable[AssignmentState] | None = None,
                   details: Mapping[str, Any] | None = None, **fields: Any) -> Assignment:
        """Move `assignment` to `to` and set `fields` (see `FIELDS`), with one event, atomically.

        Compare-and-set: raises `StateConflict` when `expect` is given and the current state is not
        in it (someone else moved it first), `InvalidTransition` when the lifecycle table forbids the
        move, `AssignmentNotFound` for an unknown id. `sent_at` is stamped on entering `sent`,
        `ended_at` on entering an end state. Returns the updated row.
        """
        expected = expected_states(expect)
        sets = field_values(fields)
        with self._write() as db:
            now = self._clock()
            current = self._state(db, assignment)
            if expected is not None and current not in expected:
                raise state_conflict(assignment, current, expected)
            check_transition(assignment, current, to)
            sets.update(state=to, updated_at=now)
            if to == "sent":
                sets["sent_at"] = now
            if to in END_STATES:
                sets["ended_at"] = now
            assigned = ", ".join(f"{k} = ?" for k in sets)
            cur = db.execute(f"UPDATE assignments SET {assigned} WHERE id = ? AND state = ?",
                             (*sets.values(), assignment, current))
            if cur.rowcount != 1:  # cannot happen under BEGIN IMMEDIATE; fail loudly if it does
                raise StateConflict(f"Assignment {assignment} changed during its transition.",
                                    hint="Retry the operation.", assignment=assignment)
            agent = db.execute("SELECT agent FROM assignments WHERE id = ?", (assignment,)).fetchone()[0]
            self._event(db, now, assignment, agent, actor, "transition", current, to,
                        {**(details or {}), **({"fields": sorted(fields)} if fields else {})})
            return self._get(db, assignment)

    def reassign(self, assignment: str, *, from_agent: str, to_agent: str, actor: str,
                 expect: Iterable[AssignmentState] = ("sent", "working"),
                 details: Mapping[str, Any] | None = None, **fields: Any) -> Assignment:
        """Move an open assignment from `from_agent` to `to_agent` with one `reassigned` event, setting
        `fields` (see `FIELDS`), clearing its turn (the next send records the new one) and stamping
        `sent_at` anew (the new agent's turns count for it from now on: `fleet.service.tracking`),
        atomically.

        Compare-and-set on both its agent and its state: raises `StateConflict` when it is no longer
        `from_agent`'s or no longer in `expect` (someone else moved or ended it first). The state is
        kept: the work goes on, on another agent."""
        expected = expected_states(expect) or set()
        sets = field_values(fields)
        with self._write() as db:
            now = self._clock()
            row = db.execute("SELECT state, agent FROM assignments WHERE id = ?", (assignment,)).fetchone()
            if row is None:
                raise not_found(assignment)
            current, agent = row
            conflict = reassign_conflict(assignment, current, agent, expected, from_agent)
            if conflict is not None:
                raise conflict
            sets.update(agent=to_agent, turn_id=None, sent_at=now, updated_at=now)  # its turns there start now
            assigned = ", ".join(f"{k} = ?" for k in sets)
            cur = db.execute(f"UPDATE assignments SET {assigned} WHERE id = ? AND state = ? AND agent = ?",
                             (*sets.values(), assignment, current, from_agent))
            if cur.rowcount != 1:  # cannot happen under BEGIN IMMEDIATE; fail loudly if it does
                raise StateConflict(f"Assignment {assignment} changed during its reassignment.",
                                    hint="Retry the operation.", assignment=assignment)
            self._event(db, now, assignment, to_agent, actor, "reassigned", None, None,
                        {"from": from_agent, "to": to_agent, **(details or {})})
            return self._get(db, assignment)

    def handed_over(self, agent: str, since: float) -> str | None:
        """The assignment most recently reassigned away from `agent` at or after `since`, if any."""
        with self._lock:
            row = self._db.execute("SELECT assignment FROM events WHERE kind = 'reassigned' AND time >= ? AND "
                                   "json_extract(details, '$.from') = ? ORDER BY id DESC LIMIT 1",
                                   (since, agent)).fetchone()
        return str(row[0]) if row is not None else None

    def annotate(self, assignment: str, kind: str, *, actor: str, details: Mapping[str, Any] | None = None,
                 **fields: Any) -> Event:
        """Record an event about `assignment` without a state change (a denied patch, an ask for a
        report, a check run), optionally setting `fields` in the same transaction."""
        sets = field_values(fields)
        with self._write() as db:
            now = self._clock()
            self._state(db, assignment)
            if sets:
                sets["updated_at"] = now
                assigned = ", ".join(f"{k} = ?" for k in sets)
                db.execute(f"UPDATE assignments SET {assigned} WHERE id = ?", (*sets.values(), assignment))
            agent = db.execute("SELECT agent FROM assignments WHERE id = ?", (assignment,)).fetchone()[0]
            return self._event(db, now, assignment, agent, actor, kind, None, None, details or {})

    def annotate_once(self, assignment: str, kind: str, key: str, *, actor: str,
                      details: Mapping[str, Any] | None = None) -> Event | None:
        """`annotate`, unless an event of `kind` with this `key` (stored as `details.key`) is already
        recorded for `assignment`: checked and written in one transaction, so processes copying the
        same fact at once record it once. Returns the new event, or None if it was there."""
        with self._write() as db:
            now = self._clock()
            self._state(db, assignment)
            if db.execute("SELECT 1 FROM events WHERE assignment = ? AND kind = ? "
                          "AND json_extract(details, '$.key') = ?", (assignment, kind, key)).fetchone() is not None:
                return None
            agent = db.execute("SELECT agent FROM assignments WHERE id = ?", (assignment,)).fetchone()[0]
            return self._event(db, now, assignment, agent, actor, kind, None, None, {**(details or {}), "key": key})

    def record_event(self, kind: str, *, actor: str, agent: str | None = None,
                     details: Mapping[str, Any] | None = None) -> Event:
        """Append an event that belongs to no assignment (e.g. an agent-level fact a lead should see)."""
        with self._write() as db:
            return self._event(db, self._clock(), None, agent, actor, kind, None, None, details or {})

    def set_usage(self, assignment: str, usage: Mapping[str, int]) -> bool:
        """Store the assignment's token usage (reconcile's count); False when it was already that.
        Leaves `updated_at` alone: a count is not a transition."""
        text = json.dumps(dict(usage), sort_keys=True, separators=(",", ":"))
        with self._write() as db:
            cur = db.execute("UPDATE assignments SET usage = ? WHERE id = ? AND usage IS NOT ?",
                             (text, assignment, text))
        return cur.rowcount > 0

    def get(self, assignment: str) -> Assignment:
        with self._lock:
            return self._get(self._db, assignment)

    def baseline(self, assignment: str) -> dict[str, Any] | None:
        """The verification baseline (the cwd snapshot taken at send time), if recorded."""
        with self._lock:
            row = self._db.execute("SELECT baseline FROM assignments WHERE id = ?", (assignment,)).fetchone()
        if row is None:
            raise not_found(assignment)
        baseline: dict[str, Any] | None = loads_or_none(row[0])
        return baseline

    def assignments(self, *, open_only: bool = False, agent: str | None = None,
                    states: Iterable[AssignmentState] | None = None, limit: int = 100,
                    before: str | None = None) -> list[Assignment]:
        """Full assignments, newest first (ids sort by creation). `before` pages: pass the last id
        seen. For a listing, `summaries` takes the same filters and is several times cheaper."""
        sql, params = list_query(LIST_COLUMNS, open_only, agent, states, limit, before)
        with self._lock:
            rows = self._db.execute(sql, params).fetchall()
        return [assignment_from_row(r) for r in rows]

    def summaries(self, *, open_only: bool = False, agent: str | None = None,
                  states: Iterable[AssignmentState] | None = None, limit: int = 100,
                  before: str | None = None) -> list[AssignmentSummary]:
        """Compact rows for `fleet assignments` and the MCP list: same filters as `assignments`."""
        sql, params = list_query(SUMMARY_COLUMNS, open_only, agent, states, limit, before)
        with self._lock:
            rows = self._db.execute(sql, params).fetchall()
        return [summary_from_row(r) for r in rows]

    def queued(self, limit: int = 100) -> list[Assignment]:
        """Queued assignments, oldest first: the order `dispatch` serves them in."""
        with self._lock:
            rows = self._db.execute(f"SELECT {LIST_COLUMNS} FROM assignments WHERE state = 'queued' "
                                    "ORDER BY id LIMIT ?", (max(1, min(limit, MAX_LIST)),)).fetchall()
        return [assignment_from_row(r) for r in rows]

    def agent_load(self) -> dict[str, tuple[int, float | None]]:
        """Per agent: (open assignments, queued ones named for it included; the time it was last sent
        one). For routing."""
        with self._lock:
            rows = self._db.execute(
                "SELECT agent, SUM(state IN ('queued', 'sent', 'working', 'reported')), MAX(sent_at) FROM assignments "
                "WHERE agent IS NOT NULL GROUP BY agent").fetchall()
        return {agent: (int(n or 0), last) for agent, n, last in rows}

    # -- events ------------------------------------------------------------------------------------

    def events_since(self, cursor: int = 0, limit: int = DEFAULT_EVENT_PAGE, *,
                     assignment: str | None = None) -> tuple[list[Event], int]:
        """Events with a cursor above `cursor`, oldest first, and the cursor to pass next time (the
        last one returned, or `cursor` itself when there is nothing new)."""
        sql = "SELECT id, time, assignment, agent, actor, kind, from_state, to_state, details FROM events WHERE id > ?"
        params: list[Any] = [max(0, int(cursor))]
        if assignment is not None:
            sql += " AND assignment = ?"
            params.append(assignment)
        sql += " ORDER BY id LIMIT ?"
        params.append(max(1, min(limit, MAX_EVENT_PAGE)))
        with self._lock:
            rows = self._db.execute(sql, params).fetchall()
        events = [Event(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], json.loads(r[8])) for r in rows]
        return events, (events[-1].cursor if events else max(0, int(cursor)))

    def events_for(self, assignment: str) -> list[Event]:
        """Every event of one assignment, oldest first (bounded by `MAX_EVENT_PAGE`)."""
        return self.events_since(0, MAX_EVENT_PAGE, assignment=assignment)[0]

    def latest_cursor(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0])

    def data_version(self) -> int:
        """A number that changes whenever another connection commits (SQLite `PRAGMA data_version`):
        a waiter polls this cheaply and reads the rows only when it moved."""
        with self._lock:
            return int(self._db.execute("PRAGMA data_version").fetchone()[0])

    # -- idempotency for plain sends ---------------------------------------------------------------

    def begin_request(self, scope: str, request_id: str, request: Mapping[str, Any]) -> RequestRecord:
        """Claim `request_id` in `scope` for this request, or return the record a first call made.

        `fresh=True`: go ahead, then `finish_request` with the result (or `forget_request` if it
        definitely did nothing, so a retry may try again). `fresh=False` with a `result`: a
        duplicate, answer with that result. `fresh=False`, `result` None: the first call is still
        running or died midway; the caller decides (e.g. look for the receipt it would have made).
        The same id with a different request raises `RequestIdConflict`.
        """
        check_scope(scope)
        sha = request_sha(request)
        with self._write() as db:
            now = self._clock()
            db.execute("DELETE FROM request_ids WHERE created_at < ?", (now - REQUEST_TTL,))
            row = db.execute("SELECT sha, result, created_at FROM request_ids WHERE scope = ? AND id = ?",
                             (scope, request_id)).fetchone()
            if row is None:
                db.execute("INSERT INTO request_ids (scope, id, sha, result, created_at) VALUES (?, ?, ?, NULL, ?)",
                           (scope, request_id, sha, now))
                return RequestRecord(scope, request_id, sha, None, now, fresh=True)
            if row[0] != sha:
                raise request_conflict(scope, request_id)
            return RequestRecord(scope, request_id, sha, loads_or_none(row[1]), row[2], fresh=False)

    def find_request(self, scope: str, request_id: str) -> RequestRecord | None:
        """The live idempotency record for `request_id` in `scope`, or None; writes nothing (a caller
        that must decide before it writes, e.g. `assign` before routing, peeks with this)."""
        with self._lock:
            row = self._db.execute("SELECT sha, result, created_at FROM request_ids WHERE scope = ? AND id = ? "
                                   "AND created_at >= ?", (scope, request_id, self._clock() - REQUEST_TTL)).fetchone()
        if row is None:
            return None
        return RequestRecord(scope, request_id, row[0], loads_or_none(row[1]), row[2], fresh=False)

    def finish_request(self, scope: str, request_id: str, result: Mapping[str, Any]) -> None:
        with self._write() as db:
            db.execute("UPDATE request_ids SET result = ? WHERE scope = ? AND id = ?",
                       (dumps(dict(result)), scope, request_id))

    def forget_request(self, scope: str, request_id: str) -> None:
        with self._write() as db:
            db.execute("DELETE FROM request_ids WHERE scope = ? AND id = ? AND result IS NULL", (scope, request_id))

    def prune_requests(self, max_age: float = REQUEST_TTL) -> int:
        """Drop idempotency records older than `max_age` seconds; returns how many."""
        with self._write() as db:
            return db.execute("DELETE FROM request_ids WHERE created_at < ?", (self._clock() - max_age,)).rowcount

    # -- internals ---------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One short `BEGIN IMMEDIATE` transaction: committed on success, rolled back on any error."""
        with self._lock:
            db = self._db
            try:
                db.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise ledger_busy(self.path, exc) from exc
            try:
                yield db
                db.execute("COMMIT")
            except BaseException as exc:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                    raise ledger_busy(self.path, exc) from exc
                raise

    def _state(self, db: sqlite3.Connection, assignment: str) -> AssignmentState:
        row = db.execute("SELECT state FROM assignments WHERE id = ?", (assignment,)).fetchone()
        if row is None:
            raise not_found(assignment)
        state: AssignmentState = row[0]
        return state

    def _get(self, db: sqlite3.Connection, assignment: str) -> Assignment:
        row = db.execute(f"SELECT {LIST_COLUMNS} FROM assignments WHERE id = ?", (assignment,)).fetchone()
        if row is None:
            raise not_found(assignment)
        return assignment_from_row(row)

    def _event(self, db: sqlite3.Connection, now: float, assignment: str | None, agent: str | None, actor: str,
               kind: str, from_state: str | None, to_state: str | None, details: Mapping[str, Any]) -> Event:
        text = event_text(kind, details)
        cur = db.execute("INSERT INTO events (time, assignment, agent, actor, kind, from_state, to_state, details) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                         (now, assignment, agent, actor, kind, from_state, to_state, text))
        return Event(int(cur.lastrowid or 0), now, assignment, agent, actor, kind, from_state, to_state, dict(details))

