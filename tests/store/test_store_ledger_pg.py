"""The ledger on PostgreSQL beyond the shared contract: append-only events in the database itself,
the upgrade from a leases-only store, many processes writing at once (no lost update, the cursor only
grows, a fact recorded once), the database stopped mid-operation, and two "hosts" (fleets with their
own state dirs) sharing one ledger through the real CLI."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from conftest import Fleet
from pgcluster import PgCluster

from fleet.config.store import StoreSettings
from fleet.errors import EXIT_ENVIRONMENT, StoreSchemaMismatch, StoreUnavailable
from fleet.leases.pg import PgLeaseStore
from fleet.store import schema
from fleet.store.admin import init_schema
from fleet.store.db import Database
from fleet.work.lifecycle import STATES
from fleet.work.pgledger import PgLedger


def test_the_schema_knows_every_lifecycle_state() -> None:
    assert ", ".join(f"'{s}'" for s in STATES) == schema._STATES


def test_events_are_append_only_in_the_database(pg_db: Database, tmp_path: Path) -> None:
    ledger = PgLedger(pg_db, tmp_path)
    aid = ledger.create(task="t", holder="h", actor="a")[0].id
    with psycopg.connect(pg_db.settings.url, autocommit=True) as conn:
        for sql in ("UPDATE fleet_event SET kind = 'x'", "DELETE FROM fleet_event", "TRUNCATE fleet_event"):
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                conn.execute(sql)  # type: ignore[arg-type]  # the test's own statements
    assert [e.kind for e in ledger.events_for(aid)] == ["created"]


def test_a_leases_only_store_upgrades_to_the_ledger_keeping_its_leases(pg_cluster: PgCluster, tmp_path: Path) -> None:
    pg_cluster.psql("CREATE DATABASE upgrade_v1", database="postgres")
    settings = StoreSettings(url=pg_cluster.url("upgrade_v1"), namespace="ns", connect_timeout=2)
    with psycopg.connect(settings.url, autocommit=True) as conn:  # a store `fleet store init` made at version 1
        conn.execute("CREATE TABLE fleet_schema (version integer PRIMARY KEY, name text NOT NULL, "
                     "applied_at timestamptz NOT NULL DEFAULT clock_timestamp())")
        for sql in schema.MIGRATIONS[0][2]:
            conn.execute(sql)  # type: ignore[arg-type]  # fleet's own migration text
        conn.execute("INSERT INTO fleet_schema (version, name) VALUES (1, 'leases')")
        conn.execute("INSERT INTO fleet_lease (namespace, agent, token) VALUES ('ns', 'a1', 7)")
    db = Database(settings)
    with pytest.raises(StoreSchemaMismatch) as old:
        PgLedger(db, tmp_path).assignments()
    assert "fleet store init" in old.value.hint
    admin = Database(settings, check_schema=False)
    assert init_schema(admin)["applied"][:1] == ["2:ledger"]  # and any later migration after it
    admin.close()
    assert PgLedger(db, tmp_path).assignments() == []
    assert PgLeaseStore(db, tmp_path).claim("a1", "alice")["token"] == 8  # the lease row survived
    db.close()


# -- many processes --------------------------------------------------------------------------------

PRELUDE = """
import json, sys, time
from pathlib import Path
from fleet.config.store import StoreSettings
from fleet.store.db import Database
from fleet.work.pgledger import PgLedger
settings = StoreSettings(url=sys.argv[1], namespace=sys.argv[2])
led = PgLedger(Database(settings), Path(sys.argv[3]))
"""

WRITER = PRELUDE + textwrap.dedent("""
    worker, rounds = int(sys.argv[4]), int(sys.argv[5])
    made = []
    for i in range(rounds):
        a, _ = led.create(task=f"w{worker}-{i}", holder=f"w{worker}", actor=f"w{worker}", agent=f"a{worker}")
        led.transition(a.id, "sent", actor=f"w{worker}", expect="queued")
        led.annotate(a.id, "note", actor=f"w{worker}", details={"i": i})
        led.transition(a.id, "reported", actor=f"w{worker}", expect="sent", report={"i": i})
        made.append(a.id)
    print(json.dumps(made))
