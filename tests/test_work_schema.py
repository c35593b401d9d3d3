"""The schema of fleet.db has one owner (`fleet.work.schema`), and a fleet.db made by the previous
fleet (schema version 1, the watchdog's tables made by the watchdog itself) opens and migrates cleanly.

The old file is built here from the statements the previous version ran, saved word for word below,
so the test does not depend on today's code to make yesterday's file.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleet.errors import LedgerError
from fleet.watchdog.decide import Ladder
from fleet.watchdog.store import AgentRecord, LadderRecord, WatchdogStore, will_restart
from fleet.work.ledger import DB_NAME, Ledger
from fleet.work.schema import SCHEMA_VERSION, TABLES, statements

#: The ledger's statements at schema version 1, as the previous fleet ran them (STATES spelled out).
OLD_LEDGER_V1 = """
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
  state TEXT NOT NULL CHECK (state IN ('queued', 'sent', 'working', 'reported', 'verified', 'rejected',
    'failed', 'cancelled')),
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
  details TEXT NOT NULL DEFAULT '{}'
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
#: The watchdog's own statements, run by the previous fleet's `WatchdogStore` outside any version.
OLD_WATCHDOG = (
    "CREATE TABLE IF NOT EXISTS watchdog_state (kind TEXT NOT NULL, key TEXT NOT NULL, agent TEXT, "
    "value TEXT NOT NULL, updated_at REAL NOT NULL, PRIMARY KEY (kind, key))",
    "CREATE TABLE IF NOT EXISTS watchdog_ticks (id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, "
    "dry_run INTEGER NOT NULL, ms INTEGER NOT NULL, skipped TEXT, actions TEXT NOT NULL)",
)
T0 = 1_750_000_000.0


def old_statements(script: str) -> list[str]:
    out, buf = [], ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    return out


def old_fleet_db(state: Path, *, watchdog: bool = True, rows: bool = True) -> Path:
    """A fleet.db as the previous fleet left it: version 1, the watchdog's tables when its watchdog
    ran, and a few rows in each table."""
    state.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = state / DB_NAME
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    for statement in old_statements(OLD_LEDGER_V1):
        db.execute(statement)
    db.execute("PRAGMA user_version = 1")
    if watchdog:
        for statement in OLD_WATCHDOG:
            db.execute(statement)
    if rows:
        db.execute("INSERT INTO assignments (id, agent, holder, task, state, created_at, updated_at, sent_at) "
                   "VALUES ('a-old', 'ada', 'lead', 'old task', 'sent', ?, ?, ?)", (T0, T0, T0))
        db.executemany("INSERT INTO events (time, assignment, agent, actor, kind, to_state) VALUES (?, 'a-old', "
                       "'ada', 'lead', ?, ?)", [(T0, "created", "queued"), (T0 + 1, "transition", "sent")])
        db.execute("INSERT INTO request_ids (scope, id, sha, result, created_at) VALUES ('assign', 'r1', 'x', ?, ?)",
                   (json.dumps({"assignment": "a-old"}), T0))
    if watchdog and rows:
        db.execute("INSERT INTO watchdog_state (kind, key, agent, value, updated_at) VALUES ('ladder', 'a-old', "
                   "'ada', ?, ?)", (json.dumps({"ladder": {"rung": 2}, "own_turns": ["t9"]}), T0))
        db.execute("INSERT INTO watchdog_state (kind, key, agent, value, updated_at) VALUES ('agent', 'ada', "
                   "'ada', ?, ?)", (json.dumps({"agent": "ada", "restarts": 1}), T0))
        db.execute("INSERT INTO watchdog_ticks (at, dry_run, ms, skipped, actions) VALUES (?, 0, 5, NULL, '[]')",
                   (T0,))
    db.close()
    return path


def version(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute("PRAGMA user_version").fetchone()[0])
    finally:
        db.close()


def schema_of(path: Path) -> dict[str, list[tuple[object, ...]]]:
    """Every table's columns (name, type, not null, default, primary key) and every index and trigger."""
    db = sqlite3.connect(path)
    try:
        names = [r[0] for r in db.execute("SELECT name FROM sqlite_schema WHERE type = 'table' "
                                          "AND name != 'sqlite_sequence' ORDER BY name")]
        out = {n: [tuple(c[1:]) for c in db.execute(f"PRAGMA table_info({n})")] for n in names}
        out["-others"] = list(db.execute("SELECT type, name, tbl_name FROM sqlite_schema "
                                         "WHERE type IN ('index', 'trigger') ORDER BY name"))
        return out
    finally:
        db.close()


