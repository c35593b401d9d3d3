"""Fleet's files: private modes, no symlink followed, nothing written by a read-only status."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import Fleet
from faketui import fake_codex

from fleet.agents.tmux import SERVER_CONF
from fleet.hooks import receiver


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The common umask, under which `mkdir -p` would make world-readable parents."""
    old = os.umask(0o022)
    yield
    os.umask(old)




def relocate(f: Fleet, state_dir: Path, home: Path) -> None:
    """Point the fleet's state dir and agent-1's home at paths whose parents do not exist yet."""
    text = f.path.read_text()
    text = text.replace(f'state_dir = "{f.state_dir}"', f'state_dir = "{state_dir}"')
    text = text.replace(f'home = "{f.root / "homes" / "agent-1"}"', f'home = "{home}"')
    f.path.write_text(text)
    f.state_dir = state_dir


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_every_directory_fleet_creates_is_private_parents_included(
        fleet_factory: Callable[..., Fleet], tmp_path: Path, umask_022: None) -> None:
    f = fleet_factory(1, codex=fake_codex(tmp_path))
    relocate(f, f.root / "deep" / "er" / "state", f.root / "homes-new" / "team" / "agent-1")
    f.json("up")
    f.json("send", "agent-1", "hi", "--timeout", "1", ok=False)  # op lock, journal, audit
    f.json("claim", "agent-1")
    created = [*(f.root / "deep").rglob("*"), f.root / "deep"]
    created += [f.root / "homes-new", f.root / "homes-new" / "team", f.root / "homes-new" / "team" / "agent-1"]
    dirs = [p for p in created if p.is_dir() and not p.is_symlink()]
    files = [p for p in created if p.is_file() and not p.is_symlink()]
    assert {p.name for p in dirs} >= {"deep", "er", "state", "agents", "agent-1", "leases", "homes-new", "team"}
    assert {p.name for p in files} >= {"tmux.conf", "events.jsonl", "events.lock", "op.lock", "audit.jsonl",
                                       "agent-1.json"}
    assert {str(p): oct(mode(p)) for p in dirs if mode(p) != 0o700} == {}
    assert {str(p): oct(mode(p)) for p in files if mode(p) != 0o600} == {}


def test_a_read_only_status_creates_nothing_on_disk(fleet_factory: Callable[..., Fleet]) -> None:
    f = fleet_factory(2)
    assert not f.state_dir.exists()
    assert [a["state"] for a in f.json("status")["agents"]] == ["stopped", "stopped"]
    assert f.cli("status").returncode == 0
    assert f.json("status", "agent-1")["agents"][0]["lease"]["state"] == "free"
    assert not f.state_dir.exists()


def test_tmux_conf_is_written_atomically_and_a_symlink_there_is_replaced_not_followed(
        fleet_factory: Callable[..., Fleet], tmp_path: Path) -> None:
    f = fleet_factory(1, codex=fake_codex(tmp_path))
    victim = tmp_path / "victim.conf"
    victim.write_text("precious\n")
    f.state_dir.mkdir(mode=0o700)
    (f.state_dir / "tmux.conf").symlink_to(victim)
    f.json("up")
    assert victim.read_text() == "precious\n"
    conf = f.state_dir / "tmux.conf"
    assert not conf.is_symlink()
    assert conf.read_text() == SERVER_CONF
    assert mode(conf) == 0o600
    assert not [p.name for p in f.state_dir.iterdir() if p.name.endswith(".tmp")]


def test_the_hook_receivers_error_log_is_private_and_never_followed(tmp_path: Path) -> None:
    agent_dir = tmp_path / "agent"
    agent_dir.mkdir()

    def receive_garbage() -> None:
        subprocess.run([sys.executable, "-S", receiver.__file__, "hook", str(agent_dir)], input="{not json",
                       text=True, check=True, timeout=30)

    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (agent_dir / "hookrecv.err").symlink_to(victim)
    receive_garbage()
    assert victim.read_text() == "precious\n"
    (agent_dir / "hookrecv.err").unlink()
    receive_garbage()
    log = agent_dir / "hookrecv.err"
    assert mode(log) == 0o600
    assert "hook:" in log.read_text()


