"""Routing across hosts by rank, through a real sshd (tests/sshhosts.py) and a real PostgreSQL store
(tests/pgcluster.py): `assign` without `--to` asks every host which agent it would pick and goes to
the best one, whichever host comes first in the config; a host whose pick got busy in between passes
it on. Host r1's agent is the stand-in TUI (idle, never sent anything here); r2's runs real Codex
against the scripted mock model, so the assignment it takes is really delivered."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import read_audit, wait_until
from faketui import fake_codex
from mockmodel import MockServer
from offlinecodex import codex_offline_args
from pgcluster import PgCluster
from sshhosts import RemoteHost
from test_hosts_ssh import _closed_channels, local_config, remote, sshd  # noqa: F401 (fixtures)

from fleet import ops
from fleet.service import Service


@pytest.fixture
def pg(pg_cluster: PgCluster) -> PgCluster:
    return pg_cluster  # the session's cluster (tests/conftest.py); each test has its own namespace


def fleet(config: Path, *args: str) -> Any:
    done = subprocess.run([sys.executable, "-m", "fleet", "--config", str(config), *args, "--json"],
                          capture_output=True, text=True, timeout=90, check=False)
    return json.loads(done.stdout)


def two_hosts(make: Callable[..., RemoteHost], tmp_path: Path, pg: PgCluster, codex: str,
              model: MockServer) -> tuple[RemoteHost, RemoteHost, Path]:
    """r1 (agent noor, the stand-in) and r2 (agent zed, real Codex), both up, sharing one store with
    the config here, which has no agents of its own and lists r1 first."""
    store = f'\n[store]\nurl = "{pg.url()}"\nnamespace = "x-{tmp_path.name[-12:]}"\n'
    r1 = make("r1", ["noor"], codex=fake_codex(tmp_path))
    r2 = make("r2", ["zed"], codex=codex)
    r1.config.write_text(r1.config.read_text() + store)
    offline = f"\n[defaults]\nargs = {json.dumps(codex_offline_args(model.url))}\n"
    r2.config.write_text(r2.config.read_text() + store + offline)
    config = local_config(tmp_path, [r1, r2], {"noor": "r1", "zed": "r2"})
    config.write_text(config.read_text() + store)
    r1.fleet("store", "init")
    r1.fleet("up", "noor")
    r2.fleet("up", "zed")
    return r1, r2, config


def state_of(host: RemoteHost, agent: str) -> str:
    return str(json.loads(host.fleet("status", agent, "--json").stdout)["agents"][0]["state"])


def test_the_host_whose_agent_ranks_best_gets_the_work_not_the_first_in_the_config(
        remote: Callable[..., RemoteHost], tmp_path: Path, pg: PgCluster, codex_bin: str,  # noqa: F811
        mock_model: MockServer) -> None:
    """noor (r1, first in the config) is idle but has an open assignment waiting for it; zed (r2) is
    idle with none: zed gets the work, and a retry with the request id is the same assignment."""
    r1, r2, config = two_hosts(remote, tmp_path, pg, codex_bin, mock_model)
    try:
        r1.fleet("claim", "noor", "--holder", "a-person")  # so the one for noor waits in the queue
        waiting = json.loads(r1.fleet("assign", "--to", "noor", "--queue", "Earlier work.", "--json").stdout)
        assert waiting["state"] == "queued"
        r1.fleet("release", "noor", "--holder", "a-person")
        assert state_of(r1, "noor") == state_of(r2, "zed") == "idle"
        made = fleet(config, "assign", "Look around.", "--request-id", "route-best")
        assert (made.get("host"), made.get("agent"), made.get("state")) == ("r2", "zed", "sent"), made
        again = fleet(config, "assign", "Look around.", "--request-id", "route-best")
        assert (again["assignment"], again["duplicate"]) == (made["assignment"], True)
        assert [p for p in mock_model.model.user_prompts() if made["assignment"] in p]  # really delivered
        assert json.loads(r1.fleet("show", waiting["assignment"], "--json").stdout)["state"] == "queued"
        assert not [r for r in read_audit(r1.state_dir) if r["event"] == "assignment_create"
                    and r.get("surface") == "remote"]  # r1 was asked which agent it would pick, never to create
    finally:
        r1.fleet("down", "noor", check=False)
        r2.fleet("down", "zed", check=False)


def test_a_host_whose_pick_got_busy_in_between_passes_the_work_on(
        remote: Callable[..., RemoteHost], tmp_path: Path, pg: PgCluster, codex_bin: str,  # noqa: F811
        mock_model: MockServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """zed (r2) was assigned before, noor (r1) never: noor ranks best, but is claimed by someone once
    the hosts have answered (the one condition simulated: the hosts' answers are wrapped to claim it
    then); r1 refuses with `no_agent_available` and r2 takes it."""
    r1, r2, config = two_hosts(remote, tmp_path, pg, codex_bin, mock_model)
    try:
        earlier = json.loads(r2.fleet("assign", "--to", "zed", "Earlier work.", "--json").stdout)
        assert earlier["state"] == "sent"
        r2.fleet("cancel", earlier["assignment"])
        wait_until(lambda: state_of(r2, "zed") == "idle", timeout=60)
        svc = Service(str(config), holder="lead-9")
        asked = svc.hosts.ask
        calls = []

        def ask_then_claim(requests: dict[str, Any], timeout: float) -> dict[str, Any]:
            answers = asked(requests, timeout)
            calls.append({h: answers[h].get("agent") for h in requests})
            r1.fleet("claim", "noor", "--holder", "a-person")
            return answers

        monkeypatch.setattr(svc.hosts, "ask", ask_then_claim)
        try:
            made = ops.invoke(svc, "assignment_create", {"task": "Look around.", "request_id": "route-busy"})
        finally:
            svc.close()
        assert calls == [{"r1": "noor", "r2": "zed"}]
        assert (made["host"], made["agent"], made["state"]) == ("r2", "zed", "sent")
        [refused] = [r for r in read_audit(r1.state_dir) if r["event"] == "assignment_create"]
        assert (refused["holder"], refused["code"]) == ("lead-9", "no_agent_available")
    finally:
        r1.fleet("down", "noor", check=False)
        r2.fleet("down", "zed", check=False)
