"""The audit log in the shared store (`fleet.store.auditlog`): every host's records in one
append-only table, beside each host's own `audit.jsonl`; a failing store never fails the caller."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pgcluster import PgCluster

from fleet import audit
from fleet.config import load_config
from fleet.config.store import StoreSettings
from fleet.leases.pg import PgLeaseStore
from fleet.store.auditlog import PgAuditSink
from fleet.store.db import Database

from .test_store_ledger_pg import store_table


def local_events(state_dir: Path) -> list[str]:
    return [json.loads(line)["event"] for line in (state_dir / "audit.jsonl").read_text().splitlines()]


def test_two_hosts_records_are_read_back_in_the_order_written(pg_settings: StoreSettings, tmp_path: Path) -> None:
    dbs = [Database(pg_settings), Database(pg_settings)]
    try:
        a, b = PgAuditSink(dbs[0], host="host-a"), PgAuditSink(dbs[1], host="host-b")
        for sink, event in ((a, "claim"), (b, "assign"), (a, "release"), (b, "watchdog.remind")):
            (tmp_path / sink.host).mkdir(exist_ok=True)
            audit.record(tmp_path / sink.host, event, sinks=(sink,), holder="alice", agents=["w1"], outcome="ok")
        got = a.records()
        assert [(r["host"], r["event"]) for r in got] == [("host-a", "claim"), ("host-b", "assign"),
                                                          ("host-a", "release"), ("host-b", "watchdog.remind")]
        assert got[0]["holder"] == "alice"
        assert got[0]["agents"] == ["w1"]
        assert [r["id"] for r in got] == sorted(r["id"] for r in got)
        assert [r["event"] for r in b.records(after=got[1]["id"])] == ["release", "watchdog.remind"]
        assert local_events(tmp_path / "host-a") == ["claim", "release"]  # each host's file stays its own
        assert local_events(tmp_path / "host-b") == ["assign", "watchdog.remind"]
    finally:
        for db in dbs:
            db.close()


def test_the_table_is_append_only(pg_cluster: PgCluster, pg_db: Database, tmp_path: Path) -> None:
    audit.record(tmp_path, "claim", sinks=(PgAuditSink(pg_db, host="h"),))
    with psycopg.connect(pg_cluster.url(), autocommit=True) as conn:
        for sql in ("UPDATE fleet_audit SET event = 'nothing'", "DELETE FROM fleet_audit", "TRUNCATE fleet_audit"):
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                conn.execute(sql)
        assert conn.execute("SELECT event FROM fleet_audit WHERE namespace = %s",
                            (pg_db.namespace,)).fetchall() == [("claim",)]


def test_a_store_that_is_down_drops_the_record_logs_it_and_waits_before_trying_again(
        pg_settings: StoreSettings, tmp_path: Path, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    dead = Database(StoreSettings(url="postgresql://fleet@127.0.0.1:1/none", namespace=pg_settings.namespace,
                                  connect_timeout=1))
    tries: list[int] = []
    connect = dead.connection
    monkeypatch.setattr(dead, "connection", lambda: tries.append(1) or connect())
    sink = PgAuditSink(dead, host="h")
    with caplog.at_level(logging.WARNING, logger="fleet.audit"):
        audit.record(tmp_path, "claim", sinks=(sink,))  # does not raise
        audit.record(tmp_path, "release", sinks=(sink,))
    assert local_events(tmp_path) == ["claim", "release"]  # the local file has both
    assert len(tries) == 1  # the second record did not wait on the dead store again
    assert [r.getMessage().split(" not written")[0] for r in caplog.records] == [
        "fleet: audit record claim", "fleet: audit record release"]
    assert all("dropped" in r.getMessage() for r in caplog.records)
    dead.close()


def test_lease_events_of_the_pg_lease_store_reach_the_table(pg_db: Database, tmp_path: Path) -> None:
    leases = PgLeaseStore(pg_db, tmp_path, surface="test")
    token = leases.claim("w1", "alice")["token"]
    leases.release("w1", "alice", token)
    events = [(r["event"], r["agent"], r["host"]) for r in PgAuditSink(pg_db).records()]
    assert [e[0] for e in events] == local_events(tmp_path)
    assert len(events) >= 2
    assert {(e[1], e[2]) for e in events} == {("w1", socket.gethostname())}


def test_a_fleet_with_a_store_audits_its_operations_there(
        pg_cluster: PgCluster, pg_settings: StoreSettings, fleet_factory: Callable[..., Any]) -> None:
    b = fleet_factory(1, extra=store_table(pg_cluster, pg_settings))
    b.json("claim", "agent-1", "--holder", "alice")
    with psycopg.connect(pg_cluster.url()) as conn:
        rows = conn.execute("SELECT host, event, record FROM fleet_audit WHERE namespace = %s ORDER BY id",
                            (pg_settings.namespace,)).fetchall()
    host = load_config(b.path).store.host  # type: ignore[union-attr]
    assert {r[0] for r in rows} == {host}  # the state dir's name: this machine's, with the dir's hash
    assert host.startswith(socket.gethostname() + ":")
    events = [r[1] for r in rows]
    assert events == local_events(b.state_dir)
    assert events == ["lease.grant", "agent_claim"]  # the lease store's event, then the operation's
    assert any(json.loads(r[2]).get("surface") == "cli" for r in rows)
