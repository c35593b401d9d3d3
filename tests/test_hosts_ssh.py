"""Remote hosts through a real sshd on 127.0.0.2 (tests/sshhosts.py): `fleet status` and `fleet hosts`
across hosts, a host that is down, a remote of another version, and a channel killed mid-request:
reconnected, and a mutating request whose answer was lost never run twice."""

from __future__ import annotations

import json
import os
import shlex
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import read_audit, wait_until
from sshhosts import RemoteHost, Sshd, free_port, make_remote, start_sshd

from fleet import __version__, ops
from fleet.errors import FleetError, HostLost
from fleet.hosts.channel import close_all
from fleet.service import Service


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    proc, server = start_sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(autouse=True)
def _closed_channels() -> Iterator[None]:
    yield
    close_all()


@pytest.fixture
def remote(sshd: Sshd, tmp_path: Path) -> Iterator[Callable[..., RemoteHost]]:
    """Make "hosts" (tests/sshhosts.py); at the end, their tmux servers are killed whatever the test left
    running (a `down` refused by an assignment's lease would leave its Codex behind)."""
    made: list[RemoteHost] = []

    def make(name: str, agents: list[str], **kw: Any) -> RemoteHost:
        made.append(make_remote(sshd, tmp_path / name, name, agents, **kw))
        return made[-1]

    yield make
    for host in made:
        for socket in [*(host.root / "tmux").glob("tmux-*/*"), *host.state_dir.glob("tmux.sock")]:
            subprocess.run(["tmux", "-S", str(socket), "kill-server"], capture_output=True, check=False, timeout=30)


def local_config(tmp_path: Path, hosts: list[RemoteHost], remote_agents: dict[str, str],
                 local_agents: tuple[str, ...] = ()) -> Path:
    body = [f'[fleet]\nname = "here"\nstate_dir = "{tmp_path / "local-state"}"\n', *(h.table for h in hosts)]
    for name in local_agents:
        (tmp_path / "local" / name).mkdir(parents=True)
        body.append(f'[agents.{name}]\nhome = "{tmp_path / "local" / name}"\ncwd = "{tmp_path / "local" / name}"\n')
    for name, host in remote_agents.items():
        body.append(f'[agents.{name}]\nhost = "{host}"\nhome = "~/codex"\nrepo = "~/src/shop"\n')
    path = tmp_path / "fleet.toml"
    path.write_text("\n".join(body))
    return path


