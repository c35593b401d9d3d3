"""`down`: only the launched process is signalled, `stopped` is always journaled, exited agents too."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

from conftest import Fleet, wait_until
from mockmodel import MockServer

STUBBORN_TUI = """
import signal, time
signal.signal(signal.SIGHUP, signal.SIG_IGN)
signal.signal(signal.SIGINT, signal.SIG_IGN)
print("\u203a Ask Codex to do anything\\n  \u2190 for agents \u00b7 ? for shortcuts", flush=True)
while True:
    time.sleep(1)
"""


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