""")

READER = PRELUDE + textwrap.dedent("""
    expected = int(sys.argv[4])
    seen, cursor = [], 0
    deadline = time.monotonic() + 120
    while len(seen) < expected and time.monotonic() < deadline:
        events, cursor = led.events_since(cursor, limit=300)
        seen += [e.cursor for e in events]
        if not events:
            time.sleep(0.005)
    print(json.dumps(seen))
""")

RACER = PRELUDE + textwrap.dedent("""
    from fleet.work.lifecycle import StateConflict
    ids, me = json.loads(sys.argv[4]), sys.argv[5]
    won, lost, noted = [], 0, 0
    for aid in ids:
        try:
            led.transition(aid, "sent", actor=me, expect="queued")
            won.append(aid)
        except StateConflict:
            lost += 1
        noted += led.annotate_once(aid, "scope_denied", "turn-1", actor=me) is not None
    print(json.dumps({"won": won, "lost": lost, "noted": noted}))
""")


def run_all(scripts: list[list[str]]) -> list[str]:
    procs = [subprocess.Popen([sys.executable, "-c", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for args in scripts]
    outs = []
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
        outs.append(out)
    return outs


def test_four_processes_writing_at_once_lose_nothing_and_the_cursor_only_grows(
        pg_settings: StoreSettings, pg_db: Database, tmp_path: Path) -> None:
    """4 writers x 25 assignments x 4 writes = 400 events, on two "hosts"; a concurrent reader pages
    through them and must see every one, in cursor order, none skipped (ids in commit order)."""
    writers, rounds = 4, 25
    total = writers * rounds * 4
    base = [pg_settings.url, pg_settings.namespace]
    outs = run_all([[READER, *base, str(tmp_path / "r"), str(total)],
                    *([WRITER, *base, str(tmp_path / f"host{w % 2}"), str(w), str(rounds)] for w in range(writers))])
    seen = json.loads(outs[0])
    made = [aid for out in outs[1:] for aid in json.loads(out)]
    assert len(made) == len(set(made)) == writers * rounds
    assert seen == sorted(set(seen))  # strictly increasing, nothing twice
    ledger = PgLedger(pg_db, tmp_path)
    events, _ = ledger.events_since(0, limit=5000)
    assert len(events) == total
    assert [e.cursor for e in events] == seen  # the live reader missed nothing
    assert {a.state for a in ledger.assignments(limit=10_000)} == {"reported"}
    created = [e.assignment for e in events if e.kind == "created"]
    assert created == sorted(created)  # ids sort in creation order across processes
    for w in range(writers):
        kinds = [(e.kind, e.to_state) for e in events if e.actor == f"w{w}"]
        assert kinds == [("created", "queued"), ("transition", "sent"), ("note", None),
                         ("transition", "reported")] * rounds


def test_racing_processes_have_one_winner_per_assignment_and_record_a_fact_once(
        pg_settings: StoreSettings, pg_db: Database, tmp_path: Path) -> None:
    ledger = PgLedger(pg_db, tmp_path)
    ids = [ledger.create(task=f"t{i}", holder="h", actor="a")[0].id for i in range(30)]
    base = [pg_settings.url, pg_settings.namespace]
    outs = [json.loads(o) for o in run_all([[RACER, *base, str(tmp_path / f"h{c}"), json.dumps(ids), f"c{c}"]
                                            for c in range(4)])]
    won = [aid for o in outs for aid in o["won"]]
    assert sorted(won) == sorted(ids)
    assert sum(o["lost"] for o in outs) == 3 * len(ids)
    assert sum(o["noted"] for o in outs) == len(ids)
    for aid in ids:
        events = ledger.events_for(aid)
        assert sorted(e.kind for e in events) == ["created", "scope_denied", "transition"]
        assert [e.to_state for e in events if e.kind == "transition"] == ["sent"]


# -- the database taken away -----------------------------------------------------------------------

def test_a_stopped_database_is_store_unavailable_nothing_torn_and_recovers(
        pg_outage: PgCluster, pg_settings: StoreSettings, tmp_path: Path) -> None:
    db = Database(pg_settings)
    ledger = PgLedger(db, tmp_path)
    aid = ledger.create(task="t", holder="h", actor="a", agent="mila")[0].id
    cursor = ledger.latest_cursor()
    pg_outage.stop("immediate")
    for call in (lambda: ledger.transition(aid, "sent", actor="x"), lambda: ledger.get(aid),
                 lambda: ledger.events_since(0), lambda: ledger.annotate_once(aid, "note", "k", actor="x"),
                 lambda: ledger.begin_request("send", "s1", {})):
        with pytest.raises(StoreUnavailable) as down:
            call()
        assert down.value.to_dict()["retryable"] is True
    pg_outage.start()
    assert ledger.get(aid).state == "queued"  # a new connection, the row as it was
    assert ledger.latest_cursor() == cursor
    assert ledger.transition(aid, "sent", actor="x", expect="queued").state == "sent"
    db.close()


def test_a_transition_cut_by_the_stop_leaves_neither_the_row_nor_its_event(
        pg_outage: PgCluster, pg_settings: StoreSettings, tmp_path: Path) -> None:
    db = Database(pg_settings)
    ledger = PgLedger(db, tmp_path)
    aid = ledger.create(task="t", holder="h", actor="a")[0].id
    original = ledger._event

    def stop_after_the_event(*args: object, **kw: object) -> object:  # the UPDATE and INSERT are sent
        event = original(*args, **kw)  # type: ignore[arg-type]
        pg_outage.stop("immediate")  # ... and the COMMIT never reaches the server
        return event

    ledger._event = stop_after_the_event  # type: ignore[method-assign]
    with pytest.raises(StoreUnavailable):
        ledger.transition(aid, "sent", actor="x", expect="queued")
    pg_outage.start()
    other = Database(pg_settings)
    fresh = PgLedger(other, tmp_path)
    assert fresh.get(aid).state == "queued"
    assert [e.kind for e in fresh.events_for(aid)] == ["created"]
    other.close()
    db.close()


# -- two hosts, one ledger -------------------------------------------------------------------------

def store_table(pg_cluster: PgCluster, pg_settings: StoreSettings) -> str:
    """The `[store]` table of "hosts" sharing the test's namespace."""
    return f'\n[store]\nurl = "{pg_cluster.url()}"\nnamespace = "{pg_settings.namespace}"\nconnect_timeout = 2\n'