def test_a_fresh_ledger_owns_every_table_of_fleet_db_under_its_version(tmp_path: Path) -> None:
    with Ledger(tmp_path / "new") as ledger:
        path = ledger.path
    assert version(path) == SCHEMA_VERSION == 5
    tables = set(schema_of(path)) - {"-others"}
    assert tables == set(TABLES) == {"assignments", "events", "request_ids", "watchdog_state", "watchdog_ticks"}
    # the watchdog's tables have exactly the columns and keys its own statements used to make
    fresh, old = schema_of(path), schema_of(old_fleet_db(tmp_path / "old", rows=False))
    assert ({k: v for k, v in fresh.items() if k != "assignments"}
            == {k: v for k, v in old.items() if k != "assignments"})
    # version 3 adds the worktree columns to the version-1 assignments table, after its own
    assert fresh["assignments"][:22] == old["assignments"]
    assert [c[0] for c in fresh["assignments"][22:]] == ["repo", "branch", "base_commit", "verified_commit",
                                                         "merged_commit", "usage", "budget"]


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tasks=st.lists(st.text(min_size=1, max_size=20), min_size=0, max_size=5))
def test_a_version_3_ledger_gains_the_usage_column_in_place_and_keeps_every_row(
        tmp_path_factory: pytest.TempPathFactory, tasks: list[str]) -> None:
    """Version 4 adds `assignments.usage` to a version-3 file: every row stays, with no usage until
    reconcile counts one, and the count is then stored once."""
    base = tmp_path_factory.mktemp("v3")
    with Ledger(base) as ledger:
        ids = [ledger.create(task=t, holder="lead", actor="lead")[0].id for t in tasks]
        path = ledger.path
    db = sqlite3.connect(path)
    db.execute("ALTER TABLE assignments DROP COLUMN budget")
    db.execute("ALTER TABLE assignments DROP COLUMN usage")
    db.execute("PRAGMA user_version = 3")
    db.commit()
    db.close()
    with Ledger(base) as ledger:
        assert version(path) == SCHEMA_VERSION == 5
        assert [ledger.get(i).task for i in ids] == tasks
        assert all(ledger.get(i).usage is None for i in ids)
        if ids:
            figures = {"input": 300, "cached_input": 40, "output": 30, "reasoning": 5, "turns": 2}
            assert ledger.set_usage(ids[0], figures)
            assert not ledger.set_usage(ids[0], figures)
            assert ledger.get(ids[0]).usage == figures


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(st.text(min_size=1, max_size=20),
                               st.none() | st.fixed_dictionaries({"input": st.integers(0, 10**9),
                                                                  "output": st.integers(0, 10**9)})),
                     min_size=0, max_size=5),
       budget=st.integers(1, 10**10))
def test_a_version_4_ledger_gains_the_budget_column_in_place_and_keeps_every_row(
        tmp_path_factory: pytest.TempPathFactory, rows: list[tuple[str, dict[str, int] | None]], budget: int) -> None:
    """Version 5 adds `assignments.budget` to a version-4 file: every row stays (task and usage),
    with no budget; a new assignment then stores its budget exactly."""
    base = tmp_path_factory.mktemp("v4")
    with Ledger(base) as ledger:
        ids = [ledger.create(task=t, holder="lead", actor="lead")[0].id for t, _ in rows]
        for i, (_, usage) in zip(ids, rows, strict=True):
            if usage is not None:
                ledger.set_usage(i, usage)
        path = ledger.path
    db = sqlite3.connect(path)
    db.execute("ALTER TABLE assignments DROP COLUMN budget")
    db.execute("PRAGMA user_version = 4")
    db.commit()
    db.close()
    with Ledger(base) as ledger:
        assert version(path) == SCHEMA_VERSION == 5
        assert [(ledger.get(i).task, ledger.get(i).usage) for i in ids] == rows
        assert all(ledger.get(i).budget is None for i in ids)
        new, _ = ledger.create(task="capped", holder="lead", actor="lead", budget=budget)
        assert ledger.get(new.id).budget == budget


def test_a_fleet_db_of_the_previous_version_migrates_and_keeps_every_row(tmp_path: Path) -> None:
    path = old_fleet_db(tmp_path / "state")
    with Ledger(tmp_path / "state") as ledger:
        assert version(path) == 5
        assert ledger.get("a-old").task == "old task"
        events = ledger.events_for("a-old")
        assert [e.kind for e in events] == ["created", "transition"]
        new = ledger.record_event("after_migration", actor="test")
        assert new.cursor > events[-1].cursor
        with WatchdogStore(ledger.path) as store:
            ladder = store.ladders(["a-old"])["a-old"]
            assert ladder.ladder == Ladder(rung=2)
            assert ladder.own_turns == ("t9",)
            assert store.agents()["ada"].restarts == 1
            assert [t.ms for t in store.ticks()] == [5]
            store.add_tick(T0 + 60, dry_run=False, ms=7, skipped=None, actions=[])
            assert will_restart(ledger.path, "ada", 60, T0 + 61)
    with Ledger(tmp_path / "state"):  # opening it again changes nothing
        assert version(path) == 5


