"""The watchdog tick on real Codex agents against the scripted mock model, with durations in seconds.

Ticks run as real `fleet watchdog tick --json` processes, as the systemd timer runs them. Assignments
are created in the ledger and delivered through the work layer's `deliver`, as `fleet assign` does.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import Fleet, wait_until

from fleet.watchdog.tickstate import tick_lock

REPORT = ('All done.\n\n```fleet-report\n{"status": "done", "summary": "did it", "changed": [], '
          '"tests": "none", "risks": "none"}\n```')


def policy(**keys: Any) -> str:
    base = {"every": "1s", "idle_after": "2s", "report_grace": "2s", "stall_after": "1s"}
    base.update(keys)
    return "[watchdog]\n" + "\n".join(f"{k} = {json.dumps(v)}" for k, v in base.items())


def assign(f: Fleet, agent: str, task: str) -> str:
    """`fleet assign TASK --to AGENT`: sent once Codex recorded the prompt."""
    out = f.json("assign", task, "--to", agent, "--holder", "lead:test")
    assert (out["state"], out["agent"]) == ("sent", agent), out
    assert out["turn_id"]
    return str(out["assignment"])


def tick(f: Fleet, *args: str) -> dict[str, Any]:
    return f.json("watchdog", "tick", *args)  # type: ignore[no-any-return]


def test_a_tick_while_another_holds_the_lock_returns_at_once_saying_so(fleet_factory: Callable[..., Fleet]) -> None:
    f = fleet_factory(1)
    with tick_lock(f.state_dir) as busy:
        assert busy is None
        result = tick(f)
    assert result["actions"] == []
    assert result["skipped"].startswith(f"Another watchdog tick is running (pid {os.getpid()}")
    assert tick(f)["skipped"] is None  # released: the next one runs


def _sigint_ignored() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a script's background job starts it


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_watchdog_run_ticks_in_the_foreground_until_interrupted(fleet_factory: Callable[..., Fleet],
                                                                stop: signal.Signals) -> None:
    """Ctrl-C or a supervisor's SIGTERM stops it, even started with SIGINT ignored (a background job of
    a script: Python then installs no KeyboardInterrupt of its own)."""
    f = fleet_factory(1)
    proc = subprocess.Popen([sys.executable, "-m", "fleet", "--config", str(f.path), "watchdog", "run", "--every", "1s",
                             "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_sigint_ignored)  # noqa: PLW1509 (only a signal disposition, before exec)
    try:
        wait_until(lambda: (s := f.json("watchdog", "status")["last_tick"]) and s, timeout=30)
        first = f.json("watchdog", "status")["last_tick"]["id"]
        wait_until(lambda: f.json("watchdog", "status")["last_tick"]["id"] > first, timeout=30)
    finally:
        proc.send_signal(stop)
        try:
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:  # never leave it running into the next test
            proc.kill()
            out, err = proc.communicate()
            raise AssertionError(f"`fleet watchdog run` did not stop on {stop.name} in 30 s: {err}\n{out}") from None
    assert proc.returncode == 0, err
    assert "stopped" in err
    ticks = [json.loads(line) for line in out.splitlines()]
    assert len(ticks) >= 2
    assert all(t["actions"] == [] and t["skipped"] is None for t in ticks)


def test_install_without_a_user_manager_writes_the_units_and_says_what_to_run(fleet_factory: Callable[..., Fleet],
                                                                               tmp_path: Path) -> None:
    f = fleet_factory(1)
    env = {"XDG_RUNTIME_DIR": str(tmp_path / "no-manager"), "DBUS_SESSION_BUS_ADDRESS": ""}
    proc = f.cli("watchdog", "install", "--every", "2m", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["manager"] in ("unavailable", "failed")
    service = Path(result["service"]).read_text()
    assert f"--config {f.path} watchdog tick" in service
    assert "OnUnitActiveSec=120s" in Path(result["timer"]).read_text()
    assert result["commands"]
    gone = json.loads(f.cli("watchdog", "uninstall", "--json", env=env).stdout)
    assert sorted(gone["removed"])[:2] == sorted([result["service"], result["timer"]])
    assert not Path(result["service"]).exists()


def test_the_watchdog_tools_over_mcp(fleet_factory: Callable[..., Fleet], tmp_path: Path) -> None:
    from mcpclient import mcp_session

    f = fleet_factory(1)
    with mcp_session(f.path, tmp_path / "mcp-stderr.log") as mcp:
        planned = mcp.ok("watchdog_tick", {"dry_run": True})
        # Over MCP results are compact (no nulls, see fleet.mcp.views): `skipped` is absent, not null.
        assert (planned["dry_run"], planned["actions"], planned.get("skipped")) == (True, [], None)
        assert mcp.ok("watchdog_status", {})["last_tick"] is None  # a dry run records nothing
        done = mcp.ok("watchdog_tick", {})
        assert done["dry_run"] is False
        status = mcp.ok("watchdog_status", {"ticks": 5})
        assert status["last_tick"]["at"] == done["at"]
        assert mcp.error("agent_approve", {"agent": "agent-1"})["code"] == "no_pending_approval"
        assert mcp.error("agent_deny", {"agent": "agent-1", "message": 5})["code"] == "invalid_input"


