"""The approval hook's audit records reach the shared store's `fleet_audit` through the watchdog's tick
(`fleet.service.auditship`), exactly once; and each state dir is its own host in the namespace
(`[store] host`), so two fleets on one machine keep their ticks apart."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import Fleet
from pgcluster import PgCluster

from fleet import audit
from fleet.config import load_config
from fleet.config.store import StoreSettings
from fleet.errors import StateDirError, StoreUnavailable
from fleet.service import auditship
from fleet.service.auditship import CURSOR_NAME, read_cursor, ship_file
from fleet.store.auditlog import PgAuditSink
from fleet.store.db import Database
from fleet.vocab import WATCHDOG_POLICY_HOLDER

from .test_store_ledger_pg import store_table


def hook_record(state_dir: Path, request: str, agent: str = "agent-1") -> None:
    """What `fleet.hooks.approve.hook_answer` writes when the policy decides: the local file only."""
    audit.record(state_dir, "approval.policy", surface="hook", holder=WATCHDOG_POLICY_HOLDER, agent=agent,
                 request=request, decision="allow", reason="the command is on the allow list")


def copied(url: str, namespace: str) -> list[tuple[str, dict[str, Any]]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT host, record FROM fleet_audit WHERE namespace = %s AND event = 'approval.policy' "
                            "ORDER BY id", (namespace,)).fetchall()
    return [(r[0], json.loads(r[1])) for r in rows]


def local(state_dir: Path, event: str = "approval.policy") -> list[dict[str, Any]]:
    records = [json.loads(line) for line in (state_dir / "audit.jsonl").read_text().splitlines()]
    return [r for r in records if r["event"] == event]


def test_a_hook_record_reaches_the_store_after_a_tick_and_never_twice(
        pg_cluster: PgCluster, pg_settings: StoreSettings, fleet_factory: Callable[..., Fleet]) -> None:
    b = fleet_factory(1, extra=store_table(pg_cluster, pg_settings))
    b.state_dir.mkdir(mode=0o700, exist_ok=True)
    hook_record(b.state_dir, "r-1")
    assert copied(pg_cluster.url(), pg_settings.namespace) == []  # the hook itself never reaches the store
    tick = b.json("watchdog", "tick")
    assert tick["errors"] == []
    host = load_config(b.path).store.host  # type: ignore[union-attr]
    assert copied(pg_cluster.url(), pg_settings.namespace) == [(host, local(b.state_dir)[0])]
    b.json("watchdog", "tick")
    assert len(copied(pg_cluster.url(), pg_settings.namespace)) == 1
    (b.state_dir / CURSOR_NAME).unlink()  # as if the tick died after the commit, before the cursor was written
    b.json("watchdog", "tick")
    assert len(copied(pg_cluster.url(), pg_settings.namespace)) == 1
    hook_record(b.state_dir, "r-2")
    b.json("watchdog", "tick")
    assert [r["request"] for _, r in copied(pg_cluster.url(), pg_settings.namespace)] == ["r-1", "r-2"]
    assert [r["request"] for r in local(b.state_dir)] == ["r-1", "r-2"]


def test_a_crash_between_the_copy_and_the_cursor_copies_nothing_twice(
        pg_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The cursor's write is made to fail hard once: the one way to stop between the two steps."""
    hook_record(tmp_path, "r-1")
    hook_record(tmp_path, "r-2")

    def crash(*_: object, **__: object) -> None:
        raise SystemExit("killed")

    with monkeypatch.context() as m:
        m.setattr(auditship, "write_json_atomic", crash)
        with pytest.raises(SystemExit):
            ship_file(tmp_path, PgAuditSink(pg_db, host="h"))
    assert not (tmp_path / CURSOR_NAME).exists()
    assert len(PgAuditSink(pg_db).records()) == 2  # committed before the crash
    hook_record(tmp_path, "r-3")
    assert ship_file(tmp_path, PgAuditSink(pg_db, host="h")) == 1
    assert ship_file(tmp_path, PgAuditSink(pg_db, host="h")) == 0
    assert [r["request"] for r in PgAuditSink(pg_db).records()] == ["r-1", "r-2", "r-3"]


def test_other_records_stay_local_and_a_line_being_written_waits_for_its_end(pg_db: Database, tmp_path: Path) -> None:
    sink = PgAuditSink(pg_db, host="h")
    audit.record(tmp_path, "agent_claim", holder="alice", outcome="ok")  # the service's sink wrote it already
    hook_record(tmp_path, "r-1")
    line = (tmp_path / "audit.jsonl").read_bytes().splitlines()[-1].replace(b"r-1", b"r-2") + b"\n"
    with (tmp_path / "audit.jsonl").open("ab") as f:
        f.write(line[:40])
    assert ship_file(tmp_path, sink) == 1
    with (tmp_path / "audit.jsonl").open("ab") as f:
        f.write(line[40:])
    assert ship_file(tmp_path, sink) == 1
    assert [(r["event"], r["request"]) for r in sink.records()] == [("approval.policy", "r-1"),
                                                                    ("approval.policy", "r-2")]


