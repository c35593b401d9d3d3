"""Assignments end to end: real Codex agents in real tmux against the scripted mock model, driven
through the real CLI: route, send with a receipt, follow the turn, take the report, verify it."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from conftest import Fleet, wait_until
from mockmodel import MockModel, MockServer, Step

pytestmark = pytest.mark.codex

WORKER = 'role = "worker"'


def report(status: str = "done", changed: tuple[str, ...] = (), summary: str = "Did it.") -> str:
    body = {"status": status, "summary": summary, "changed": list(changed), "tests": "", "risks": "none known"}
    return f"Finished.\n```fleet-report\n{json.dumps(body)}\n```"


def patch_adding(*files: str) -> Step:
    lines = ["*** Begin Patch"]
    for name in files:
        lines += [f"*** Add File: {name}", "+hello"]
    return Step(tool=("apply_patch", {"input": "\n".join([*lines, "*** End Patch"]) + "\n"}))


def transitions(shown: dict[str, Any]) -> list[tuple[str | None, str | None]]:
    return [(e["from"], e["to"]) for e in shown["events"] if e["kind"] in ("created", "transition")]


def prompts(model: MockModel) -> list[str]:
    """The distinct assignment prompts Codex sent the model (a tool call's follow-up request repeats
    the turn's prompt as its last user message)."""
    return list(dict.fromkeys(p for p in model.user_prompts() if "Assignment as-" in p))


def test_a_routed_assignment_is_sent_worked_reported_and_verified(fleet_factory: Callable[..., Fleet],
                                                                  mock_model: MockServer) -> None:
    f = fleet_factory(2, model=mock_model, agent_extra=WORKER, catalog=True)
    f.json("up")
    mock_model.model.script(patch_adding("docs/spec.md"), Step(text=report(changed=("docs/spec.md",))))
    created = f.json("assign", "--write", "docs/", "--check", "test -f docs/spec.md", "--deadline", "10m",
                     "Write docs/spec.md")
    assert created["state"] == "sent"
    assert created["agent"] in f.agents
    assert created["receipt"]["turn_id"] == created["turn_id"]
    aid, agent = created["assignment"], created["agent"]
    lease = next(x for x in f.json("leases")["leases"] if x["agent"] == agent)
    assert lease["holder"] == f"assignment:{aid}"

    waited = f.json("wait", aid, "--timeout", "60")
    assert waited["pending"] == []
    assert waited["done"][0]["state"] == "verified", f.json("show", aid)

    shown = f.json("show", aid)
    assert transitions(shown) == [(None, "queued"), ("queued", "sent"), ("sent", "working"),
                                  ("working", "reported"), ("reported", "verified")]
    assert shown["verification"]["changed"] == ["docs/spec.md"]
    assert shown["verification"]["checks"][0]["passed"] is True
    assert shown["report"]["status"] == "done"
    assert (f.root / "work" / agent / "docs" / "spec.md").read_text() == "hello\n"
    [prompt] = prompts(mock_model.model)
    assert all(part in prompt for part in (aid, "docs/", "fleet-report"))
    # Ending the assignment freed the agent and cleared the hook context.
    lease = next(x for x in f.json("leases")["leases"] if x["agent"] == agent)
    assert lease["state"] == "free"
    assert not (f.state_dir / "agents" / agent / "assignment.json").exists()


def test_wait_says_pending_with_exit_5_then_wakes_on_the_report(fleet_factory: Callable[..., Fleet],
                                                                mock_model: MockServer) -> None:
    f = fleet_factory(1, model=mock_model, agent_extra=WORKER)
    f.json("up")
    mock_model.model.script(Step(text=report(), delay=4))
    aid = f.json("assign", "--to", "agent-1", "Look around and report")["assignment"]
    early = f.cli("wait", aid, "--timeout", "0", "--json")
    assert early.returncode == 5, early.stderr
    assert [a["id"] for a in json.loads(early.stdout)["pending"]] == [aid]
    later = f.cli("wait", aid, "--timeout", "60", "--json")
    assert later.returncode == 0, later.stderr
    [done] = json.loads(later.stdout)["done"]
    assert (done["id"], done["state"], done["report_status"]) == (aid, "verified", "done")


def test_cancel_interrupts_the_turn_and_frees_the_agent(fleet_factory: Callable[..., Fleet],
                                                        mock_model: MockServer) -> None:
    f = fleet_factory(1, model=mock_model, agent_extra=WORKER)
    f.json("up")
    mock_model.model.script(Step(text="working " * 200, chunks=200, chunk_delay=0.2))
    created = f.json("assign", "--to", "agent-1", "--write", "src/", "Take your time")
    aid = created["assignment"]
    wait_until(lambda: f.status("agent-1")["state"] == "working", timeout=20)
    cancelled = f.json("cancel", aid, "--interrupt")
    assert (cancelled["cancelled"], cancelled["interrupted"], cancelled["turn_id"]) == (True, True, created["turn_id"])
    assert f.status("agent-1")["state"] == "idle"
    assert f.status("agent-1")["lease"]["state"] == "free"
    assert not (f.state_dir / "agents" / "agent-1" / "assignment.json").exists()
    shown = f.json("show", aid)
    assert shown["state"] == "cancelled"
    again = f.json("cancel", aid)
    assert (again["cancelled"], again["state"]) == (False, "cancelled")
