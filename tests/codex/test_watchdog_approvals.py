"""Approvals from Codex's exact signal, on real Codex: fleet's PermissionRequest hook answers at once
when the `[watchdog] approve` policy decides, else holds the call until `fleet approve` / `fleet deny`
answers, and lets the dialog open after `approval_timeout`, when the watchdog escalates it."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from conftest import Fleet, wait_until
from mockmodel import MockServer
from mocksteps import Step

from fleet.agents.approvals import CUT_MARK

#: The tests' HOME is under /tmp, which a workspace-write agent may write: a login shell would run the
#: agent's profile files, so fleet's hook rightly refuses every allow there. Tests that need an allow
#: give the fleet a HOME no agent can write (it need not exist: no profile file is read from it).
SAFE_HOME = "/nonexistent-fleet-home"


@pytest.fixture
def safe_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", SAFE_HOME)


def escalated(command: str) -> Step:
    """The model asks to run `command` outside the sandbox, which needs an approval."""
    return Step(tool=("exec_command", {"cmd": command, "sandbox_permissions": "require_escalated",
                                       "justification": f"I need to run {command} for the task"}))


def fleet_with(fleet_factory: Callable[..., Fleet], model: MockServer, agent_extra: str = 'sandbox = "read-only"',
               **watchdog: Any) -> Fleet:
    keys = {"every": "1s", "approval_timeout": "30s", **watchdog}
    lines = "\n".join(f"{k} = {json.dumps(v) if not isinstance(v, dict) else v['toml']}" for k, v in keys.items())
    f = fleet_factory(1, model=model, extra="[watchdog]\n" + lines, agent_extra=agent_extra)
    f.json("up")
    return f


def waiting(f: Fleet) -> dict[str, Any]:
    return wait_until(lambda: (s := f.status("agent-1"))["state"] == "waiting_approval" and s, timeout=30)


def test_approve_lets_the_held_command_run(fleet_factory: Callable[..., Fleet], mock_model: MockServer) -> None:
    f = fleet_with(fleet_factory, mock_model)
    mock_model.model.script(escalated("touch approved.txt"))
    f.json("send", "agent-1", "make the file")
    status = waiting(f)
    assert status["approval"]["command"] == "touch approved.txt"
    assert status["approval"]["justification"] == "I need to run touch approved.txt for the task"
    assert status["approval"]["held"] is True
    request = status["approval"]["request"]
    stale = f.cli("approve", "agent-1", "--request", "ap-0123456789abcdef", "--json")  # a request seen earlier
    assert stale.returncode != 0
    assert json.loads(stale.stdout)["error"]["code"] == "approval_changed"
    assert request in json.loads(stale.stdout)["error"]["message"]  # names the one it waits on now
    assert f.status("agent-1")["state"] == "waiting_approval"  # nothing was answered
    answer = f.json("approve", "agent-1", "--request", request)
    assert (answer["decision"], answer["applied"], answer["command"]) == ("allow", True, "touch approved.txt")
    wait_until((f.root / "work" / "agent-1" / "approved.txt").exists, timeout=30)
    wait_until(lambda: f.status("agent-1")["state"] == "idle", timeout=30)
    assert "Would you like to run" not in "\n".join(f.json("tail", "agent-1")["lines"])  # no dialog ever opened


def test_deny_rejects_the_call_and_the_model_reads_the_message(fleet_factory: Callable[..., Fleet],
                                                               mock_model: MockServer) -> None:
    f = fleet_with(fleet_factory, mock_model)
    mock_model.model.script(escalated("touch denied.txt"))
    f.json("send", "agent-1", "make the file")
    waiting(f)
    answer = f.json("deny", "agent-1", "--message", "not in this repo, please")
    assert (answer["decision"], answer["applied"]) == ("deny", True)
    wait_until(lambda: f.status("agent-1")["state"] == "idle", timeout=30)
    assert not (f.root / "work" / "agent-1" / "denied.txt").exists()
    assert any("not in this repo, please" in o for o in function_outputs(mock_model))
    err = f.cli("approve", "agent-1", "--json")
    assert err.returncode != 0
    assert json.loads(err.stdout)["error"]["code"] == "no_pending_approval"


def test_an_approval_past_its_timeout_opens_the_dialog_and_is_escalated_once(
        fleet_factory: Callable[..., Fleet], mock_model: MockServer) -> None:
    f = fleet_with(fleet_factory, mock_model, approval_timeout="2s")
    mock_model.model.script(escalated("touch late.txt"))
    f.json("send", "agent-1", "make the file")
    waiting(f)
    wait_until(lambda: f.status("agent-1")["approval"]["held"] is False, timeout=30)
    # Codex's own dialog is open now: only the pane can answer, and fleet says so.
    wait_until(lambda: "Would you like to run" in "\n".join(f.json("tail", "agent-1")["lines"]), timeout=30)
    err = f.cli("approve", "agent-1", "--json")
    assert json.loads(err.stdout)["error"]["code"] == "approval_not_held"
    acted = f.json("watchdog", "tick")["actions"]
    assert [a["action"] for a in acted] == ["escalate"]
    assert "touch late.txt" in acted[0]["reason"]
    assert "I need to run touch late.txt for the task" in acted[0]["reason"]
    assert f.json("watchdog", "tick")["actions"] == []  # once
    assert f.status("agent-1")["state"] == "waiting_approval"


def function_outputs(model: MockServer) -> list[str]:
    return [json.dumps(item) for r in model.model.requests for item in r.get("input", [])
            if isinstance(item, dict) and item.get("type") == "function_call_output"]


def audited(f: Fleet, event: str) -> list[dict[str, Any]]:
    return [e for e in f.audit() if e["event"] == event]


def test_the_approve_policy_answers_in_the_hook_at_once(fleet_factory: Callable[..., Fleet],
                                                        mock_model: MockServer, safe_home: None) -> None:
    f = fleet_with(fleet_factory, mock_model, approve={"toml": '{ allow = ["read-only"], otherwise = "deny" }'})
    mock_model.model.script(escalated("ls -la"), Step(text="listed"), escalated("touch x.txt"), Step(text="refused"))
    # No watchdog tick runs here: the hook itself decides, before any dialog is drawn.
    for text in ("list the files", "make a file"):
        receipt = f.json("send", "agent-1", text)
        wait_until(lambda r=receipt: (s := f.status("agent-1"))["state"] == "idle"
                   and s["last_turn"]["turn_id"] == r["turn_id"], timeout=30)
    answered = [e for e in f.journal("agent-1") if e["event"] == "approval_answered"]
    assert [(e["decision"], e["by"]) for e in answered] == [("allow", "watchdog:policy"), ("deny", "watchdog:policy")]
    assert "`ls -la` is read-only" in answered[0]["message"]
    assert not (f.root / "work" / "agent-1" / "x.txt").exists()
    assert any("Denied by the [watchdog] approve policy" in o for o in function_outputs(mock_model))
    assert [(e["agent"], e["decision"]) for e in audited(f, "approval.policy")] == [
        ("agent-1", "allow"), ("agent-1", "deny")]
    assert "Would you like to run" not in "\n".join(f.json("tail", "agent-1")["lines"])  # no dialog ever opened


def test_a_policy_added_later_reaches_the_hook_at_the_next_tick(fleet_factory: Callable[..., Fleet],
                                                               mock_model: MockServer, safe_home: None) -> None:
    f = fleet_with(fleet_factory, mock_model)
    mock_model.model.script(escalated("ls -la"), Step(text="listed"), escalated("pwd"), Step(text="shown"))
    f.json("send", "agent-1", "list the files")
    waiting(f)  # no policy yet: held for a person
    f.path.write_text(f.path.read_text().replace("[watchdog]", '[watchdog]\napprove = { allow = ["read-only"] }'))
    # The tick cannot see which `ls` the agent's shell would run, so it leaves an allow to the hook
    # (and to a person, for a request held before the hook had the policy) ...
    assert f.json("watchdog", "tick")["actions"] == []
    f.json("approve", "agent-1")
    wait_until(lambda: f.status("agent-1")["state"] == "idle", timeout=30)
    receipt = f.json("send", "agent-1", "where am I")  # ... and gave the hook the policy for the next one
    wait_until(lambda: (s := f.status("agent-1"))["state"] == "idle"
               and s["last_turn"]["turn_id"] == receipt["turn_id"], timeout=30)
    answered = [e for e in f.journal("agent-1") if e["event"] == "approval_answered"]
    assert [e["by"] == "watchdog:policy" for e in answered] == [False, True]
    assert [e["request"] for e in audited(f, "approval.policy")] == [answered[1]["request"]]


def test_the_policy_leaves_an_agent_a_person_holds_to_that_person(fleet_factory: Callable[..., Fleet],
                                                                  mock_model: MockServer) -> None:
    f = fleet_with(fleet_factory, mock_model, approve={"toml": '{ allow = ["read-only"] }'})
    token = f.json("claim", "agent-1", "--holder", "alice")["token"]
    mock_model.model.script(escalated("ls -la"))
    f.json("send", "agent-1", "list the files", "--holder", "alice", "--token", str(token))
    status = waiting(f)
    assert status["approval"]["held"] is True
    answer = f.json("approve", "agent-1", "--holder", "alice", "--token", str(token))
    assert (answer["decision"], answer["applied"]) == ("allow", True)
    wait_until(lambda: f.status("agent-1")["state"] == "idle", timeout=30)
    assert audited(f, "approval.policy") == []


# -- a hostile agent -----------------------------------------------------------------------------------

def plant(path: Any, marker: Any) -> None:
    """An executable the agent wrote, which leaves `marker` if it ever runs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\ntouch {marker}\n")
    path.chmod(0o755)


