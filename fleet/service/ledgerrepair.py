"""`fleet ledger-repair`: move a damaged `fleet.db` aside, salvage what SQLite can still read, and put a
fresh ledger holding it in place.

Order, under the watchdog's overlap lock (so no tick writes meanwhile):

1. Judge the file with SQLite's `quick_check` (`fleet.work.salvage.fault`). A sound ledger is left
   alone: the call says so and changes nothing.
2. Move `fleet.db` and its `-wal` / `-shm` to `fleet.db.corrupt-<time>[-wal|-shm]`. Nothing is
   deleted: the damaged file stays for people and for tools better at recovery than fleet.
3. Read a scratch copy table by table (`salvage`), past bad pages, and insert what the fresh schema
   accepts into a new ledger built in a private scratch dir (its schema has the watchdog's tables).
4. Keep event cursors safe: the new `events` ids continue above every id the old ledger ever gave
   out (its AUTOINCREMENT mark when readable; else the highest salvaged id plus `EVENT_ID_GAP`, or
   the time in milliseconds if that is higher), so a lead polling with an old cursor never misses a
   new event.
5. Record a `ledger_repaired` event in the new ledger and an audit record, then rename the new file
   into place. A ledger another process created in the meantime is moved aside too, never merged.

The result says, per table, how many rows were salvaged and how many are known lost (None: unknown,
because SQLite could not count the damaged table). Other fleet processes holding the old file open
keep using it until their next call: the CLI and each MCP call open the ledger afresh, and the
watchdog reopens it every tick.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any, Final

from fleet import audit
from fleet.errors import LedgerBusy
from fleet.fsutil import ensure_dir
from fleet.watchdog.tickstate import tick_lock
from fleet.work import schema
from fleet.work.ledger import DB_NAME, Ledger
from fleet.work.salvage import fault, readable_tables, salvage, sequence

from .core import Service

#: Tables carried over, in this order (the ledger's, then the watchdog's): every table of fleet.db.
TABLES: Final = schema.TABLES
#: When the old event id high-water mark is unreadable, new ids start at least this far above the
#: highest salvaged one (lost events had ids there, and a lead may hold a cursor among them), and at
#: least at the time in ms (~1.8e12: above any count of events a ledger holds, well below 2**53).
EVENT_ID_GAP: Final = 1_000_000
SIDE_FILES: Final = ("", "-wal", "-shm")


def ledger_repair(svc: Service, *, holder: str | None = None) -> dict[str, Any]:
    caller = svc.holder_for(holder)
    state_dir = svc.config.state_dir
    svc.close()  # this process's own connection must not hold the old file
    path = state_dir / DB_NAME
    with tick_lock(state_dir) as busy:
        if busy is not None:
            raise LedgerBusy(f"A watchdog tick is running; the ledger was not touched. {busy}",
                             hint="Retry in a minute; the tick holds its lock for seconds.")
        problem = fault(path) if path.exists() else None
        if problem is None:
            return {"repaired": False, "problem": None, "moved": [], "salvaged": {}, "lost": {}}
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"-{os.getpid()}"
        moved = _move_aside(path, f"{DB_NAME}.corrupt-{stamp}")
        scratch = ensure_dir(state_dir / f".ledger-repair-{stamp}")
        try:
            result = _rebuild(Path(moved[0]), scratch, caller, problem)
            result["moved"] = moved
            new = scratch / "new" / DB_NAME
            if path.exists():  # created by another fleet process since the move: kept, never merged
                result["moved"] += _move_aside(path, f"{DB_NAME}.during-repair-{stamp}")
            os.rename(new, path)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    audit.record(state_dir, "ledger.repair", holder=caller, problem=problem, moved=result["moved"],
                 salvaged=result["salvaged"], lost=result["lost"])
    return result


def _move_aside(path: Path, name: str) -> list[str]:
    out = []
    for suffix in SIDE_FILES:
        src = path.with_name(path.name + suffix)
        if src.exists():
            dst = path.with_name(name + suffix)
            os.rename(src, dst)
            out.append(str(dst))
    return out


def _rebuild(old_path: Path, scratch: Path, caller: str, problem: str) -> dict[str, Any]:
    """Salvage `old_path` (through a scratch copy, so the kept file is never written) into a new
    ledger at `scratch/new/fleet.db`; returns what was salvaged and lost."""
    copy = scratch / "old.db"
    for suffix in ("", "-wal"):
        src = old_path.with_name(old_path.name + suffix)
        if src.exists():
            shutil.copyfile(src, copy.with_name(copy.name + suffix))
    new_dir = ensure_dir(scratch / "new")
    with Ledger(new_dir) as ledger:  # every table of fleet.db, the watchdog's included
        new_path = ledger.path
    salvaged: dict[str, int] = {}
    lost: dict[str, int | None] = {}
    old = sqlite3.connect(copy, timeout=5.0)
    new = sqlite3.connect(new_path, timeout=5.0, isolation_level=None)
    try:
        tables = readable_tables(old)
        high = 0
        for table in TABLES:
            columns = [str(r[1]) for r in new.execute(f"PRAGMA table_info({table})")]
            if tables is None or table not in tables:  # unreadable schema: unknown; never created: nothing
                salvaged[table], lost[table] = 0, None if tables is None else 0
                continue
            got = salvage(old, table, _shared(old, table, columns))
            kept = _insert(new, table, _shared(old, table, columns), got.rows)
            salvaged[table] = kept
            if got.expected is not None:
                lost[table] = max(0, got.expected - kept)
            else:  # uncountable: known only when the scan met no damage (then only refused rows are lost)
                lost[table] = len(got.rows) - kept if got.complete else None
            if table == "events" and got.rows:
                high = max(int(r[0]) for r in got.rows)
        old_mark = sequence(old, "events") if tables is not None else None
        floor = max(old_mark, high) if old_mark is not None else max(high + EVENT_ID_GAP, int(time.time() * 1000))
        _set_sequence(new, "events", floor)
    finally:
        old.close()
        new.close()
    result: dict[str, Any] = {"repaired": True, "problem": problem, "salvaged": salvaged, "lost": lost,
                              "events_from": floor + 1}
    with Ledger(new_dir) as ledger:
        ledger.record_event("ledger_repaired", actor=caller,
                            details={"problem": problem[:500], "moved_from": old_path.name, "salvaged": salvaged,
                                     "lost": lost})
    return result


def _shared(old: sqlite3.Connection, table: str, columns: list[str]) -> list[str]:
    """The new table's columns that the old one has (all of them when its schema cannot be read);
    `id` first for `events`, whose first column the cursor floor reads."""
    try:
        have = {str(r[1]) for r in old.execute(f"PRAGMA table_info({table})")}
    except sqlite3.DatabaseError:
        return columns
    return [c for c in columns if c in have] or columns


def _insert(new: sqlite3.Connection, table: str, columns: list[str], rows: list[tuple[Any, ...]]) -> int:
    """Insert each row the fresh schema accepts (a damaged row may break CHECK or NOT NULL); count them."""
    sql = f"INSERT OR IGNORE INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    kept = 0
    new.execute("BEGIN IMMEDIATE")
    try:
        for row in rows:
            with contextlib.suppress(sqlite3.Error):
                kept += new.execute(sql, row).rowcount
        new.execute("COMMIT")
    except BaseException:
        new.execute("ROLLBACK")
        raise
    return kept


def _set_sequence(new: sqlite3.Connection, table: str, floor: int) -> None:
    """Make the next AUTOINCREMENT id of `table` `floor + 1` (never lower than what is there)."""
    row = new.execute("SELECT seq FROM sqlite_sequence WHERE name = ?", (table,)).fetchone()
    if row is None:
        new.execute("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", (table, floor))
    elif int(row[0]) < floor:
        new.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = ?", (floor, table))
