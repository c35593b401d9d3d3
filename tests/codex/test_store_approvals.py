"""The `[watchdog] approve` policy on real Codex with the leases in the shared PostgreSQL store: fleet's
approval hook cannot reach the database, so it reads this host's copy of the lease rows
(`fleet.leases.mirror`). It answers at once for a free agent, leaves an agent a person holds to that
person (claimed through this host, or on another host and copied by the next tick), and a person
decides whenever the copy is missing."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import Fleet, wait_until
from mockmodel import MockServer
from mocksteps import Step

from codex.test_watchdog_approvals import audited, escalated, fleet_with, safe_home, waiting  # noqa: F401 (a fixture)
from fleet.config.store import StoreSettings
from fleet.leases import mirror
from fleet.leases.pg import PgLeaseStore
from fleet.store.auditlog import PgAuditSink
from fleet.store.db import Database

POLICY = {"toml": '{ allow = ["read-only"], otherwise = "deny" }'}


@pytest.fixture
def store_fleet(fleet_factory: Callable[..., Fleet], pg_cluster: Any, monkeypatch: pytest.MonkeyPatch,
                ) -> Callable[..., tuple[Fleet, StoreSettings]]:
    def make(model: MockServer, **watchdog: Any) -> tuple[Fleet, StoreSettings]:
        settings = StoreSettings(url=pg_cluster.url(), namespace=f"n{os.urandom(4).hex()}", connect_timeout=2)
        monkeypatch.setenv("FLEET_STORE_URL", settings.url)

        def factory(n: int = 1, **kw: Any) -> Fleet:
            return fleet_factory(n, **{**kw, "extra": f'[store]\nnamespace = "{settings.namespace}"\n' + kw["extra"]})

        return fleet_with(factory, model, **watchdog), settings
    return make


def answered(f: Fleet) -> list[tuple[str, str]]:
    return [(e["decision"], e["by"]) for e in f.journal("agent-1") if e["event"] == "approval_answered"]


@pytest.mark.usefixtures("safe_home")
def test_the_policy_answers_in_the_hook_with_the_leases_in_the_shared_store(
        store_fleet: Callable[..., tuple[Fleet, StoreSettings]], mock_model: MockServer) -> None:
    f, settings = store_fleet(mock_model, approve=POLICY)
    assert not (f.state_dir / "leases" / "agent-1.json").exists()  # the leases are in the database
    mock_model.model.script(escalated("ls -la"), Step(text="listed"), escalated("touch x.txt"), Step(text="refused"))
    for text in ("list the files", "make a file"):  # no tick runs: the hook decides
        receipt = f.json("send", "agent-1", text)
        wait_until(lambda r=receipt: (s := f.status("agent-1"))["state"] == "idle"
                   and s["last_turn"]["turn_id"] == r["turn_id"], timeout=30)
    assert answered(f) == [("allow", "watchdog:policy"), ("deny", "watchdog:policy")]
    assert not (f.root / "work" / "agent-1" / "x.txt").exists()
    assert [e["decision"] for e in audited(f, "approval.policy")] == ["allow", "deny"]
    # the hook writes only the local audit log; the tick ships those records to the shared one, once
    for _ in range(2):
        assert f.json("watchdog", "tick")["errors"] == []
    db = Database(settings)
    try:
        shared = [r for r in PgAuditSink(db).records() if r.get("event") == "approval.policy"]
    finally:
        db.close()
    assert [(r["agent"], r["decision"]) for r in shared] == [("agent-1", "allow"), ("agent-1", "deny")]


@pytest.mark.usefixtures("safe_home")
def test_a_person_who_holds_the_agent_decides_wherever_they_claimed_it(
        store_fleet: Callable[..., tuple[Fleet, StoreSettings]], mock_model: MockServer,
        tmp_path: Path) -> None:
    f, settings = store_fleet(mock_model, approve=POLICY)
    # alice claims agent-1 on another host (its own state dir, the same database): this host's copy
    # does not know yet, and the next tick copies the row
    db = Database(settings)
    try:
        token = PgLeaseStore(db, tmp_path / "other-host").claim("agent-1", "alice", ttl=600)["token"]
    finally:
        db.close()
    copy = mirror.read(f.state_dir, "agent-1")
    assert copy is None or copy.lease is None or copy.lease.holder != "alice"
    f.json("watchdog", "tick")
    copy = mirror.read(f.state_dir, "agent-1")
    assert copy is not None
    assert copy.lease is not None
    assert copy.lease.holder == "alice"
    mock_model.model.script(escalated("ls -la"), Step(text="listed"))
    f.json("send", "agent-1", "list the files", "--holder", "alice", "--token", str(token))
    status = waiting(f)
    assert status["approval"]["held"] is True  # the policy stood aside
    answer = f.json("approve", "agent-1", "--holder", "alice", "--token", str(token))
    assert (answer["decision"], answer["applied"]) == ("allow", True)
    wait_until(lambda: f.status("agent-1")["state"] == "idle", timeout=30)
    assert audited(f, "approval.policy") == []
    assert answered(f)[0][1] != "watchdog:policy"