def test_a_version_1_ledger_whose_watchdog_never_ran_gets_the_watchdog_tables(tmp_path: Path) -> None:
    path = old_fleet_db(tmp_path / "state", watchdog=False)
    with Ledger(tmp_path / "state") as ledger, WatchdogStore(ledger.path) as store:
        assert version(path) == 5
        assert store.ticks() == []
        store.save_agent(AgentRecord("ada", restarts=2), T0)
        assert store.agents()["ada"].restarts == 2


def test_the_watchdog_store_never_creates_tables_in_a_ledger_it_did_not_migrate(tmp_path: Path) -> None:
    """Only the ledger's migration writes the schema of fleet.db: the store refuses an unmigrated
    ledger (fail closed) and creates its tables only in a file that is not a ledger (its fallback)."""
    path = old_fleet_db(tmp_path / "state", watchdog=False)
    with pytest.raises(LedgerError, match="no watchdog tables"):
        WatchdogStore(path)
    assert "watchdog_state" not in schema_of(path)
    assert version(path) == 1
    fallback = tmp_path / "state" / "watchdog-fallback.db"
    with WatchdogStore(fallback) as store:
        store.save_ladder(LadderRecord("a-1", "ada"), T0)
    assert set(schema_of(fallback)) - {"-others"} == {"watchdog_state", "watchdog_ticks"}
    assert version(fallback) == 0


def test_a_migration_that_fails_leaves_the_old_version_whole(tmp_path: Path) -> None:
    """One transaction: a version-1 file where migration 2 cannot run (an index squats on a table
    name) is refused as unusable, keeps version 1 and gains no half of the new tables."""
    path = old_fleet_db(tmp_path / "state", watchdog=False)
    db = sqlite3.connect(path)
    db.execute("CREATE INDEX watchdog_ticks ON assignments (holder)")
    db.close()
    with pytest.raises(LedgerError, match="unusable"):
        Ledger(tmp_path / "state")
    assert version(path) == 1
    assert "watchdog_state" not in schema_of(path)
    assert len(schema_of(path)["assignments"]) == 22


def test_processes_opening_an_old_ledger_at_once_migrate_it_once(tmp_path: Path) -> None:
    path = old_fleet_db(tmp_path / "state")
    errors: list[BaseException] = []

    def open_it() -> None:
        try:
            with Ledger(tmp_path / "state") as ledger:
                ledger.get("a-old")
        except BaseException as exc:  # collected: the assertion below names it
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert version(path) == 5


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(start=st.integers(0, 1), watchdog=st.booleans(), rows=st.booleans())
def test_any_older_file_migrates_to_the_schema_a_fresh_ledger_has(
        tmp_path_factory: pytest.TempPathFactory, start: int, watchdog: bool, rows: bool) -> None:
    """From an empty file (version 0) or any version-1 file, with or without the watchdog's tables and
    rows, opening gives exactly the fresh schema at the current version."""
    base = tmp_path_factory.mktemp("mig")
    with Ledger(base / "fresh") as ledger:
        fresh = schema_of(ledger.path)
    if start == 0:
        (base / "old").mkdir(mode=0o700)
        (base / "old" / DB_NAME).touch(mode=0o600)
        path = base / "old" / DB_NAME
    else:
        path = old_fleet_db(base / "old", watchdog=watchdog, rows=rows)
    with Ledger(base / "old"):
        pass
    assert version(path) == SCHEMA_VERSION == 5
    assert schema_of(path) == fresh


_TRIGGER = ("CREATE TRIGGER IF NOT EXISTS t{i} BEFORE DELETE ON x\n"
            "  BEGIN SELECT RAISE(ABORT, 'no; really'); SELECT 1; END;")
_TABLE = "CREATE TABLE IF NOT EXISTS t{i} (\n  a TEXT NOT NULL DEFAULT ';',\n  b REAL\n);"


@given(st.lists(st.sampled_from([_TRIGGER, _TABLE, "CREATE INDEX IF NOT EXISTS i{i} ON x (a);"]), max_size=8))
def test_a_script_splits_into_its_whole_statements_even_with_semicolons_inside(kinds: list[str]) -> None:
    wanted = [k.format(i=i) for i, k in enumerate(kinds)]
    assert list(statements("\n".join(wanted) + "\n")) == wanted