BROKEN_TMUX = """#!/bin/sh
echo "protocol version mismatch (client 8, server 7)" >&2
exit 1
"""


def test_a_broken_tmux_is_tmux_unavailable_never_every_agent_stopped(fleet_factory: Callable[..., Fleet],
                                                                     tmp_path: Path) -> None:
    """A tmux that answers every command with an error (the condition simulated by a stand-in binary)."""
    f = fleet_factory(2, codex=sys.executable)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "tmux").write_text(BROKEN_TMUX)
    (bin_dir / "tmux").chmod(0o755)
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    for args in (("status",), ("up",), ("down",), ("send", "agent-1", "hi")):
        proc = f.cli(*args, "--json", env=env)
        assert proc.returncode == 4, (args, proc.stdout, proc.stderr)
        error = json.loads(proc.stdout)["error"]
        assert error["code"] == "tmux_unavailable", args
        assert "protocol version mismatch" in error["message"]
        assert len(proc.stderr.strip().splitlines()) == 1


FAILING_NEW_SESSION_TMUX = """#!/bin/sh
for a in "$@"; do
  case "$a" in
    -V) echo "tmux 3.3a"; exit 0;;
    list-panes|list-sessions|has-session) echo "no server running on /nowhere" >&2; exit 1;;
    new-session) echo "create window failed: fork failed: Resource temporarily unavailable" >&2; exit 1;;
  esac
done
echo "unexpected: $*" >&2
exit 1
"""


def test_a_launch_tmux_refuses_is_a_per_agent_tmux_unavailable_and_the_rest_not_attempted(
        fleet_factory: Callable[..., Fleet], tmp_path: Path) -> None:
    """tmux answers but cannot create a session (simulated by a stand-in binary): libtmux's error
    comes out as `tmux_unavailable` for that agent, never `internal_error`."""
    f = fleet_factory(3, codex=fake_codex(tmp_path))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "tmux").write_text(FAILING_NEW_SESSION_TMUX)
    (bin_dir / "tmux").chmod(0o755)
    proc = f.cli("up", "--json", env={"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"})
    assert proc.returncode == 1, proc.stderr
    result = json.loads(proc.stdout)
    assert result["ok"] is False
    assert [(a["agent"], a["result"], a["error"]["code"]) for a in result["agents"]] == [
        ("agent-1", "failed", "tmux_unavailable"), ("agent-2", "not_attempted", "tmux_unavailable"),
        ("agent-3", "not_attempted", "tmux_unavailable")]
    assert "fork failed" in result["agents"][0]["error"]["message"]


def test_the_fleets_tmux_server_never_passes_an_agents_clipboard_writes_to_a_person(
        fleet_factory: Callable[..., Fleet], tmp_path: Path) -> None:
    """OSC 52 in an agent's output would set the clipboard of whoever is attached: off."""
    f = fleet_factory(1, codex=fake_codex(tmp_path))
    f.json("up")
    assert f.tmux("show-options", "-s", "set-clipboard").stdout.strip() == "set-clipboard off"
    assert f.tmux("show-options", "-g", "allow-passthrough").stdout.strip() == "allow-passthrough off"


def test_up_hands_the_approval_hook_every_sandboxed_agents_writable_roots(
        fleet_factory: Callable[..., Fleet], tmp_path: Path) -> None:
    """The approval hook must know every place the agent may write (extra roots too) to refuse a
    program planted there; `up` hands it the roots fleet reads from the agent's sandbox settings."""
    extra = tmp_path / "shared-cache"
    f = fleet_factory(1, codex=fake_codex(tmp_path), agent_extra='role = "worker"\n',
                      extra='args = ["-c", "sandbox_workspace_write.exclude_slash_tmp=true", "-c", '
                            '"sandbox_workspace_write.exclude_tmpdir_env_var=true", "-c", '
                            f'"sandbox_workspace_write.writable_roots=[\\"{extra}\\"]"]\n'
                            '[watchdog]\napprove = { allow = ["read-only"] }')
    f.json("up")
    policy = json.loads((f.state_dir / "agents" / "agent-1" / "approve-policy.json").read_text())
    assert sorted(policy["roots"]) == sorted([str(f.root / "work" / "agent-1"), str(extra)])
