"""A process started without the store's URL, for a fleet that keeps its state in the shared store
(a lead's fleet server, a watchdog unit or a shell without `$FLEET_STORE_URL`): it refuses with
`store_not_configured` instead of keeping leases and assignments of its own that nobody else sees."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from conftest import Fleet
from pgcluster import PgCluster


def test_a_process_without_the_store_refuses_instead_of_keeping_a_second_brain(
        fleet_factory: Callable[..., Fleet], pg_cluster: PgCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    f = fleet_factory(1)  # no [store] table: the URL comes from the environment alone
    monkeypatch.setenv("FLEET_STORE_URL", pg_cluster.url(password="hunter2"))
    assert f.json("claim", "agent-1", "--holder", "alice")["status"] == "claimed"
    monkeypatch.delenv("FLEET_STORE_URL")  # a process started where the variable is not set
    for args in (("claim", "agent-1", "--holder", "bob"), ("status",), ("assignments",), ("watchdog", "tick")):
        proc = f.cli(*args, "--json")
        error = json.loads(proc.stdout)["error"]
        assert error["code"] == "store_not_configured", (args, error)
        assert "FLEET_STORE_URL" in error["hint"]
        assert "hunter2" not in proc.stdout + proc.stderr
    assert not (f.state_dir / "leases" / "agent-1.json").exists()  # no lease file of its own was made
    assert not (f.state_dir / "fleet.db").exists()
    monkeypatch.setenv("FLEET_STORE_URL", pg_cluster.url(password="hunter2"))
    assert f.json("claim", "agent-1", "--holder", "alice")["status"] == "renewed"  # the store's lease, intact
