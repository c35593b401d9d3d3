"""`down`: only the launched process is signalled and `stopped` is always journaled, shown with a
stand-in TUI. (`down` of an exited real Codex is in tests/codex/test_agents_stop.py.)"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Fleet

from fleet import ops
from fleet.agents.procs import ProcessId, is_running
from fleet.service import Service

STUBBORN_TUI = """
import signal, time
signal.signal(signal.SIGHUP, signal.SIG_IGN)
signal.signal(signal.SIGINT, signal.SIG_IGN)
print("\u203a Ask Codex to do anything\\n  \u2190 for agents \u00b7 ? for shortcuts", flush=True)
while True:
    time.sleep(1)
"""


def stubborn_codex(tmp_path: Path) -> str:
    """A stand-in TUI that ignores Ctrl-C and the hang-up of its killed session, so that only a
    signal from fleet can end it: the condition under test is which process fleet signals."""
    fake = tmp_path / "stubborn-codex"
    fake.write_text(f"#!{sys.executable}\n{STUBBORN_TUI}")
    fake.chmod(0o755)
    return str(fake)


def launched(f: Fleet) -> dict[str, object]:
    return [e for e in f.journal("agent-1") if e["event"] == "launched"][-1]


def test_down_signals_only_the_process_it_launched_and_always_journals_stopped(
        fleet_factory: Callable[..., Fleet], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = fleet_factory(1, codex=stubborn_codex(tmp_path))
    pid = f.json("up")["agents"][0]["pid"]
    start = launched(f)["pid_start"]
    assert isinstance(start, int)
    me = ProcessId(pid, start)
    try:
        # 1. the journal's identity no longer matches (as after a pid reuse): the process is spared
        path = f.state_dir / "agents" / "agent-1" / "events.jsonl"
        path.write_text(path.read_text().replace(f'"pid_start":{start}', f'"pid_start":{start - 1}'))
        [down] = f.json("down")["agents"]
        assert (down["result"], down["forced"], down["signal"]) == ("stopped", True, "not_ours")
        assert is_running(me)
        assert f.journal("agent-1")[-1]["event"] == "stopped"
    finally:
        os.kill(pid, signal.SIGKILL)

    # 2. the kernel refuses the signal (simulated): still journaled, and said so
    pid = f.json("up")["agents"][0]["pid"]
    me = ProcessId(pid, int(launched(f)["pid_start"]))  # type: ignore[call-overload]

    def refuse(pidfd: int, sig: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    try:
        with monkeypatch.context() as m:
            m.setattr(signal, "pidfd_send_signal", refuse)
            result = ops.invoke(Service(str(f.path)), "agent_stop", {"agents": ["agent-1"]})
        assert result["agents"][0]["signal"] == "denied"
        assert is_running(me)
        last = f.journal("agent-1")[-1]
        assert (last["event"], last["signal"]) == ("stopped", "denied")
    finally:
        os.kill(pid, signal.SIGKILL)

    # 3. the identity matches: fleet ends it with SIGTERM through its pidfd
    pid = f.json("up")["agents"][0]["pid"]
    me = ProcessId(pid, int(launched(f)["pid_start"]))  # type: ignore[call-overload]
    [down] = f.json("down")["agents"]
    assert (down["forced"], down["signal"]) == (True, "terminated")
    assert not is_running(me)
    assert f.journal("agent-1")[-1]["signal"] == "terminated"
