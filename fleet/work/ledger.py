"""The assignment ledger: SQLite at `<state_dir>/fleet.db`, shared by every fleet process.

Tables (schema version `SCHEMA_VERSION`, kept in `PRAGMA user_version`):

- `assignments`: one row per assignment, updated in place by compare-and-set transitions.
- `events`: append-only (triggers refuse UPDATE and DELETE). The `INTEGER PRIMARY KEY AUTOINCREMENT`
  row id is the cursor a lead polls with (`events_since`). Every write transaction is `BEGIN
  IMMEDIATE`, so writers are serialised and each commits its ids before the next writer takes any:
  a reader that saw cursor N never later finds a new event with an id <= N. Ids are strictly
  increasing, never reused, not necessarily contiguous.
- `request_ids`: (scope, id) -> sha256 of the request and its result, the idempotency record for
  assignment creation (scope `assign`) and plain sends (scope `send:<agent>`). Pruned by age
  (`REQUEST_TTL`), never by size.

Concurrency: the CLI, the MCP server and the watchdog open the file at once. WAL mode lets readers
run beside a writer; a busy timeout makes writers queue instead of failing; transactions are a few
statements long. A write that still cannot get the lock within the timeout raises `LedgerBusy`
(retryable), never a raw `database is locked`. One `Ledger` object serialises its own callers with a
lock, so it may be shared by threads.

Files: the state dir is created 0700; `fleet.db` is created 0600 before SQLite opens it (SQLite then
gives `-wal` and `-shm` the same mode); a symlink in its place is refused. `synchronous=FULL`: a
committed transition survives a power cut (each commit costs one fsync; assignments are few).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Final

from fleet.errors import InvalidInput, LedgerBusy, LedgerError, RequestIdConflict
from fleet.fsutil import FILE_MODE, ensure_dir

from .lifecycle import (
    END_STATES,
    OPEN_STATES,
    STATES,
    AssignmentNotFound,
    AssignmentState,
    StateConflict,
    check_transition,
)
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

__all__ = [
    "BUSY_TIMEOUT", "DB_NAME", "REQUEST_TTL", "Assignment", "AssignmentSummary", "Event", "Ledger", "LedgerBusy",
    "LedgerError", "RequestIdConflict", "RequestRecord", "new_assignment_id", "request_sha",
]

DB_NAME: Final = "fleet.db"
SCHEMA_VERSION: Final = 1
#: How long a writer waits for the lock before `LedgerBusy`. Transactions hold it for milliseconds;
#: ten seconds covers a stalled disk without hanging a CLI call for long.
BUSY_TIMEOUT: Final = 10.0
#: A retry of the same request id is honoured for a week; older ids may be reused.
REQUEST_TTL: Final = 7 * 86400.0
#: Events per `events_since` page: enough for a lead's poll, small enough for one MCP result.
DEFAULT_EVENT_PAGE: Final = 200
MAX_EVENT_PAGE: Final = 5000
MAX_LIST: Final = 10_000
#: Event details are a few fields; a bigger blob belongs in an assignment column.
MAX_DETAILS_BYTES: Final = 64 * 1024
EVENT_KIND: Final = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
#: `assign`, or `send:<agent>` (a plain send's ids are per agent, as its journal lookup was).
REQUEST_SCOPE: Final = re.compile(r"^[a-z][a-z0-9_]{0,15}(?::[a-z][a-z0-9-]{0,31})?$")

#: Columns a transition or `annotate` may set, and whether each holds JSON.
FIELDS: Final[dict[str, bool]] = {
    "agent": False, "holder": False, "prompt": False, "deadline": False, "turn_id": False, "reason": False,
    "receipt": True, "report": True, "verification": True, "baseline": True,
}
_SCHEMA: Final = f"""
CREATE TABLE IF NOT EXISTS assignments (
  id TEXT PRIMARY KEY,
  agent TEXT,
  holder TEXT NOT NULL,
  task TEXT NOT NULL,
  prompt TEXT,
  skills TEXT NOT NULL DEFAULT '[]',
  read_paths TEXT NOT NULL DEFAULT '[]',
  write_paths TEXT NOT NULL DEFAULT '[]',
  checks TEXT NOT NULL DEFAULT '[]',
  deadline REAL,
  state TEXT NOT NULL CHECK (state IN ({", ".join(repr(s) for s in STATES)})),
  receipt TEXT,
  turn_id TEXT,
  report TEXT,
  verification TEXT,
  baseline TEXT,
  reason TEXT,
  request_id TEXT,
  created_at REAL NOT NULL,
  updated_at REAL NOT NULL,
  sent_at REAL,
  ended_at REAL
);
CREATE INDEX IF NOT EXISTS assignments_state ON assignments (state, id);
CREATE INDEX IF NOT EXISTS assignments_agent ON assignments (agent, id);
CREATE TABLE IF NOT EXISTS events (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  time REAL NOT NULL,
  assignment TEXT,
  agent TEXT,
  actor TEXT NOT NULL,
  kind TEXT NOT NULL,
  from_state TEXT,
  to_state TEXT,
  details TEXT NOT NULL DEFAULT '{{}}'
);
CREATE INDEX IF NOT EXISTS events_assignment ON events (assignment, id);
CREATE TRIGGER IF NOT EXISTS events_no_update BEFORE UPDATE ON events
  BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events
  BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE TABLE IF NOT EXISTS request_ids (
  scope TEXT NOT NULL,
  id TEXT NOT NULL,
  sha TEXT NOT NULL,
  result TEXT,
  created_at REAL NOT NULL,
  PRIMARY KEY (scope, id)
);
CREATE INDEX IF NOT EXISTS request_ids_age ON request_ids (created_at);
"""

class Ledger:
    """A connection to `<state_dir>/fleet.db`. Open one per process (or share it between threads);
    `close()` it, or use it as a context manager. `clock` is injectable for tests."""

    def __init__(self, state_dir: Path, *, clock: Callable[[], float] = time.time,
                 busy_timeout: float = BUSY_TIMEOUT) -> None:
        self.path = ensure_dir(Path(state_dir)) / DB_NAME
        self._clock = clock
        self._lock = threading.RLock()
        _create_private(self.path)
        try:
            self._db = sqlite3.connect(self.path, timeout=busy_timeout, isolation_level=None,
                                       check_same_thread=False)
        except sqlite3.Error as exc:
            raise LedgerError(f"Cannot open the ledger {self.path}: {exc}.",
                              hint="Check the state dir's permissions and free space.") from exc
        try:
            self._setup_patiently(busy_timeout)
        except BaseException:
            self._db.close()
            raise

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
    ) -> tuple[Assignment, bool]:
        """Insert a new assignment in state `queued`, with its `created` event; returns it and
        `duplicate`.

        With `request_id`, creation is idempotent in one transaction: the same id with the same
        `request` (any JSON-able mapping; the sha of its canonical JSON is compared) returns the
        assignment the first call created and `duplicate=True`, creating nothing; the same id with a
        different request raises `RequestIdConflict`. Expired request ids are pruned here too.
        """
        sha = request_sha(request if request is not None else {"task": task})
        row = {
            "id": "", "agent": agent, "holder": holder, "task": task, "prompt": prompt,
            "skills": _dumps(list(skills)), "read_paths": _dumps(list(read_paths)),
            "write_paths": _dumps(list(write_paths)), "checks": _dumps(list(checks)), "deadline": deadline,
            "state": "queued", "request_id": request_id,
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
                           (request_id, sha, _dumps({"assignment": new_id}), now))
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
        expected = _expected(expect)
        sets = _field_values(fields)
        with self._write() as db:
            now = self._clock()
            current = self._state(db, assignment)
            if expected is not None and current not in expected:
                raise StateConflict(
                    f"Assignment {assignment} is {current}, not {' or '.join(sorted(expected))}: "
                    "another process moved it first.",
                    hint=f"Run `fleet show {assignment}` to see what happened.",
                    assignment=assignment, state=current,
                )
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

    def annotate(self, assignment: str, kind: str, *, actor: str, details: Mapping[str, Any] | None = None,
                 **fields: Any) -> Event:
        """Record an event about `assignment` without a state change (a denied patch, an ask for a
        report, a check run), optionally setting `fields` in the same transaction."""
        sets = _field_values(fields)
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

    def get(self, assignment: str) -> Assignment:
        with self._lock:
            return self._get(self._db, assignment)

    def baseline(self, assignment: str) -> dict[str, Any] | None:
        """The verification baseline (the cwd snapshot taken at send time), if recorded."""
        with self._lock:
            row = self._db.execute("SELECT baseline FROM assignments WHERE id = ?", (assignment,)).fetchone()
        if row is None:
            raise _not_found(assignment)
        baseline: dict[str, Any] | None = loads_or_none(row[0])
        return baseline

    def assignments(self, *, open_only: bool = False, agent: str | None = None,
                    states: Iterable[AssignmentState] | None = None, limit: int = 100,
                    before: str | None = None) -> list[Assignment]:
        """Full assignments, newest first (ids sort by creation). `before` pages: pass the last id
        seen. For a listing, `summaries` takes the same filters and is several times cheaper."""
        sql, params = _list_query(LIST_COLUMNS, open_only, agent, states, limit, before)
        with self._lock:
            rows = self._db.execute(sql, params).fetchall()
        return [assignment_from_row(r) for r in rows]

    def summaries(self, *, open_only: bool = False, agent: str | None = None,
                  states: Iterable[AssignmentState] | None = None, limit: int = 100,
                  before: str | None = None) -> list[AssignmentSummary]:
        """Compact rows for `fleet assignments` and the MCP list: same filters as `assignments`."""
        sql, params = _list_query(SUMMARY_COLUMNS, open_only, agent, states, limit, before)
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
        if not REQUEST_SCOPE.match(scope):
            raise InvalidInput(f"Bad request scope {scope!r}.", hint="Use a short lower-case word.")
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
                       (_dumps(dict(result)), scope, request_id))

    def forget_request(self, scope: str, request_id: str) -> None:
        with self._write() as db:
            db.execute("DELETE FROM request_ids WHERE scope = ? AND id = ? AND result IS NULL", (scope, request_id))

    def prune_requests(self, max_age: float = REQUEST_TTL) -> int:
        """Drop idempotency records older than `max_age` seconds; returns how many."""
        with self._write() as db:
            return db.execute("DELETE FROM request_ids WHERE created_at < ?", (self._clock() - max_age,)).rowcount

    # -- internals ---------------------------------------------------------------------------------

    def _setup_patiently(self, busy_timeout: float) -> None:
        """`_setup`, retried while another process holds the file in a state SQLite's busy handler
        does not wait out (WAL recovery, a journal-mode change): a lock is not damage, so it never
        reads as `ledger_unusable`; past `busy_timeout` it is `LedgerBusy` (retryable)."""
        deadline = time.monotonic() + busy_timeout
        while True:
            try:
                self._setup()
                return
            except _SetupBusy as busy:
                if time.monotonic() >= deadline:
                    raise _busy(self.path, busy.cause) from busy.cause
                time.sleep(0.05)

    def _setup(self) -> None:
        try:
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = FULL")
            self._db.execute("PRAGMA foreign_keys = ON")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise LedgerError(
                    f"The ledger {self.path} has schema version {version}; this fleet knows up to {SCHEMA_VERSION}.",
                    hint="Upgrade fleet, or point state_dir at another directory.")
            if version < SCHEMA_VERSION:
                with self._write() as db:  # executescript would COMMIT first: run statement by statement
                    for statement in _statements(_SCHEMA):
                        db.execute(statement)
                    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except sqlite3.OperationalError as exc:
            if _is_lock(exc):
                raise _SetupBusy(exc) from exc
            raise LedgerError(f"The ledger {self.path} is unusable: {exc}.",
                              hint="Run `fleet ledger-repair`: it keeps the damaged file, salvages what it can "
                              "and starts a fresh ledger.") from exc
        except sqlite3.DatabaseError as exc:
            raise LedgerError(f"The ledger {self.path} is unusable: {exc}.",
                              hint="Run `fleet ledger-repair`: it keeps the damaged file, salvages what it can "
                              "and starts a fresh ledger.") from exc
        for suffix in ("-wal", "-shm"):
            side = self.path.with_name(self.path.name + suffix)
            with contextlib.suppress(FileNotFoundError):
                if stat.S_IMODE(side.lstat().st_mode) & 0o077:
                    os.chmod(side, FILE_MODE)

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One short `BEGIN IMMEDIATE` transaction: committed on success, rolled back on any error."""
        with self._lock:
            db = self._db
            try:
                db.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise _busy(self.path, exc) from exc
            try:
                yield db
                db.execute("COMMIT")
            except BaseException as exc:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                    raise _busy(self.path, exc) from exc
                raise

    def _state(self, db: sqlite3.Connection, assignment: str) -> AssignmentState:
        row = db.execute("SELECT state FROM assignments WHERE id = ?", (assignment,)).fetchone()
        if row is None:
            raise _not_found(assignment)
        state: AssignmentState = row[0]
        return state

    def _get(self, db: sqlite3.Connection, assignment: str) -> Assignment:
        row = db.execute(f"SELECT {LIST_COLUMNS} FROM assignments WHERE id = ?", (assignment,)).fetchone()
        if row is None:
            raise _not_found(assignment)
        return assignment_from_row(row)

    def _event(self, db: sqlite3.Connection, now: float, assignment: str | None, agent: str | None, actor: str,
               kind: str, from_state: str | None, to_state: str | None, details: Mapping[str, Any]) -> Event:
        if not EVENT_KIND.match(kind):
            raise InvalidInput(f"Bad event kind {kind!r}.", hint="Use a short snake_case word.")
        text = _dumps(dict(details))
        if len(text.encode()) > MAX_DETAILS_BYTES:
            raise InvalidInput(f"Event details are larger than {MAX_DETAILS_BYTES} bytes.",
                               hint="Store large data in an assignment field instead.")
        cur = db.execute("INSERT INTO events (time, assignment, agent, actor, kind, from_state, to_state, details) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                         (now, assignment, agent, actor, kind, from_state, to_state, text))
        return Event(int(cur.lastrowid or 0), now, assignment, agent, actor, kind, from_state, to_state, dict(details))


def _create_private(path: Path) -> None:
    """Create the db file 0600 if missing; refuse a symlink or a non-file in its place."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, FILE_MODE)
    except OSError as exc:
        raise LedgerError(f"Cannot open the ledger {path}: {exc.strerror or exc}.",
                          hint="Remove a symlink in its place, or check the state dir's permissions.") from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise LedgerError(f"The ledger {path} is not a regular file.", hint="Move it aside.")
        if stat.S_IMODE(st.st_mode) & 0o077:
            os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)


def _list_query(columns: str, open_only: bool, agent: str | None, states: Iterable[AssignmentState] | None,
                limit: int, before: str | None) -> tuple[str, list[Any]]:
    wanted = set(states) if states is not None else set(STATES)
    if open_only:
        wanted &= OPEN_STATES
    where = [f"state IN ({', '.join('?' * len(wanted))})"] if wanted != set(STATES) else []
    params: list[Any] = sorted(wanted) if where else []
    if agent is not None:
        where.append("agent = ?")
        params.append(agent)
    if before is not None:
        where.append("id < ?")
        params.append(before)
    sql = f"SELECT {columns} FROM assignments"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY id DESC LIMIT ?"
    params.append(max(1, min(limit, MAX_LIST)))
    return sql, params


def _statements(script: str) -> Iterator[str]:
    """Complete SQL statements of `script` (a trigger's inner `;` does not end its statement)."""
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            yield buf.strip()
            buf = ""


def _field_values(fields: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown:
        raise InvalidInput(f"Cannot set {', '.join(unknown)} on an assignment.",
                           hint=f"Settable fields: {', '.join(FIELDS)}.")
    return {k: (_dumps(v) if FIELDS[k] and v is not None else v) for k, v in fields.items()}


def _expected(expect: AssignmentState | Iterable[AssignmentState] | None) -> set[str] | None:
    if expect is None:
        return None
    return {expect} if isinstance(expect, str) else set(expect)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _not_found(assignment: str) -> AssignmentNotFound:
    return AssignmentNotFound(f"No assignment {assignment!r} in the ledger.",
                              hint="Run `fleet assignments` to list them.", assignment=assignment)


def request_conflict(scope: str, request_id: str) -> RequestIdConflict:
    """`request_id_conflict`: an id reused for a different request in `scope`."""
    what = "assignment" if scope == "assign" else "request"
    return RequestIdConflict(
        f"The request id {request_id!r} was already used for a different {what}.",
        hint="Use a new request id for a new request; reuse one only to retry the identical request.",
        request_id=request_id, scope=scope,
    )


class _SetupBusy(Exception):
    """The file was locked while the ledger was being set up; carries SQLite's error."""

    def __init__(self, cause: sqlite3.OperationalError) -> None:
        super().__init__(str(cause))
        self.cause = cause


def _is_lock(exc: sqlite3.OperationalError) -> bool:
    text = str(exc)
    return "locked" in text or "busy" in text


def _busy(path: Path, exc: sqlite3.OperationalError) -> LedgerBusy:
    return LedgerBusy(f"The ledger {path} stayed locked by another fleet process ({exc}).",
                      hint="Retry; if it persists, look for a stuck fleet process.")
