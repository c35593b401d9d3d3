"""Reading what is left of a damaged SQLite ledger, row by row, and judging whether one is damaged.

`fault(path)` answers "is this file a usable ledger?" with SQLite's own `PRAGMA quick_check` (every
page and every b-tree, no index contents): None when it is, else what SQLite said. `salvage(conn,
table, columns)` reads every row of `table` it still can, in rowid order: a read that hits a bad
page stops a scan, so the scan resumes past it, probing for the first rowid whose seek no longer
lands on the bad page (exponential, then binary search). Rows on the bad pages themselves are lost;
rows on a page that SQLite can read but that hold nonsense are returned as they are, and the caller's
fresh schema (CHECK, NOT NULL) refuses what it must.

No `.recover`: that is the sqlite3 shell's, not the library's, and the shell is not always installed.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

#: The largest rowid SQLite hands out; a probe past it means nothing readable is left.
MAX_ROWID: Final = 2**63 - 1


@dataclass(frozen=True)
class Salvaged:
    """The rows read from one table, and whether the scan met damage (then some rows may be lost).
    `expected` is the table's row count when SQLite could still count it (often it cannot)."""

    table: str
    rows: list[tuple[Any, ...]]
    complete: bool
    expected: int | None


def fault(path: Path) -> str | None:
    """None when `path` is a sound SQLite file, else SQLite's complaint (writes nothing; never raises).
    Opened read-write so that SQLite can read a write-ahead log beside it, as every fleet process does."""
    try:
        conn = sqlite3.connect(path, timeout=5.0)
    except sqlite3.Error as exc:
        return str(exc)
    try:
        rows = conn.execute("PRAGMA quick_check").fetchall()
    except sqlite3.DatabaseError as exc:
        return str(exc)
    finally:
        conn.close()
    problems = [str(r[0]) for r in rows if r and r[0] != "ok"]
    return "; ".join(problems[:5]) or None


def salvage(conn: sqlite3.Connection, table: str, columns: Sequence[str]) -> Salvaged:
    """Every readable row of `table` (only `columns`, in that order), in rowid order."""
    cols = ", ".join(columns)
    rows: list[tuple[Any, ...]] = []
    after = last_resume = -MAX_ROWID - 1
    complete = True
    while True:
        try:
            for row in conn.execute(f"SELECT rowid, {cols} FROM {table} WHERE rowid > ? ORDER BY rowid", (after,)):
                rows.append(tuple(row[1:]))
                after = row[0]
            break
        except sqlite3.DatabaseError:
            complete = False
            resume = _next_readable(conn, table, after)
            if resume is None:
                break
            # Resuming at the same row twice means that row itself cannot be read (its seek works, its
            # content does not): skip it.
            after, last_resume = (resume - 1 if resume > last_resume else resume), max(resume, last_resume)
    return Salvaged(table, rows, complete, _count(conn, table))


def _first_from(conn: sqlite3.Connection, table: str, start: int) -> int | None:
    """The first rowid >= `start`; None when there is none; raises when the seek meets damage."""
    row = conn.execute(f"SELECT rowid FROM {table} WHERE rowid >= ? ORDER BY rowid LIMIT 1", (start,)).fetchone()
    return None if row is None else int(row[0])


def _next_readable(conn: sqlite3.Connection, table: str, after: int) -> int | None:
    """The first rowid past the damage that stopped a scan after `after`, or None if none is left.

    A seek for rowid X fails while X falls in a bad page's key range and works beyond it, so the
    smallest working X is found by doubling the step, then halving the gap."""
    bad, step = after, 1
    while True:
        probe = min(after + step, MAX_ROWID)
        try:
            found = _first_from(conn, table, probe)
            break
        except sqlite3.DatabaseError:
            if probe == MAX_ROWID:
                return None
            bad, step = probe, step * 2
    good = probe
    while good - bad > 1:
        mid = (bad + good) // 2
        try:
            candidate = _first_from(conn, table, mid)
        except sqlite3.DatabaseError:
            bad = mid
            continue
        good, found = mid, candidate
    return found


def _count(conn: sqlite3.Connection, table: str) -> int | None:
    with contextlib.suppress(sqlite3.DatabaseError):
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    return None


def readable_tables(conn: sqlite3.Connection) -> set[str] | None:
    """The table names in the damaged file's schema, or None when even the schema is unreadable."""
    try:
        return {str(r[0]) for r in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")}
    except sqlite3.DatabaseError:
        return None


def sequence(conn: sqlite3.Connection, table: str) -> int | None:
    """The AUTOINCREMENT high-water mark SQLite kept for `table`, when it is still readable."""
    with contextlib.suppress(sqlite3.DatabaseError):
        row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = ?", (table,)).fetchone()
        return int(row[0]) if row else None
    return None
