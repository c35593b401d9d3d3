"""`fleet dash` on a real fleet: real tmux, real Codex, the scripted model, driven by Textual's pilot.

Rows appear with the states `fleet status` gives; a state change shows; `c` cancels a real
assignment; `a` approves a real pending approval held by fleet's hook; Enter suspends the app and
attaches tmux to the agent's session, and detaching brings the dashboard back.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from conftest import Fleet, wait_until
from mockmodel import MockServer
from mocksteps import Step
from test_dash_app import message, screen_text, until

from fleet.dash.app import DashApp
from fleet.dash.client import Client


def escalated(command: str) -> Step:
    """The model asks to run `command` outside the sandbox: fleet's approval hook holds it."""
    return Step(tool=("exec_command", {"cmd": command, "sandbox_permissions": "require_escalated",
                                       "justification": f"I need to run {command} for the task"}))


def states(app: DashApp) -> dict[str, str]:
    return {r.name: r.state for r in app.view.agents} if app.view else {}


def test_rows_show_states_a_change_and_c_cancels_a_real_assignment(fleet_factory: Callable[..., Fleet],
                                                                     mock_model: MockServer) -> None:
    f = fleet_factory(2, model=mock_model, agent_extra='role = "worker"')
    f.json("up", "agent-1")
    busy = threading.Event()
    mock_model.model.script(Step(text="working " * 50, gate=busy))

    async def main() -> str:
        app = DashApp(Client(str(f.path)), poll_seconds=0.3)
        async with app.run_test(size=(160, 45)) as pilot:
            await until(pilot, lambda: states(app) == {"agent-1": "idle", "agent-2": "stopped"}, timeout=30)
            created = await asyncio.to_thread(f.json, "assign", "--to", "agent-1", "Take your time")
            aid = created["assignment"]
            await until(pilot, lambda: states(app).get("agent-1") == "working", timeout=30)
            await until(pilot, lambda: (r := app.view.agent("agent-1")) and r.assignment_id == aid, timeout=10)
            assert [(r.id, r.open) for r in app.view.assignments] == [(aid, True)]
            await until(pilot, lambda: "working" in screen_text(app) and aid in screen_text(app))
            await pilot.press("c")
            await until(pilot, lambda: type(app.screen).__name__ == "ConfirmScreen")
            await pilot.press("y")
            await until(pilot, lambda: f"cancel {aid}: cancelled, its turn interrupted" in message(app), timeout=30)
            await until(pilot, lambda: app.view.assignments and app.view.assignments[0].state == "cancelled")
            await until(pilot, lambda: states(app).get("agent-1") == "idle", timeout=30)  # stopped, model still busy
            busy.set()
        return aid

    aid = asyncio.run(main())
    assert f.json("show", aid)["state"] == "cancelled"
    cancels = [r for r in f.audit() if r.get("event") == "assignment_cancel"]
    assert [r["surface"] for r in cancels] == ["dash"]


def test_a_pending_approval_is_listed_and_a_approves_it(fleet_factory: Callable[..., Fleet],
                                                        mock_model: MockServer) -> None:
    f = fleet_factory(1, model=mock_model, extra='[watchdog]\nevery = "1s"\napproval_timeout = "30s"',
                      agent_extra='sandbox = "read-only"')
    f.json("up")
    mock_model.model.script(escalated("touch approved.txt"))

    async def main() -> None:
        app = DashApp(Client(str(f.path)), poll_seconds=0.3)
        async with app.run_test(size=(160, 45)) as pilot:
            await until(pilot, lambda: states(app).get("agent-1") == "idle", timeout=30)
            await asyncio.to_thread(f.json, "send", "agent-1", "make the file")
            await until(pilot, lambda: states(app).get("agent-1") == "waiting_approval", timeout=30)
            [waiting] = await until(pilot, lambda: app.view.approvals)
            assert (waiting.agent, waiting.command) == ("agent-1", "touch approved.txt")
            assert waiting.justification == "I need to run touch approved.txt for the task"
            await pilot.press("a")
            await until(pilot, lambda: "approve agent-1: allow" in message(app), timeout=30)
            await until(pilot, lambda: states(app).get("agent-1") == "idle" and not app.view.approvals, timeout=30)

    asyncio.run(main())
    assert (f.root / "work" / "agent-1" / "approved.txt").exists()
    approvals = [r for r in f.audit() if r.get("event") == "agent_approve"]
    assert [(r["surface"], r["outcome"]) for r in approvals] == [("dash", "ok")]


def test_enter_attaches_to_the_agent_and_detaching_comes_back(fleet_factory: Callable[..., Fleet],
                                                               mock_model: MockServer) -> None:
    """The app's suspend needs a real terminal, so this runs `fleet.dash.run` in a tmux window of
    its own (a second tmux server, the test's), presses Enter there, sees the agent's Codex screen
    attached, detaches with C-b d and sees the dashboard again."""
    import subprocess
    import sys

    f = fleet_factory(1, model=mock_model)
    f.json("up")
    f.tmux("set-option", "-g", "assume-paste-time", "0")  # C-b d sent at once is keys, not a paste
    outer = ["tmux", "-L", f"{f.name}-outer"]
    status_file = f.root / "dash-status"  # tmux 3.3a at times never reaps the pane's process: no #{pane_dead_status}
    code = (f"import sys, pathlib; from fleet.dash import run; rc = run({str(f.path)!r}); "
            f"pathlib.Path({str(status_file)!r}).write_text(str(rc)); sys.exit(rc)")

    def screen() -> str:
        return subprocess.run([*outer, "capture-pane", "-p", "-t", "=dash:"], capture_output=True, text=True,
                              check=False).stdout

    try:
        subprocess.run([*outer, "start-server", ";", "set-option", "-g", "remain-on-exit", "on", ";",
                        "new-session", "-d", "-x", "160", "-y", "45", "-s", "dash", sys.executable, "-c", code],
                       check=True)
        wait_until(lambda: "agent-1" in screen() and "idle" in screen(), timeout=30)
        subprocess.run([*outer, "send-keys", "-t", "=dash:", "Enter"], check=True)
        wait_until(lambda: "approvals waiting" not in screen() and f.tmux("list-clients").stdout.strip(), timeout=20)
        subprocess.run([*outer, "send-keys", "-t", "=dash:", "C-b", "d"], check=True)
        wait_until(lambda: "approvals waiting" in screen() and "back from agent-1" in screen(), timeout=20)
        subprocess.run([*outer, "send-keys", "-t", "=dash:", "q"], check=True)
        dead = [*outer, "list-panes", "-t", "=dash:", "-F", "#{pane_dead}"]
        wait_until(lambda: subprocess.run(dead, capture_output=True, text=True, check=False).stdout.strip() == "1",
                   timeout=20)  # the dashboard's process ended
        assert status_file.read_text() == "0"  # and run() returned 0
    finally:
        print(screen())  # shown when the test fails, with the pane's end (dead? status)
        print("pane:", subprocess.run([*outer, "list-panes", "-t", "=dash:", "-F", "#{pane_dead} #{pane_dead_status}"],
                                      capture_output=True, text=True, check=False).stdout)
        subprocess.run([*outer, "kill-server"], capture_output=True, check=False)
