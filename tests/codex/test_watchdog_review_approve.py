"""Review of the approve policy on real Codex (issue 12, hole 2): the hook judged the command's words,
but not the directory the model asks it to run in.

Codex's `exec_command` takes a `workdir` argument from the model; the PermissionRequest payload
carries it as `cwd` (measured on 0.169), and the hook used it only to widen the roots of its program
check. A listed line with a relative path, like `rm -rf build`, was therefore
approved and run outside the sandbox in any directory the model named (the user's build deleted).
Now an allow needs the command to run in the agent's configured cwd or below it.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from conftest import Fleet, wait_until
from mockmodel import MockServer
from mocksteps import Step

SAFE_HOME = "/nonexistent-fleet-home"  # as in test_watchdog_approvals: a HOME no agent can write


def test_a_listed_command_never_runs_in_a_directory_the_model_picks(
        fleet_factory: Callable[..., Fleet], mock_model: MockServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", SAFE_HOME)
    f = fleet_factory(1, model=mock_model, agent_extra='sandbox = "workspace-write"',
                      extra='[watchdog]\nevery = "1s"\napprove = { commands_running_workspace_code = ["rm -rf build"], '
                            'otherwise = "deny" }')
    f.json("up")
    victim = f.root / "users-project"  # not the agent's cwd: stands for any directory of the user's
    (victim / "build").mkdir(parents=True)
    (victim / "build" / "keep").write_text("the user's build\n")
    mock_model.model.script(
        Step(tool=("exec_command", {"cmd": "rm -rf build", "workdir": str(victim),
                                    "sandbox_permissions": "require_escalated",
                                    "justification": "clean the build"})),
        Step(text="cleaned"))
    receipt = f.json("send", "agent-1", "clean up")
    wait_until(lambda: (s := f.status("agent-1"))["state"] == "idle"
               and s["last_turn"]["turn_id"] == receipt["turn_id"], timeout=60)
    answered = [e for e in f.journal("agent-1") if e["event"] == "approval_answered"]
    assert answered, "the command was never held for approval"
    assert [(e["decision"], e["by"]) for e in answered] == [("deny", "watchdog:policy")]
    assert f"it would run in {victim}, outside the agent's cwd" in answered[0]["message"]
    assert (victim / "build" / "keep").exists()
