"""What a watchdog tick holds: its overlap lock, and the ledger or the reason it cannot be used.

A tick must not stop because `fleet.db` is damaged: `fleet.service.tick.open_ledger` returns the fault
instead of raising it, and `LEDGER_FAULTS` is what the tick catches wherever it touches the ledger
later (a bad page may show only when a query reaches it). While the ledger is down, the watchdog's memory between ticks
(crash streaks, notices) goes to `FALLBACK_DB` beside it; `fleet ledger-repair` puts a ledger back.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from fleet.errors import FleetError, LedgerError, StoreSchemaMismatch, StoreTimeout, StoreUnavailable
from fleet.fsutil import ensure_dir, flock_within, open_lock_file

LOCK_FILE: Final = "watchdog.lock"
#: The watchdog's tables while `fleet.db` is unusable (see `fleet.service.tick`).
FALLBACK_DB: Final = "watchdog-fallback.db"
#: What a damaged or unusable ledger raises: fleet's own wrapper, or SQLite's when a page is bad; with
#: the ledger in the shared store (`[store]`), the database down or its schema not this fleet's.
LEDGER_FAULTS: Final = (LedgerError, sqlite3.DatabaseError, StoreUnavailable, StoreSchemaMismatch, StoreTimeout)


def private_file(path: Path) -> Path:
    """Create `path` 0600 if missing; refuse a symlink in its place (as the ledger does)."""
    os.close(open_lock_file(path))
    return path


def ledger_fault(exc: BaseException) -> dict[str, Any]:
    """The fault as the tick reports it: fleet's own error as it is, SQLite's as `ledger_unusable`."""
    if isinstance(exc, FleetError):
        return exc.to_dict()
    if type(exc) is sqlite3.DatabaseError:  # SQLITE_CORRUPT, SQLITE_NOTADB: the file itself is damaged
        return LedgerError(f"The ledger is damaged: {exc}.", hint="Run `fleet ledger-repair`: it keeps the "
                           "damaged file, salvages what it can and starts a fresh ledger.").to_dict()
    return LedgerError(f"The ledger could not be used: {exc}.",
                       hint="Retry; if it persists, see `fleet doctor` and the state dir's disk.").to_dict()


@contextlib.contextmanager
def tick_lock(state_dir: Path) -> Iterator[str | None]:
    """Hold the overlap lock for the body; yields None when held, else why not (who holds it)."""
    fd = open_lock_file(ensure_dir(state_dir) / LOCK_FILE)
    try:
        if not flock_within(fd, 0):  # one try, no wait
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip()
            yield f"Another watchdog tick is running ({holder or 'pid unknown'}); this one did nothing."
            return
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}, started {time.time():.3f}".encode(), 0)
        yield None
    finally:
        os.close(fd)


def turn_id_of(detail: dict[str, Any]) -> str | None:
    turn = detail.get("turn_id")
    return str(turn) if turn else None


def compact_detail(detail: dict[str, Any]) -> dict[str, Any]:
    """What of an action's result goes into a ledger event: ids and codes, not whole documents."""
    keep = ("turn_id", "request", "decision", "resumed", "pid", "dispatched", "notify", "lead", "interrupt",
            "fatal", "failed")
    return {k: detail[k] for k in keep if k in detail}