def cli(config: Path, *args: str) -> Any:
    done = subprocess.run([sys.executable, "-m", "fleet", "--config", str(config), *args, "--json"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_status_and_hosts_across_hosts(remote: Callable[..., RemoteHost], tmp_path: Path) -> None:
    r1 = remote("r1", ["noor"])
    config = local_config(tmp_path, [r1], {"noor": "r1"}, local_agents=("mila",))
    status = cli(config, "status")
    by_name = {a["name"]: a for a in status["agents"]}
    assert [a["name"] for a in status["agents"]] == ["mila", "noor"]
    assert (by_name["mila"]["state"], "host" in by_name["mila"]) == ("stopped", False)
    assert (by_name["noor"]["state"], by_name["noor"]["host"]) == ("stopped", "r1")
    assert by_name["noor"]["cwd"] == str(r1.root / "work" / "noor")  # the host's own view of its agent
    assert by_name["noor"]["lease"]["state"] == "free"
    only = cli(config, "status", "noor")
    assert [(a["name"], a["state"]) for a in only["agents"]] == [("noor", "stopped")]
    [host] = cli(config, "hosts")["hosts"]
    assert (host["name"], host["reachable"], host["version"], host["agents"], host["missing"], host["error"]) == (
        "r1", True, __version__, ["noor"], [], None)
    assert host["latency_ms"] is not None


def test_a_host_that_is_down_shows_its_agents_unreachable_never_stopped(
        remote: Callable[..., RemoteHost], tmp_path: Path) -> None:
    up = remote("up", ["noor"])
    down = remote("down", ["zed"], port=free_port())  # nothing listens there
    config = local_config(tmp_path, [up, down], {"noor": "up", "zed": "down", "ghost": "up"})
    by_name = {a["name"]: a for a in cli(config, "status")["agents"]}
    assert by_name["noor"]["state"] == "stopped"
    assert by_name["zed"]["state"] == "unreachable"
    assert "host down: host_unreachable" in by_name["zed"]["detail"]
    assert by_name["zed"]["lease"]["state"] == "unknown"
    assert by_name["ghost"]["state"] == "unreachable"  # the host answered, but does not define it
    assert "no agent 'ghost'" in by_name["ghost"]["detail"]
    hosts = {h["name"]: h for h in cli(config, "hosts")["hosts"]}
    assert (hosts["up"]["reachable"], hosts["up"]["missing"]) == (True, ["ghost"])
    assert (hosts["down"]["reachable"], hosts["down"]["error"]["code"]) == (False, "host_unreachable")


def test_doctor_checks_each_host(remote: Callable[..., RemoteHost], tmp_path: Path) -> None:
    up = remote("up", ["noor"])
    down = remote("down", ["zed"], port=free_port())
    config = local_config(tmp_path, [up, down], {"noor": "up", "zed": "down", "ghost": "up"})
    done = subprocess.run([sys.executable, "-m", "fleet", "--config", str(config), "doctor", "--json"],
                          capture_output=True, text=True, timeout=60, check=False)
    report = json.loads(done.stdout)
    assert done.returncode != 0
    lines = {c["name"]: c for c in report["checks"]}
    assert lines["host down"]["ok"] is False
    assert "is unreachable" in lines["host down"]["detail"]  # refused at once, or no answer on a busy machine
    assert "BatchMode" in lines["host down"]["hint"]
    assert lines["host up"]["ok"] is False  # reached, but its config lacks `ghost`
    assert "ghost" in lines["host up"]["detail"]
    fixed = local_config(tmp_path, [up], {"noor": "up"})
    lines = {c["name"]: c for c in json.loads(subprocess.run(
        [sys.executable, "-m", "fleet", "--config", str(fixed), "doctor", "--json"],
        capture_output=True, text=True, timeout=60, check=False).stdout)["checks"]}
    assert lines["host up"]["ok"] is True
    assert f"fleet {__version__}" in lines["host up"]["detail"]


def test_a_remote_fleet_of_another_version_is_refused(remote: Callable[..., RemoteHost], tmp_path: Path) -> None:
    fake = tmp_path / "fake-fleet.py"
    hello = '{"fleet": "remote-session", "version": "9.9.9", "protocol": 1}'
    fake.write_text(f"import sys\nprint({hello!r}, flush=True)\nsys.stdin.read()\n")
    old = remote("old", ["noor"], fleet_cmd=f"{sys.executable} {fake}")
    config = local_config(tmp_path, [old], {"noor": "old"})
    [host] = cli(config, "hosts")["hosts"]
    assert (host["reachable"], host["version"], host["error"]["code"]) == (False, "9.9.9", "host_version_mismatch")
    assert "Install fleet" in host["error"]["hint"]
    [agent] = cli(config, "status")["agents"]
    assert agent["state"] == "unreachable"
    assert "host_version_mismatch" in agent["detail"]


def _open_by_others(path: Path) -> bool:
    """Whether a process other than this one has `path` open (the remote's request is running there)."""
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        if fd_dir.parent.name == str(os.getpid()):
            continue
        try:
            if any(os.readlink(fd) == str(path) for fd in fd_dir.iterdir()):
                return True
        except OSError:
            continue
    return False


def _in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["result"] = fn()
        except FleetError as exc:
            out["error"] = exc

    t = threading.Thread(target=run)
    t.start()
    return t, out


def test_a_channel_killed_mid_request_is_reconnected(remote: Callable[..., RemoteHost], tmp_path: Path) -> None:
    r1 = remote("r1", ["noor"])
    queued = json.loads(r1.fleet("assign", "--to", "noor", "--queue", "--json", "look around").stdout)["assignment"]
    svc = Service(config_path=str(local_config(tmp_path, [r1], {"noor": "r1"})))
    channel = svc.hosts.channel("r1")
    channel.request("ping", {}, timeout=30)
    first = channel.pid
    # a read-only request that runs for a while there: waiting on the queued assignment
    t, out = _in_thread(lambda: channel.request("assignment_wait", {"assignments": [queued], "timeout": 2},
                                                timeout=60))
    wait_until(lambda: _open_by_others(r1.state_dir / "fleet.db"))
    assert first is not None
    os.kill(first, 9)
    t.join(60)
    assert [p["id"] for p in out["result"]["pending"]] == [queued]  # asked again on a new channel
    assert channel.pid not in (None, first)
    assert ops.invoke(svc, "fleet_status", {})["agents"][0]["state"] == "stopped"


def _host_with_a_channel(remote: Callable[..., RemoteHost], tmp_path: Path) -> tuple[RemoteHost, Path, Any, int]:
    """Host r1 (agent noor) with its ledger made, and an open channel to it: (host, its ledger file,
    the channel, the channel's ssh pid)."""
    r1 = remote("r1", ["noor"])
    r1.fleet("assignments")  # creates the ledger
    svc = Service(config_path=str(local_config(tmp_path, [r1], {"noor": "r1"})))
    channel = svc.hosts.channel("r1")
    channel.request("ping", {}, timeout=30)
    assert channel.pid is not None
    return r1, r1.state_dir / "fleet.db", channel, channel.pid


@pytest.mark.parametrize("request_id", [None, "retry-me-1"])
def test_a_mutating_request_whose_answer_was_lost_is_never_run_twice(
        remote: Callable[..., RemoteHost], tmp_path: Path, request_id: str | None) -> None:
    r1, db, channel, first = _host_with_a_channel(remote, tmp_path)
    lock = sqlite3.connect(db, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")  # the remote's create waits for the ledger
    args = {"task": "count the files", "to": "noor", "queue": True, "holder": "lead-1",
            **({"request_id": request_id} if request_id else {})}
    t, out = _in_thread(lambda: channel.request("assignment_create", args, timeout=60, mutating=True))
    wait_until(lambda: _open_by_others(db))
    os.kill(first, 9)
    if request_id is None:
        t.join(60)  # refused at once: not sent again
        assert isinstance(out.get("error"), HostLost), out
        assert out["error"].code == "host_lost"
        assert "not run again" in out["error"].message
    wait_until(lambda: channel.pid not in (None, first) or "error" in out)
    lock.execute("COMMIT")
    lock.close()
    t.join(60)
    if request_id is not None:  # retried with the same request id: the first call's assignment
        assert out["result"]["state"] == "queued", out
    close_all()  # the sessions end once their requests are done
    wait_until(lambda: not _open_by_others(db), timeout=30)
    made = json.loads(r1.fleet("assignments", "--json").stdout)["assignments"]
    assert len(made) == 1, made
    if request_id is not None:
        assert made[0]["id"] == out["result"]["assignment"]


def test_a_lost_answer_whose_host_cannot_be_reached_again_is_lost_never_unreachable(
        remote: Callable[..., RemoteHost], sshd: Sshd, tmp_path: Path) -> None:
    """A mutating request with a request id was sent, the channel broke, and the host refuses new
    connections: "unreachable" would tell a caller it never ran there (routing would hand the work to
    another host), so it is `host_lost`, and once the host answers the same request id finds it."""
    r1, db, channel, first = _host_with_a_channel(remote, tmp_path)
    keys = sshd.dir / "authorized_keys"
    saved = keys.read_text()
    lock = sqlite3.connect(db, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")  # the remote's create waits for the ledger
    args = {"task": "count the files", "to": "noor", "queue": True, "holder": "lead-1", "request_id": "lost-2"}
    try:
        t, out = _in_thread(lambda: channel.request("assignment_create", args, timeout=20, mutating=True))
        wait_until(lambda: _open_by_others(db))
        keys.write_text("")  # no new session gets in
        os.kill(first, 9)
        t.join(60)
    finally:
        keys.write_text(saved)
        lock.execute("COMMIT")
        lock.close()
    assert isinstance(out.get("error"), HostLost), out
    assert "could not be reached again" in out["error"].message
    again = channel.request("assignment_create", args, timeout=60, mutating=True)
    close_all()
    wait_until(lambda: not _open_by_others(db), timeout=30)
    made = json.loads(r1.fleet("assignments", "--json").stdout)["assignments"]
    assert [a["id"] for a in made] == [again["assignment"]]  # made once, found by the retry


def test_send_and_tail_run_on_the_agents_host(remote: Callable[..., RemoteHost], tmp_path: Path) -> None:
    r1 = remote("r1", ["noor"])
    config = local_config(tmp_path, [r1], {"noor": "r1"})
    sent = subprocess.run([sys.executable, "-m", "fleet", "--config", str(config), "send", "noor", "hello",
                           "--holder", "lead-7", "--json"], capture_output=True, text=True, timeout=60, check=False)
    error = json.loads(sent.stdout)["error"]
    assert (sent.returncode, error["code"], error["host"]) == (1, "agent_not_running", "r1")
    assert error["message"].startswith("host r1: ")
    [there] = [r for r in read_audit(r1.state_dir) if r["event"] == "agent_send"]
    assert (there["surface"], there["holder"], there["code"]) == ("remote", "lead-7", "agent_not_running")
    [here] = [r for r in read_audit(tmp_path / "local-state") if r["event"] == "agent_send"]
    assert (here["holder"], here["code"]) == ("lead-7", "agent_not_running")
    svc = Service(config_path=str(config))
    with pytest.raises(FleetError) as caught:
        ops.invoke(svc, "agent_tail", {"agent": "noor"})
    assert (caught.value.code, caught.value.data["host"]) == ("agent_not_running", "r1")
    with pytest.raises(FleetError) as refused:  # assignments do not reach remote agents yet: said so, nothing made
        ops.invoke(svc, "assignment_create", {"task": "look around", "to": "noor"})
    assert refused.value.code == "agent_remote"
    assert ops.invoke(svc, "assignment_list", {})["assignments"] == []


def test_a_host_that_does_not_answer_within_the_bound_is_unreachable(
        remote: Callable[..., RemoteHost], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    silent = tmp_path / "silent-fleet.py"
    silent.write_text("import sys\nsys.stdin.read()\n")  # reached, but never says hello
    up = remote("up", ["noor"])
    hung = remote("hung", ["zed"], fleet_cmd=f"{sys.executable} {silent}")
    monkeypatch.setattr("fleet.service.hosts.STATUS_BOUND", 2.0)
    svc = Service(config_path=str(local_config(tmp_path, [up, hung], {"noor": "up", "zed": "hung"})))
    by_name = {a["name"]: a for a in ops.invoke(svc, "fleet_status", {})["agents"]}
    assert by_name["noor"]["state"] == "stopped"
    assert by_name["zed"]["state"] == "unreachable"
    assert "did not answer within the bound" in by_name["zed"]["detail"]


def test_leases_across_hosts(remote: Callable[..., RemoteHost], tmp_path: Path) -> None:
    up = remote("up", ["noor", "ali"])
    down = remote("down", ["zed"], port=free_port())
    up.fleet("claim", "noor", "--holder", "lead-2")
    config = local_config(tmp_path, [up, down], {"noor": "up", "ali": "up", "zed": "down"}, local_agents=("mila",))
    leases = {e["agent"]: e for e in cli(config, "leases")["leases"]}
    assert (leases["mila"]["state"], "host" in leases["mila"]) == ("free", False)
    assert (leases["noor"]["state"], leases["noor"]["holder"], leases["noor"]["host"]) == ("held", "lead-2", "up")
    assert (leases["ali"]["state"], leases["ali"]["host"]) == ("free", "up")
    assert (leases["zed"]["state"], leases["zed"]["error"]["code"]) == ("unknown", "host_unreachable")
    shown = subprocess.run([sys.executable, "-m", "fleet", "--config", str(config), "leases"], capture_output=True,
                           text=True, timeout=60, check=True).stdout
    assert "noor@up: held by lead-2" in shown
    assert "zed@down: unknown (" in shown


def test_attach_to_a_remote_agent_runs_attach_on_its_host_through_ssh_with_a_terminal(
        remote: Callable[..., RemoteHost], tmp_path: Path) -> None:
    """`fleet attach NAME` for a remote agent: ssh -t to its host, where fleet attaches to the agent's
    own tmux session. Seen from an outer tmux window (a real terminal): the agent's screen appears."""
    from faketui import fake_codex

    r1 = remote("r1", ["noor"], codex=fake_codex(tmp_path))
    assert json.loads(r1.fleet("up", "noor", "--json").stdout)["ok"]
    config = local_config(tmp_path, [r1], {"noor": "r1"})
    outer = ["tmux", "-L", f"attach-{os.getpid()}"]
    command = " ".join(shlex.quote(w) for w in [sys.executable, "-m", "fleet", "--config", str(config), "attach",
                                                  "noor"])
    try:
        subprocess.run([*outer, "new-session", "-d", "-x", "120", "-y", "30", "-s", "t", command], check=True)

        def screen() -> str:
            return subprocess.run([*outer, "capture-pane", "-p", "-t", "=t:"], capture_output=True, text=True,
                                  check=False).stdout

        # the stand-in's own composer and footer, drawn by tmux on the host, through ssh's terminal
        wait_until(lambda: "Ask Codex to do anything" in screen() and "mock-model default" in screen(), timeout=20)
    finally:
        subprocess.run([*outer, "kill-server"], capture_output=True, check=False)
        r1.fleet("down", "noor", check=False)



def test_claim_release_interrupt_and_approvals_run_on_the_agents_host(remote: Callable[..., RemoteHost],
                                                                      tmp_path: Path) -> None:
    """The lease and the approval hold of a remote agent live on its host: claim, release, interrupt,
    approve and deny run there under the caller's holder, with the host's answers and error codes."""
    r1 = remote("r1", ["noor"])
    config = local_config(tmp_path, [r1], {"noor": "r1"})
    claimed = cli(config, "claim", "noor", "--holder", "lead-3")
    assert (claimed["status"], claimed["host"]) == ("claimed", "r1")
    there = json.loads(r1.fleet("leases", "--json").stdout)["leases"]
    assert [(e["agent"], e["holder"]) for e in there] == [("noor", "lead-3")]  # held on the host itself
    refused = subprocess.run([sys.executable, "-m", "fleet", "--config", str(config), "claim", "noor", "--holder",
                              "lead-4", "--json"], capture_output=True, text=True, timeout=60, check=False)
    assert (refused.returncode, json.loads(refused.stdout)["error"]["code"]) == (3, "lease_held")
    svc = Service(config_path=str(config))
    for op, args, code in (("agent_interrupt", {}, "agent_not_running"), ("agent_approve", {}, "no_pending_approval"),
                           ("agent_deny", {"message": "no"}, "no_pending_approval")):
        with pytest.raises(FleetError) as caught:
            ops.invoke(svc, op, {"agent": "noor", "holder": "lead-3", **args})
        assert (op, caught.value.code, caught.value.data["host"]) == (op, code, "r1")
    released = cli(config, "release", "noor", "--holder", "lead-3")
    assert (released["released"], released["host"]) == (True, "r1")
    assert json.loads(r1.fleet("leases", "--json").stdout)["leases"][0]["state"] == "free"
    audited = [(r["event"], r["holder"]) for r in read_audit(r1.state_dir) if r["event"].startswith("agent_")]
    assert ("agent_claim", "lead-3") in audited
    assert ("agent_approve", "lead-3") in audited


def test_up_and_down_start_and_stop_remote_agents_on_their_hosts(remote: Callable[..., RemoteHost],
                                                                 tmp_path: Path) -> None:
    """`fleet up` / `fleet down` with remote agents: each host starts and stops its own (one request per
    host, in parallel); without names, every agent here and on every host; a host that is down fails
    its agents' rows only."""
    from faketui import fake_codex

    r1 = remote("r1", ["noor"], codex=fake_codex(tmp_path))
    down = remote("down", ["zed"], port=free_port())
    config = local_config(tmp_path, [r1, down], {"noor": "r1", "zed": "down"})
    try:
        proc = subprocess.run([sys.executable, "-m", "fleet", "--config", str(config), "up", "--json"],
                              capture_output=True, text=True, timeout=120, check=False)
        started = json.loads(proc.stdout)
        rows = {r["agent"]: r for r in started["agents"]}
        assert (rows["noor"]["result"], rows["noor"]["host"]) == ("started", "r1"), rows
        assert (rows["zed"]["result"], rows["zed"]["error"]["code"]) == ("failed", "host_unreachable")
        assert started["ok"] is False
        assert proc.returncode != 0
        assert json.loads(r1.fleet("status", "noor", "--json").stdout)["agents"][0]["state"] == "idle"
        stopped = cli(config, "down", "noor")
        assert [(r["agent"], r["host"], r["result"]) for r in stopped["agents"]] == [("noor", "r1", "stopped")]
        assert json.loads(r1.fleet("status", "noor", "--json").stdout)["agents"][0]["state"] == "stopped"
    finally:
        r1.fleet("down", "noor", check=False)
