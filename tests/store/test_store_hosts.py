"""Remote hosts sharing one PostgreSQL store: `assign --to` a remote agent is created and sent by its
host, in the shared ledger, so this host shows, lists and cancels it like its own; without a shared
store it is refused (the assignment would live where this host could never see it)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from pgcluster import PgCluster
from sshhosts import RemoteHost
from test_hosts_ssh import _closed_channels, local_config, remote, sshd  # noqa: F401 (fixtures)


def fleet(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fleet", "--config", str(config), *args, "--json"],
                          capture_output=True, text=True, timeout=90, check=False)


def test_an_assignment_to_a_remote_agent_lives_in_the_shared_ledger(
        remote: Callable[..., RemoteHost], tmp_path: Path, pg_cluster: PgCluster) -> None:  # noqa: F811
    r1 = remote("r1", ["noor"])
    store = f'\n[store]\nurl = "{pg_cluster.url()}"\nnamespace = "shared-{tmp_path.name[-12:]}"\n'
    r1.config.write_text(r1.config.read_text() + store)
    config = local_config(tmp_path, [r1], {"noor": "r1"})
    alone = fleet(config, "assign", "--to", "noor", "--queue", "Look around.")
    assert json.loads(alone.stdout)["error"]["code"] == "agent_remote"  # no shared store here yet
    assert "shared store" in json.loads(alone.stdout)["error"]["message"]
    config.write_text(config.read_text() + store)
    assert r1.fleet("store", "init").returncode == 0
    r1.fleet("claim", "noor", "--holder", "a-person")  # busy: the assignment waits in the queue
    made = fleet(config, "assign", "--to", "noor", "--queue", "Look around.", "--request-id", "look-1")
    created = json.loads(made.stdout)
    assert made.returncode == 0, made.stdout
    assert (created["state"], created["host"]) == ("queued", "r1")
    again = json.loads(fleet(config, "assign", "--to", "noor", "--queue", "Look around.", "--request-id",
                             "look-1").stdout)
    assert again["assignment"] == created["assignment"]  # a retry is the same assignment
    shown_here = json.loads(fleet(config, "show", created["assignment"]).stdout)
    shown_there = json.loads(r1.fleet("show", created["assignment"], "--json").stdout)
    assert shown_here["state"] == shown_there["state"] == "queued"
    assert shown_here["task"] == "Look around."
    listed = json.loads(fleet(config, "assignments").stdout)["assignments"]
    assert [a["id"] for a in listed] == [created["assignment"]]
    cancelled = json.loads(fleet(config, "cancel", created["assignment"]).stdout)
    assert (cancelled["cancelled"], cancelled["host"]) == (True, "r1")  # cancelled on the agent's host
    assert json.loads(r1.fleet("show", created["assignment"], "--json").stdout)["state"] == "cancelled"


def test_routing_without_to_asks_every_host_and_queues_where_it_can(
        remote: Callable[..., RemoteHost], tmp_path: Path, pg_cluster: PgCluster) -> None:  # noqa: F811
    """No `--to`, remote hosts and a shared store: every host says which of its agents it would pick;
    nobody can take it now: `no_agent_available` with every host's reasons (a skill no host has among
    them), or with `--queue` queued (on the first host, as this one has no agents), visible here; a
    retry makes nothing new. A path no host could take is refused before any host is asked."""
    store = f'\n[store]\nurl = "{pg_cluster.url()}"\nnamespace = "route-{tmp_path.name[-12:]}"\n'
    r1, r2 = remote("r1", ["noor"]), remote("r2", ["zed"])
    for r in (r1, r2):
        r.config.write_text(r.config.read_text() + store)
    config = local_config(tmp_path, [r1, r2], {"noor": "r1", "zed": "r2"})
    config.write_text(config.read_text() + store)
    assert r1.fleet("store", "init").returncode == 0
    refused = json.loads(fleet(config, "assign", "Look around.").stdout)["error"]
    assert refused["code"] == "no_agent_available"
    assert {(r["host"], r["agent"], r["why"]) for r in refused["reasons"]} == {
        ("r1", "noor", "not_running"), ("r2", "zed", "not_running")}
    unskilled = json.loads(fleet(config, "assign", "--skill", "nobody-has-it", "Look around.").stdout)["error"]
    assert unskilled["code"] == "no_agent_available"
    assert {(r["host"], r["why"]) for r in unskilled["reasons"]} == {("r1", "skill_not_found"),
                                                                    ("r2", "skill_not_found")}
    absolute = json.loads(fleet(config, "assign", "--write", "/etc/", "Look around.").stdout)["error"]
    assert (absolute["code"], absolute["message"].startswith("The write path '/etc/' is absolute")) == (
        "invalid_input", True)
    made = json.loads(fleet(config, "assign", "--queue", "Look around.", "--request-id", "route-1").stdout)
    assert (made["state"], made["host"]) == ("queued", "r1")
    again = json.loads(fleet(config, "assign", "--queue", "Look around.", "--request-id", "route-1").stdout)
    assert again["assignment"] == made["assignment"]
    assert [a["id"] for a in json.loads(fleet(config, "assignments").stdout)["assignments"]] == [made["assignment"]]
    assert json.loads(r2.fleet("show", made["assignment"], "--json").stdout)["state"] == "queued"


def test_a_host_whose_only_agent_is_the_lead_queues_on_a_host_that_can_take_it(
        remote: Callable[..., RemoteHost], tmp_path: Path, pg_cluster: PgCluster) -> None:  # noqa: F811
    """Where the lead runs, its host's one agent is the lead, which never takes work: `--queue` with
    nobody free anywhere queues on the first remote host, not a refusal from this one."""
    store = f'\n[store]\nurl = "{pg_cluster.url()}"\nnamespace = "lq-{tmp_path.name[-12:]}"\n'
    r1 = remote("r1", ["noor"])
    r1.config.write_text(r1.config.read_text() + store)
    config = local_config(tmp_path, [r1], {"noor": "r1"}, local_agents=("boss",))
    config.write_text(config.read_text().replace('[agents.boss]\n', '[agents.boss]\nrole = "lead"\n') + store)
    assert r1.fleet("store", "init").returncode == 0
    made = json.loads(fleet(config, "assign", "--queue", "Look around.", "--request-id", "lq-1").stdout)
    assert (made.get("state"), made.get("host")) == ("queued", "r1"), made
