"""The schema of `<state_dir>/fleet.db`, every table in it, and opening the file: the one owner.

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
- `watchdog_state`, `watchdog_ticks`: the watchdog's memory between ticks (`fleet.watchdog.store`
  reads and writes them; the ledger's operations never do).

Migrations: `MIGRATIONS[i]` takes a file from version i to i + 1, in one `BEGIN IMMEDIATE`
transaction with the version bump, so a crash leaves the old version or the new one. Version 1 is the
ledger's three tables; version 2 adds the watchdog's two; version 3 adds the worktree columns of
`assignments` (repo, branch, base_commit, verified_commit, merged_commit), in place, keeping every row;
version 4 adds `assignments.usage` (the tokens of every turn the assignment caused, JSON), the same way;
version 5 adds `assignments.budget` (its token budget, an integer; NULL: none), the same way.
Version 2's statements are `IF NOT EXISTS`: a version-1 file from an older fleet usually has the
watchdog's tables already (its watchdog created them itself, with these same statements), and
migrating keeps their rows. A file from a newer fleet
is refused, never downgraded.

The watchdog's fallback file (`watchdog-fallback.db`, used while `fleet.db` is unusable) is not a
ledger: it holds only the watchdog's tables, created by `ensure_watchdog_tables` from the same
statements, and has no version.

Files: the state dir is created 0700 by the caller; `fleet.db` is created 0600 before SQLite opens
it (SQLite then gives `-wal` and `-shm` the same mode); a symlink in its place is refused.
`synchronous=FULL`: a committed transition survives a power cut (each commit costs one fsync).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from fleet.errors import LedgerBusy, LedgerError
from fleet.fsutil import FILE_MODE

from .lifecycle import STATES

DB_NAME: Final = "fleet.db"

_LEDGER_TABLES: Final = f"""
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

#: The watchdog's tables: the same columns and keys the watchdog created itself before version 2.
_WATCHDOG_TABLES: Final = """
CREATE TABLE IF NOT EXISTS watchdog_state (kind TEXT NOT NULL, key TEXT NOT NULL, agent TEXT,
  value TEXT NOT NULL, updated_at REAL NOT NULL, PRIMARY KEY (kind, key));
CREATE TABLE IF NOT EXISTS watchdog_ticks (id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL,
  dry_run INTEGER NOT NULL, ms INTEGER NOT NULL, skipped TEXT, actions TEXT NOT NULL);
"""

#: A repo agent's assignment: its repository, branch, the commit it started from (verification's
#: baseline), the commit holding the verified work, and the base's tip after it was merged.
_WORKTREE_COLUMNS: Final = """
ALTER TABLE assignments ADD COLUMN repo TEXT;
ALTER TABLE assignments ADD COLUMN branch TEXT;
ALTER TABLE assignments ADD COLUMN base_commit TEXT;
ALTER TABLE assignments ADD COLUMN verified_commit TEXT;
ALTER TABLE assignments ADD COLUMN merged_commit TEXT;
"""

#: The tokens an assignment's turns used (`fleet.vocab.TokenUsage` plus `turns`, JSON); NULL until
#: reconcile first counts them.
_USAGE_COLUMN: Final = """
ALTER TABLE assignments ADD COLUMN usage TEXT;
"""
#: The assignment's token budget (`fleet.tokens`: input + output tokens of its turns); NULL: none.
_BUDGET_COLUMN: Final = """
ALTER TABLE assignments ADD COLUMN budget INTEGER;
"""
#: `MIGRATIONS[i]` takes a file from version i to i + 1 (see the module docstring).
MIGRATIONS: Final[tuple[str, ...]] = (_LEDGER_TABLES, _WATCHDOG_TABLES, _WORKTREE_COLUMNS, _USAGE_COLUMN,
                                      _BUDGET_COLUMN)
SCHEMA_VERSION: Final = len(MIGRATIONS)
#: Every table of fleet.db, the ledger's first, in the order `fleet ledger-repair` carries them over.
TABLES: Final = ("assignments", "events", "request_ids", "watchdog_state", "watchdog_ticks")
WATCHDOG_TABLES: Final = frozenset({"watchdog_state", "watchdog_ticks"})
_UNUSABLE_HINT: Final = ("Run `fleet ledger-repair`: it keeps the damaged file, salvages what it can "
                         "and starts a fresh ledger.")