def test_a_vertical_tab_never_passes_for_a_space(fleet_factory: Callable[..., Fleet], mock_model: MockServer,
                                                 safe_home: None) -> None:
    f = fleet_with(fleet_factory, mock_model, agent_extra='sandbox = "workspace-write"',
                   approve={"toml": '{ allow = ["read-only"], otherwise = "deny" }'})
    work = f.root / "work" / "agent-1"
    marker = work / "PWNED"
    plant(work / "cat\x0b." / "x.sh", marker)  # bash runs `cat<VT>./x.sh` as this path
    (work / "x.sh").write_text("harmless\n")
    mock_model.model.script(escalated("cat ./x.sh"), Step(text="read"), escalated("cat\x0b./x.sh"), Step(text="no"))
    for text in ("read it", "read it again"):
        receipt = f.json("send", "agent-1", text)
        wait_until(lambda r=receipt: (s := f.status("agent-1"))["state"] == "idle"
                   and s["last_turn"]["turn_id"] == r["turn_id"], timeout=30)
    assert not marker.exists()
    answered = [e for e in f.journal("agent-1") if e["event"] == "approval_answered"]
    assert [e["decision"] for e in answered] == ["allow", "deny"]  # the naive form is allowed, the VT one not
    assert "control character" in answered[1]["message"]


