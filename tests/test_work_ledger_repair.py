"""A damaged `fleet.db`: the watchdog tick goes on without it and says so, and `fleet ledger-repair`
moves it aside, salvages what SQLite can still read and starts a fresh ledger.

The damage is real: pages of a real ledger file are overwritten with random bytes (the header page,
or a leaf page of one table found with SQLite's `dbstat`), and every step runs as a real `fleet`
process. The crash test runs real Codex against the mock model.
"""

from __future__ import annotations

import json
import random
import sqlite3
from collections.abc import Callable
from pathlib import Path

from conftest import Fleet
from test_watchdog_tick import policy

from fleet.work.ledger import Ledger
from fleet.work.salvage import fault, salvage

PAGE = 4096


def _fill(state_dir: Path, n: int = 60) -> tuple[list[str], int]:
    """A ledger with `n` assignments (long tasks, so they span many pages) and their events; returns
    the ids and the highest event id."""
    ids = []
    with Ledger(state_dir) as ledger:
        for i in range(n):
            a, _ = ledger.create(task=f"task {i} " + "x" * 1500, holder="lead", actor="lead", agent="agent-1")
            ledger.annotate(a.id, "note", actor="lead", details={"i": i, "pad": "y" * 300})
            ids.append(a.id)
        _, cursor = ledger.events_since(0, 5000)
    return ids, cursor


def _leaf_pages(db: Path, table: str) -> list[int]:
    conn = sqlite3.connect(db)
    try:
        return [int(r[0]) for r in conn.execute(
            "SELECT pageno FROM dbstat WHERE name = ? AND pagetype = 'leaf' ORDER BY pageno", (table,))]
    finally:
        conn.close()


def _smash(db: Path, page: int, seed: int = 7) -> None:
    """Overwrite page `page` (1-based) of `db` with random bytes."""
    noise = random.Random(seed).randbytes(PAGE)
    with db.open("r+b") as fh:
        fh.seek((page - 1) * PAGE)
        fh.write(noise)


def test_salvage_reads_past_a_smashed_page_and_loses_only_its_rows(tmp_path: Path) -> None:
    ids, _ = _fill(tmp_path)
    db = tmp_path / "fleet.db"
    leaves = _leaf_pages(db, "assignments")
    assert len(leaves) > 10
    _smash(db, leaves[len(leaves) // 2])
    assert fault(db) is not None
    conn = sqlite3.connect(db)
    try:
        got = salvage(conn, "assignments", ["id"])
    finally:
        conn.close()
    found = [r[0] for r in got.rows]
    assert not got.complete
    assert 0 < len(ids) - len(found) <= 4  # one page of ~1.6 KiB rows
    assert found == [i for i in ids if i in set(found)]  # in order, nothing invented
    assert found[0] == ids[0]
    assert found[-1] == ids[-1]  # the rows after the bad page were reached


def test_ledger_repair_moves_a_damaged_ledger_aside_salvages_and_numbers_events_past_the_old_ones(
        fleet_factory: Callable[..., Fleet]) -> None:
    f: Fleet = fleet_factory(1)
    ids, cursor = _fill(f.state_dir)
    db = f.state_dir / "fleet.db"
    leaves = _leaf_pages(db, "assignments")
    _smash(db, leaves[len(leaves) // 2])
    damaged = db.read_bytes()
    broken = f.cli("assignments", "--json", "--limit", "1000")
    assert broken.returncode != 0  # the damage is real: fleet cannot list, and says what to do
    error = json.loads(broken.stdout)["error"]
    assert error["code"] == "ledger_unusable", error
    assert "fleet ledger-repair" in error["hint"]

    out = f.json("ledger-repair")
    assert out["repaired"] is True
    assert "malformed" in out["problem"] or "corrupt" in out["problem"] or "page" in out["problem"]
    [aside] = [Path(p) for p in out["moved"] if p.endswith(tuple("0123456789"))]
    assert aside.parent == f.state_dir
    assert aside.name.startswith("fleet.db.corrupt-")
    assert aside.read_bytes() == damaged  # kept exactly as it was
    assert 0 < out["salvaged"]["assignments"] < len(ids)
    assert out["salvaged"]["events"] == 2 * len(ids)
    assert out["lost"]["events"] == 0
    assert out["lost"]["assignments"] in (None, len(ids) - out["salvaged"]["assignments"])

    listed = f.json("assignments", "--limit", "1000")["assignments"]
    assert len(listed) == out["salvaged"]["assignments"]
    assert {a["id"] for a in listed} <= set(ids)
    events = f.json("events", "--since", str(cursor))["events"]
    assert [e["kind"] for e in events] == ["ledger_repaired"]
    assert events[0]["cursor"] > cursor  # a lead's old cursor still sees what comes next
    assert events[0]["details"]["salvaged"] == out["salvaged"]
    assert fault(db) is None
    assert any(r["event"] == "ledger.repair" for r in f.audit())
    assert f.json("ledger-repair")["repaired"] is False  # a sound ledger is left alone


def test_a_smashed_header_salvages_nothing_says_so_and_starts_a_fresh_ledger(
        fleet_factory: Callable[..., Fleet]) -> None:
    f: Fleet = fleet_factory(1)
    _, cursor = _fill(f.state_dir, 5)
    db = f.state_dir / "fleet.db"
    _smash(db, 1)
    out = f.json("ledger-repair")
    assert out["repaired"] is True
    assert set(out["salvaged"].values()) == {0}
    assert set(out["lost"].values()) == {None}  # unknown: nothing could be counted
    assert out["events_from"] > cursor + 1_000_000  # no old cursor can be reached again
    assert f.json("assignments")["assignments"] == []
    assert f.json("events")["events"][0]["kind"] == "ledger_repaired"
    plain = f.cli("ledger-repair")
    assert plain.returncode == 0
    assert "sound" in plain.stdout


def test_a_tick_over_a_damaged_ledger_completes_and_reports_the_fault(fleet_factory: Callable[..., Fleet]) -> None:
    f: Fleet = fleet_factory(1, extra=policy())
    _fill(f.state_dir, 30)
    db = f.state_dir / "fleet.db"
    leaves = _leaf_pages(db, "assignments")
    for page in leaves:  # every assignment row unreadable; the header and schema are fine
        _smash(db, page)
    result = f.json("watchdog", "tick")
    assert result["ledger"]["code"] == "ledger_unusable", result
    assert "fleet ledger-repair" in result["ledger"]["hint"]
    assert any(e.get("step") == "ledger" for e in result["errors"])
    _smash(db, 1)  # now not even a database
    result = f.json("watchdog", "tick")
    assert result["ledger"]["code"] == "ledger_unusable", result
    f.json("ledger-repair")
    assert f.json("watchdog", "tick")["ledger"] is None