def test_an_assignment_made_on_one_host_is_read_waited_on_and_ended_from_another(
        pg_cluster: PgCluster, pg_settings: StoreSettings, fleet_factory: Callable[..., Fleet]) -> None:
    store = store_table(pg_cluster, pg_settings)
    a, b = fleet_factory(1, extra=store), fleet_factory(1, extra=store)
    made = a.json("assign", "write the notes", "--queue", "--request-id", "r-1")
    aid = made["assignment"]
    assert made["state"] == "queued"  # its agents are stopped: it waits in the shared ledger
    shown = b.json("show", aid)
    assert shown["id"] == aid
    assert shown["state"] == "queued"
    again = b.json("assign", "write the notes", "--queue", "--request-id", "r-1")  # the retry, on the other host
    assert (again["assignment"], again["duplicate"]) == (aid, True)
    assert [x["id"] for x in b.json("assignments")["assignments"]] == [aid]
    tick = b.json("watchdog", "tick", "--dry-run")  # its memory is in the shared store too
    assert tick["errors"] == []
    waiter = subprocess.Popen([sys.executable, "-m", "fleet", "--config", str(b.path), "wait", aid, "--timeout",
                               "120", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        a.json("cancel", aid)
        out, err = waiter.communicate(timeout=150)
    finally:
        if waiter.poll() is None:
            waiter.kill()
    assert waiter.returncode == 0, err
    assert [d["id"] for d in json.loads(out)["done"]] == [aid]
    kinds = [(e["kind"], e["to"]) for e in b.json("events")["events"] if e["assignment"] == aid]
    assert kinds == [("created", "queued"), ("transition", "cancelled")]
    for host in (a, b):  # no host keeps a ledger of its own: a local fleet.db is the watchdog's only
        if (host.state_dir / "fleet.db").exists():
            with sqlite3.connect(host.state_dir / "fleet.db") as local:
                tables = {r[0] for r in local.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")}
            assert "assignments" not in tables
    pg_cluster.stop("immediate")
    try:
        down = b.cli("show", aid, "--json")
        assert down.returncode == EXIT_ENVIRONMENT
        assert json.loads(down.stdout)["error"]["code"] == "store_unavailable"
        tick = b.cli("watchdog", "tick", "--json")  # the tick goes on without the ledger and says why
        assert tick.returncode == 0, tick.stderr
        result = json.loads(tick.stdout)
        assert result["ledger"]["code"] == "store_unavailable"
        assert {e["code"] for e in result["errors"]} == {"store_unavailable"}  # the ledger's, and the leases
    finally:
        pg_cluster.start()
    assert a.json("show", aid)["state"] == "cancelled"


def test_a_host_leaves_the_work_of_agents_it_does_not_run_to_their_host(
        pg_cluster: PgCluster, pg_settings: StoreSettings, pg_db: Database,
        fleet_factory: Callable[..., Fleet]) -> None:
    b = fleet_factory(1, extra=store_table(pg_cluster, pg_settings))
    remote = PgLedger(pg_db, b.root)  # an agent only some other host runs has work under way
    theirs = remote.create(task="elsewhere", holder="lead", actor="host-c", agent="agent-on-c")[0].id
    remote.transition(theirs, "sent", actor="host-c", expect="queued")
    assert b.json("show", theirs)["state"] == "sent"  # b reconciles only its own agents' work
    assert b.cli("wait", theirs, "--timeout", "0", "--json").returncode == 5  # still pending, not failed
    assert b.json("watchdog", "tick")["errors"] == []
    assert remote.get(theirs).state == "sent"
    b.json("cancel", theirs)  # a person on any host may still end it
    assert remote.get(theirs).state == "cancelled"


def test_a_writer_waits_for_the_one_holding_the_head_so_ids_appear_in_commit_order(
        pg_settings: StoreSettings, tmp_path: Path) -> None:
    """Writer 1 stops inside its transaction, its event id drawn but not committed. Writer 2 must
    then wait on the head lock (seen in `pg_stat_activity`), not commit a larger id first: that is
    what keeps a reader from skipping writer 1's id for ever. Without the lock this never waits."""
    first_db, second_db = Database(pg_settings), Database(pg_settings)
    first, second = PgLedger(first_db, tmp_path), PgLedger(second_db, tmp_path)
    drawn, go_on = threading.Event(), threading.Event()
    original = first._event

    def pause_after_the_event(*args: object, **kw: object) -> object:
        event = original(*args, **kw)  # type: ignore[arg-type]
        drawn.set()
        go_on.wait(30)
        return event

    first._event = pause_after_the_event  # type: ignore[method-assign]
    results: dict[str, int] = {}
    one = threading.Thread(target=lambda: results.update(first=first.record_event("note", actor="1").cursor))
    two = threading.Thread(target=lambda: results.update(second=second.record_event("note", actor="2").cursor))
    one.start()
    try:
        assert drawn.wait(30)
        two.start()
        with psycopg.connect(pg_settings.url, autocommit=True) as watcher:
            end = time.monotonic() + 30
            while not watcher.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'fleet' "
                                      "AND wait_event_type = 'Lock'").fetchone()[0]:  # type: ignore[index]
                assert time.monotonic() < end, "the second writer never waited for the first"
                time.sleep(0.01)
        assert second.events_since(0)[0] == []  # nothing committed yet, nothing visible
    finally:
        go_on.set()
        one.join(30)
        two.join(30)
    assert results["first"] < results["second"]
    assert [e.cursor for e in second.events_since(0)[0]] == [results["first"], results["second"]]
    first_db.close()
    second_db.close()
