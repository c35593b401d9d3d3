"""`down` of a real Codex that was killed: the exit facts are kept, `stopped` is journaled once and
nothing is left. (Which process `down` signals, with a stand-in TUI, is in tests/test_agents_stop.py.)"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

from conftest import Fleet, wait_until
from mockmodel import MockServer


def test_down_of_an_exited_agent_keeps_its_exit_facts_and_leaves_nothing(fleet_factory: Callable[..., Fleet],
                                                                         mock_model: MockServer) -> None:
    f = fleet_factory(1, model=mock_model)
    pid = f.json("up")["agents"][0]["pid"]
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: (s := f.status("agent-1"))["state"] == "exited" and s["exit_signal"], 30)
    [down] = f.json("down")["agents"]
    assert (down["result"], down["state"], down["exit_signal"], down["forced"]) == ("stopped", "stopped", 9, False)
    assert down["signal"] in ("gone", "not_ours")  # the pid was reaped by tmux: nothing to signal
    stopped = [e for e in f.journal("agent-1") if e["event"] == "stopped"]
    assert [(e["reason"], e["exit_signal"]) for e in stopped] == [("stopped", 9)]
    assert f.status("agent-1")["state"] == "stopped"
    assert f.tmux("list-sessions").returncode != 0
    [again] = f.json("down")["agents"]
    assert (again["result"], again["stopped"]) == ("not_running", False)


