"""What an agent's own shell commands learn about, and can do to, the fleet's tmux server (hole 10).

Real Codex runs the scripted model's `exec_command` in its sandbox. No agent is told where the
server is (no `TMUX`, no `TMUX_PANE`). Under the default workspace-write sandbox Codex's seccomp
filter refuses `connect(2)`, so even the right socket path gets nowhere; with network access it
connects, which fleet cannot prevent (same uid), so `up` and `doctor` say so.
"""

from __future__ import annotations

import json
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import Fleet, wait_until
from mockmodel import MockServer
from mockrequests import tool_outputs
from mocksteps import Step

from fleet.agents.tmux import socket_path
from fleet.config import load_config

NETWORK = ("-c", "sandbox_workspace_write.network_access=true")


def _probe(f: Fleet, mock_model: MockServer) -> str:
    """Have agent-1 print its TMUX variables and try `tmux ls` on the fleet's real socket."""
    cfg = load_config(str(f.path))
    sock = socket_path(cfg.tmux_socket, cfg.state_dir)
    cmd = (f'echo "TMUX=[${{TMUX-unset}}] PANE=[${{TMUX_PANE-unset}}]"; tmux -S {sock} ls 2>&1; '
           'echo "tmux-exit=$?"')
    mock_model.model.script(Step(tool=("exec_command", {"cmd": cmd})), Step(text="done"))
    f.json("send", "agent-1", "probe the terminal")
    wait_until(lambda: (f.status("agent-1")["last_turn"] or {}).get("outcome") == "completed", 30)
    return str(tool_outputs(mock_model.model.requests)["exec_command"])


def _doctor_warnings(f: Fleet) -> list[str]:
    proc = f.cli("doctor", "--json")
    check: dict[str, Any] = next(c for c in json.loads(proc.stdout)["checks"] if c["name"] == "tmux server")
    assert check["ok"] is True  # a warning, never a failure
    return list(check["warnings"])


def test_an_agent_with_network_access_gets_no_tmux_variables_and_up_and_doctor_name_the_reach(
        fleet_factory: Callable[..., Fleet], mock_model: MockServer) -> None:
    f = fleet_factory(1, model=mock_model, codex_args=NETWORK, agent_extra='sandbox = "workspace-write"')
    up = f.json("up")
    assert any("'agent-1' can connect" in w and "network_access" in w for w in up["warnings"])
    out = _probe(f, mock_model)
    assert "TMUX=[unset] PANE=[unset]" in out
    # what remains: with network access its commands do connect (same uid), and fleet says so
    assert "agent-1:" in out
    assert "tmux-exit=0" in out
    assert any("'agent-1' can connect" in w for w in _doctor_warnings(f))


def test_the_default_sandbox_cannot_reach_the_server_and_the_socket_lives_in_the_state_dir(
        fleet_factory: Callable[..., Fleet], mock_model: MockServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TMUX_TMPDIR")
    f = fleet_factory(1, model=mock_model, agent_extra='sandbox = "workspace-write"')
    up = f.json("up")
    assert not any("can connect" in w for w in up["warnings"])
    sock = f.state_dir / "tmux.sock"
    assert stat.S_ISSOCK(sock.lstat().st_mode)
    assert stat.S_IMODE(sock.parent.stat().st_mode) == 0o700
    out = _probe(f, mock_model)
    assert "TMUX=[unset] PANE=[unset]" in out
    assert "agent-1:" not in out
    assert "tmux-exit=0" not in out
    # nothing can connect, and nothing can write the socket's dir: the test fleets leave /tmp out of
    # the sandbox (exclude_slash_tmp), and the socket is in the private state dir
    warnings = _doctor_warnings(f)
    assert not any("can connect" in w for w in warnings)
    assert not any("can write" in w for w in warnings)
    assert f.json("tail", "agent-1")["agent"] == "agent-1"  # fleet itself still reaches it
    assert Path(f.status("agent-1")["cwd"]).is_dir()


