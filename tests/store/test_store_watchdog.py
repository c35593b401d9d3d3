"""The watchdog's memory behind `WatchdogBackend`: one contract suite run against the SQLite tables and
the shared PostgreSQL store, then what only the shared store does (hosts in one namespace)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pgcluster import PgCluster

from fleet.config.store import StoreSettings
from fleet.store.db import Database
from fleet.watchdog import pgstore, store
from fleet.watchdog.backend import WatchdogBackend
from fleet.watchdog.decide import Ladder
from fleet.watchdog.pgstore import PgWatchdogStore
from fleet.watchdog.store import ACTIVE_PERIODS, AgentRecord, LadderRecord, WatchdogStore, restart_expected

from .test_store_ledger_pg import store_table


@pytest.fixture(params=["sqlite", "postgresql"])
def watchdog_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., WatchdogBackend]]:
    """Make watchdog stores of one backend: `make(host)`. For SQLite every host is the one file (a
    store is per host there); for PostgreSQL, hosts are separate connections on one namespace."""
    opened: list[WatchdogBackend] = []
    made: list[Database] = []
    settings: StoreSettings | None = request.getfixturevalue("pg_settings") if request.param != "sqlite" else None

    def make(host: str = "a") -> WatchdogBackend:
        backend: WatchdogBackend
        if settings is None:
            backend = WatchdogStore(tmp_path / "watchdog.db")
        else:
            made.append(Database(settings))
            backend = PgWatchdogStore(made[-1], host=host)
        opened.append(backend)
        return backend

    yield make
    for backend in opened:
        backend.close()
    for db in made:
        db.close()


def test_ladders_and_agents_round_trip_and_are_rewritten_in_place(
        watchdog_backend: Callable[..., WatchdogBackend]) -> None:
    wd = watchdog_backend()
    assert wd.ladders([]) == {}
    assert wd.agents() == {}
    rec = LadderRecord("a-1", "w1", Ladder(rung=2, last_step_at=5.0), ("t1",))
    wd.save_ladder(rec, 10.0)
    wd.save_ladder(LadderRecord("a-2", "w2"), 10.0)
    assert wd.ladders(["a-1", "a-1", "a-9"]) == {"a-1": rec}
    moved = rec.with_turn("t2")
    wd.save_ladder(moved, 11.0)
    assert wd.ladders(["a-1", "a-2"]) == {"a-1": moved, "a-2": LadderRecord("a-2", "w2")}
    agent = AgentRecord("w1", restarts=2, last_restart_at=3.5, fatal_reason="quota")
    wd.save_agent(agent, 12.0)
    wd.save_agent(AgentRecord("w1", restarts=3), 13.0)
    assert wd.agents() == {"w1": AgentRecord("w1", restarts=3)}


def test_forget_ladders_drops_only_ended_assignments(watchdog_backend: Callable[..., WatchdogBackend]) -> None:
    wd = watchdog_backend()
    for aid in ("a-1", "a-2", "a-3"):
        wd.save_ladder(LadderRecord(aid, "w1"), 1.0)
    wd.save_agent(AgentRecord("w1"), 1.0)
    assert wd.forget_ladders(["a-2", "a-7"]) == 2
    assert set(wd.ladders(["a-1", "a-2", "a-3"])) == {"a-2"}
    assert wd.forget_ladders(["a-2"]) == 0
    assert set(wd.agents()) == {"w1"}  # agents are never forgotten this way


def test_ticks_newest_first_acted_only_and_trimmed(watchdog_backend: Callable[..., WatchdogBackend],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store, "MAX_TICKS", 3)
    monkeypatch.setattr(pgstore, "MAX_TICKS", 3)
    wd = watchdog_backend()
    assert wd.ticks() == []
    acted = [{"action": "remind", "agent": "w1"}]
    ids = [wd.add_tick(float(i), dry_run=False, ms=i, skipped=None, actions=acted if i % 2 else []) for i in range(5)]
    assert ids == sorted(ids)
    assert [t.at for t in wd.ticks(10)] == [4.0, 3.0, 2.0]  # the three newest kept
    assert [t.at for t in wd.ticks(10, acted_only=True)] == [3.0]
    newest = wd.ticks(1)[0]
    assert (newest.id, newest.ms, newest.dry_run, newest.actions) == (ids[-1], 4, False, [])
    assert wd.ticks(10, acted_only=True)[0].actions == acted


def test_will_restart_needs_a_recent_tick_and_an_agent_not_given_up(
        watchdog_backend: Callable[..., WatchdogBackend]) -> None:
    wd = watchdog_backend()
    assert not wd.will_restart("w1", 60.0, 1000.0)  # no watchdog has ever ticked
    wd.add_tick(1000.0, dry_run=False, ms=1, skipped=None, actions=[])
    assert wd.will_restart("w1", 60.0, 1010.0)
    assert not wd.will_restart("w1", 60.0, 1000.0 + ACTIVE_PERIODS * 60.0 + 1)  # the watchdog stopped
    wd.save_agent(AgentRecord("w1", fatal_at=1005.0, fatal_reason="crash loop"), 1005.0)
    assert not wd.will_restart("w1", 60.0, 1010.0)
    assert wd.will_restart("w2", 60.0, 1010.0)


@given(last=st.none() | st.floats(0, 1e6), fatal=st.none() | st.floats(0, 1e6), every=st.floats(1, 3600),
       age=st.floats(0, 1e5))
def test_restart_expected_is_a_recent_tick_and_no_fatal_mark(last: float | None, fatal: float | None, every: float,
                                                              age: float) -> None:
    now = (last or 0.0) + age
    value = json.dumps({"agent": "w1", "fatal_at": fatal, "restarts": 1}) if fatal is not None else None
    expected = last is not None and age <= ACTIVE_PERIODS * every and fatal is None
    assert restart_expected(last, value, every, now) == expected


# -- only the shared store: hosts in one namespace -----------------------------------------------


def test_hosts_share_agent_records_but_keep_their_own_ticks_and_ladders(pg_db: Database) -> None:
    a, b = PgWatchdogStore(pg_db, host="host-a"), PgWatchdogStore(pg_db, host="host-b")
    a.save_agent(AgentRecord("wa", restarts=1), 1.0)
    b.save_agent(AgentRecord("wb", fatal_at=2.0), 2.0)
    assert set(a.agents()) == set(b.agents()) == {"wa", "wb"}  # names are unique across the namespace
    a.save_ladder(LadderRecord("x-1", "wa"), 1.0)
    b.save_ladder(LadderRecord("x-2", "wb"), 1.0)
    assert a.forget_ladders([]) == 1  # a ledger read that missed b's assignment drops none of b's
    assert set(b.ladders(["x-1", "x-2"])) == {"x-2"}
    a.add_tick(100.0, dry_run=False, ms=1, skipped=None, actions=[])
    assert [t.at for t in a.ticks()] == [100.0]
    assert b.ticks() == []
    assert a.will_restart("wa", 60.0, 110.0)
    assert not b.will_restart("wb", 60.0, 110.0)  # b's watchdog has not ticked


def test_other_namespaces_see_nothing(pg_cluster: PgCluster, pg_db: Database) -> None:
    PgWatchdogStore(pg_db, host="h").save_agent(AgentRecord("w1"), 1.0)
    other = Database(StoreSettings(url=pg_cluster.url(), namespace=pg_db.namespace + "-other", connect_timeout=2))
    try:
        assert PgWatchdogStore(other, host="h").agents() == {}
    finally:
        other.close()


def test_an_unreachable_store_cannot_restart_anyone(pg_settings: StoreSettings) -> None:
    dead = Database(StoreSettings(url="postgresql://fleet@127.0.0.1:1/none", namespace=pg_settings.namespace,
                                  connect_timeout=1))
    try:
        assert not PgWatchdogStore(dead, host="h").will_restart("w1", 60.0, 1.0)
    finally:
        dead.close()


def test_a_fleet_with_a_store_keeps_its_watchdog_memory_there(
        pg_cluster: PgCluster, pg_settings: StoreSettings, fleet_factory: Callable[..., Any]) -> None:
    b = fleet_factory(1, extra=store_table(pg_cluster, pg_settings))
    tick = b.json("watchdog", "tick")
    assert tick["errors"] == []
    assert tick["ledger"] is None
    status = b.json("watchdog", "status")
    assert status["last_tick"]["at"] == tick["at"]
    with psycopg.connect(pg_cluster.url()) as conn:
        rows = conn.execute("SELECT at FROM fleet_watchdog_tick WHERE namespace = %s",
                            (pg_settings.namespace,)).fetchall()
    assert [r[0] for r in rows] == [tick["at"]]
    local = b.state_dir / "fleet.db"
    if local.exists():  # nothing of the watchdog's is written to a local file while the store is up
        with sqlite3.connect(local) as db:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")}
            if "watchdog_ticks" in tables:
                assert db.execute("SELECT count(*) FROM watchdog_ticks").fetchone()[0] == 0