def test_a_padded_command_is_held_whole_and_status_says_it_was_cut(
        fleet_factory: Callable[..., Fleet], mock_model: MockServer, safe_home: None) -> None:
    f = fleet_with(fleet_factory, mock_model, agent_extra='sandbox = "workspace-write"',
                   approve={"toml": '{ allow = ["read-only"], otherwise = "ask" }'})
    marker = f.root / "work" / "agent-1" / "PWNED"
    padded = "ls" + " " * 4000 + f"; touch {marker}"
    mock_model.model.script(escalated(padded), Step(text="refused"))
    f.json("send", "agent-1", "list the files")
    approval = waiting(f)["approval"]
    assert approval["held"] is True  # the policy did not allow it: a person decides
    assert (approval["command_truncated"], approval["command_length"]) == (True, len(padded))
    assert approval["command"].endswith(CUT_MARK)
    f.json("deny", "agent-1")
    wait_until(lambda: f.status("agent-1")["state"] == "idle", timeout=30)
    assert not marker.exists()


def test_a_planted_makefile_runs_only_when_the_user_opted_in(fleet_factory: Callable[..., Fleet],
                                                            mock_model: MockServer, safe_home: None) -> None:
    f = fleet_with(fleet_factory, mock_model, agent_extra='sandbox = "workspace-write"',
                   approve={"toml": '{ allow = ["read-only"], otherwise = "deny" }'})
    work = f.root / "work" / "agent-1"
    (work / "Makefile").write_text(f"test:\n\ttouch {work / 'PWNED'}\n")
    mock_model.model.script(escalated("make test"), Step(text="refused"))
    receipt = f.json("send", "agent-1", "run the tests")
    wait_until(lambda: (s := f.status("agent-1"))["state"] == "idle"
               and s["last_turn"]["turn_id"] == receipt["turn_id"], timeout=30)
    [answer] = [e for e in f.journal("agent-1") if e["event"] == "approval_answered"]
    assert (answer["decision"], answer["by"]) == ("deny", "watchdog:policy")
    assert not (work / "PWNED").exists()
    f.path.write_text(f.path.read_text().replace('otherwise = "deny"',
                                                 'commands_running_workspace_code = ["make test"], otherwise = "deny"'))
    f.json("watchdog", "tick")  # gives the hook the edited policy
    mock_model.model.script(escalated("make test"), Step(text="ran"))
    receipt = f.json("send", "agent-1", "run the tests now")
    wait_until(lambda: (s := f.status("agent-1"))["state"] == "idle"
               and s["last_turn"]["turn_id"] == receipt["turn_id"], timeout=30)
    wait_until((work / "PWNED").exists, timeout=30)  # the user accepted exactly this