def connect(path: Path, busy_timeout: float) -> sqlite3.Connection:
    """Open (creating it 0600 if missing) and migrate the ledger at `path`; autocommit mode, usable
    from any thread (the caller serialises). Raises `LedgerError` for a file that cannot be used
    (a symlink, damage, a newer schema) and `LedgerBusy` when another process held it locked for
    longer than `busy_timeout`."""
    create_private(path)
    try:
        db = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise LedgerError(f"Cannot open the ledger {path}: {exc}.",
                          hint="Check the state dir's permissions and free space.") from exc
    try:
        _setup_patiently(db, path, busy_timeout)
    except BaseException:
        db.close()
        raise
    return db


def ensure_watchdog_tables(db: sqlite3.Connection, path: Path) -> None:
    """Make sure the file behind `db` has the watchdog's tables. On `fleet.db` the ledger's migration
    made them and this only reads. A file that is not a ledger (version 0, no `assignments`: the
    watchdog's fallback) gets them here, from the same statements. A ledger without them is one the
    ledger has not migrated (or a damaged one): `LedgerError`, never a second schema writer."""
    names = {str(r[0]) for r in db.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")}
    if names >= WATCHDOG_TABLES:
        return
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    if version != 0 or "assignments" in names:
        raise LedgerError(f"The ledger {path} (schema version {version}) has no watchdog tables.",
                          hint="Open it with the ledger first (it migrates the file), or run "
                          "`fleet ledger-repair` if it is damaged.")
    for statement in statements(_WATCHDOG_TABLES):
        db.execute(statement)


def create_private(path: Path) -> None:
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


def statements(script: str) -> Iterator[str]:
    """Complete SQL statements of `script` (a trigger's inner `;` does not end its statement)."""
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            yield buf.strip()
            buf = ""


def ledger_busy(path: Path, exc: sqlite3.OperationalError) -> LedgerBusy:
    return LedgerBusy(f"The ledger {path} stayed locked by another fleet process ({exc}).",
                      hint="Retry; if it persists, look for a stuck fleet process.")


def _setup_patiently(db: sqlite3.Connection, path: Path, busy_timeout: float) -> None:
    """`_setup`, retried while another process holds the file in a state SQLite's busy handler
    does not wait out (WAL recovery, a journal-mode change): a lock is not damage, so it never
    reads as `ledger_unusable`; past `busy_timeout` it is `LedgerBusy` (retryable)."""
    deadline = time.monotonic() + busy_timeout
    while True:
        try:
            _setup(db, path)
            return
        except _SetupBusy as busy:
            if time.monotonic() >= deadline:
                raise ledger_busy(path, busy.cause) from busy.cause
            time.sleep(0.05)


def _setup(db: sqlite3.Connection, path: Path) -> None:
    try:
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = FULL")
        db.execute("PRAGMA foreign_keys = ON")
        if _version(db, path) < SCHEMA_VERSION:
            _migrate(db, path)
    except sqlite3.OperationalError as exc:
        if _is_lock(exc):
            raise _SetupBusy(exc) from exc
        raise LedgerError(f"The ledger {path} is unusable: {exc}.", hint=_UNUSABLE_HINT) from exc
    except sqlite3.DatabaseError as exc:
        raise LedgerError(f"The ledger {path} is unusable: {exc}.", hint=_UNUSABLE_HINT) from exc
    for suffix in ("-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        with contextlib.suppress(FileNotFoundError):
            if stat.S_IMODE(side.lstat().st_mode) & 0o077:
                os.chmod(side, FILE_MODE)


def _version(db: sqlite3.Connection, path: Path) -> int:
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise LedgerError(
            f"The ledger {path} has schema version {version}; this fleet knows up to {SCHEMA_VERSION}.",
            hint="Upgrade fleet, or point state_dir at another directory.")
    return version


def _migrate(db: sqlite3.Connection, path: Path) -> None:
    """Run the migrations the file lacks, and the version bump, in one write transaction. The
    version is read again under the lock: another process may have migrated it meanwhile."""
    try:
        db.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        raise ledger_busy(path, exc) from exc
    try:
        for script in MIGRATIONS[_version(db, path):]:  # executescript would COMMIT first: one by one
            for statement in statements(script):
                db.execute(statement)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        db.execute("COMMIT")
    except BaseException as exc:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")
        if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
            raise ledger_busy(path, exc) from exc
        raise


class _SetupBusy(Exception):
    """The file was locked while the ledger was being set up; carries SQLite's error."""

    def __init__(self, cause: sqlite3.OperationalError) -> None:
        super().__init__(str(cause))
        self.cause = cause


def _is_lock(exc: sqlite3.OperationalError) -> bool:
    text = str(exc)
    return "locked" in text or "busy" in text