def test_a_rotated_or_truncated_file_is_read_again_without_duplicates(pg_db: Database, tmp_path: Path) -> None:
    sink = PgAuditSink(pg_db, host="h")
    path = tmp_path / "audit.jsonl"
    hook_record(tmp_path, "r-1")
    assert ship_file(tmp_path, sink) == 1
    os.rename(path, tmp_path / "audit.jsonl.1")  # rotated by renaming: a new file
    hook_record(tmp_path, "r-2")  # as long as r-1's line, most likely: the cursor's offset alone cannot tell
    assert ship_file(tmp_path, sink) == 1
    cursor = read_cursor(tmp_path / CURSOR_NAME)
    assert cursor is not None
    assert (cursor.inode, cursor.offset) == (path.stat().st_ino, path.stat().st_size)  # the new file's place
    kept = path.read_bytes()
    path.write_bytes(b"")  # copytruncate: the same file, emptied, then written past the old cursor
    hook_record(tmp_path, "r-3-with-a-longer-request-id")
    hook_record(tmp_path, "r-4")
    assert ship_file(tmp_path, sink) == 2
    path.write_bytes(kept + path.read_bytes())  # a restore that repeats records already copied
    assert ship_file(tmp_path, sink) == 0
    assert [r["request"] for r in sink.records()] == ["r-1", "r-2", "r-3-with-a-longer-request-id", "r-4"]


def test_a_store_that_is_down_leaves_the_cursor_and_the_next_tick_copies(
        pg_settings: StoreSettings, pg_db: Database, tmp_path: Path) -> None:
    hook_record(tmp_path, "r-1")
    dead = Database(StoreSettings(url="postgresql://fleet@127.0.0.1:1/none", namespace=pg_settings.namespace,
                                  connect_timeout=1))
    try:
        with pytest.raises(StoreUnavailable):
            ship_file(tmp_path, PgAuditSink(dead, host="h"))
    finally:
        dead.close()
    assert not (tmp_path / CURSOR_NAME).exists()
    assert ship_file(tmp_path, PgAuditSink(pg_db, host="h")) == 1


def test_two_state_dirs_on_one_store_keep_their_ticks_apart(
        pg_cluster: PgCluster, pg_settings: StoreSettings, fleet_factory: Callable[..., Fleet]) -> None:
    store = store_table(pg_cluster, pg_settings)
    a, b = fleet_factory(1, extra=store), fleet_factory(1, extra=store)
    named = fleet_factory(1, extra=store + 'host = "lab-3"\n')
    hosts = [load_config(f.path).store.host for f in (a, b, named)]  # type: ignore[union-attr]
    assert len(set(hosts)) == 3
    assert hosts[2] == "lab-3"
    ticks = {f.name: [f.json("watchdog", "tick")["at"] for _ in range(n)] for f, n in ((a, 2), (b, 1), (named, 1))}
    for f, host in zip((a, b, named), hosts, strict=True):
        status = f.json("watchdog", "status")
        assert status["last_tick"]["at"] == ticks[f.name][-1]
        assert status["recent"] == []
        assert f.json("store", "status")["host"] == host
    with psycopg.connect(pg_cluster.url()) as conn:
        rows = conn.execute("SELECT host, at FROM fleet_watchdog_tick WHERE namespace = %s ORDER BY id",
                            (pg_settings.namespace,)).fetchall()
    assert sorted(rows) == sorted([(hosts[0], t) for t in ticks[a.name]] + [(hosts[1], ticks[b.name][0]),
                                                                            (hosts[2], ticks[named.name][0])])


def test_a_symlink_in_place_of_the_audit_file_is_refused_not_followed(pg_db: Database, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    hook_record(elsewhere, "r-planted")
    state = tmp_path / "state"
    state.mkdir()
    (state / "audit.jsonl").symlink_to(elsewhere / "audit.jsonl")
    with pytest.raises(StateDirError) as refused:
        ship_file(state, PgAuditSink(pg_db, host="h"))
    assert refused.value.code == "state_dir_unusable"
    assert refused.value.hint
    assert PgAuditSink(pg_db).records() == []
    assert not (state / CURSOR_NAME).exists()
