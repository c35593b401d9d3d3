"""What an agent's own shell commands learn about, and can do to, the fleet's tmux server (hole 10).

Real Codex runs the scripted model's `exec_command` in its sandbox. No agent is told where the
server is (no `TMUX`, no `TMUX_PANE`). Under the default workspace-write sandbox Codex's seccomp
filter refuses `connect(2)`, so even the right socket path gets nowhere; with network access it
connects, which fleet cannot prevent (same uid), so `up` and `doctor` say so.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Fleet

NETWORK = ("-c", "sandbox_workspace_write.network_access=true")


def test_a_socket_directory_others_can_enter_fails_doctor_and_up(fleet_factory: Callable[..., Fleet],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """No Codex needed: the check runs before anything starts."""
    base = Path(os.environ["TMUX_TMPDIR"]) / "x"  # short: unix socket paths are <108 bytes
    (base / f"tmux-{os.getuid()}").mkdir(parents=True, mode=0o755)
    (base / f"tmux-{os.getuid()}").chmod(0o755)
    monkeypatch.setenv("TMUX_TMPDIR", str(base))
    f = fleet_factory(1, codex="/bin/true")
    proc = f.cli("doctor", "--json")
    check = next(c for c in json.loads(proc.stdout)["checks"] if c["name"] == "tmux server")
    assert check["ok"] is False
    assert "755" in check["detail"]
    up = f.cli("up", "--json")
    assert up.returncode != 0
    assert "tmux_unavailable" in up.stdout
    assert "not a private directory" in up.stdout
