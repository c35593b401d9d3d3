"""Agent-written text on its way out (issue 12, hole 7): escaped for terminals, marked for models, and
never in the watchdog's prompt to a lead. The escaping and marking are pure (`fleet.untrusted`,
property tests); the CLI and MCP tests put a hostile report and skill where an agent would (the ledger,
its Codex home) and read them back through the real `fleet` process and the real MCP server. (A
hostile pane and `fleet_install` over MCP, which need Codex, are in tests/codex/test_agents_text.py.)"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from conftest import Fleet
from hostiletext import (
    HOSTILE,
    INJECTION,
    NOTE,
    OSC52,
    UNTRUSTED_KEY,
    call,
    escape_terminal,
    raw_dangerous,
    text_with_controls,
    unmarked,
)
from hypothesis import given
from hypothesis import strategies as st
from mcp import types as mcp_types

from fleet.mcp.server import INSTRUCTIONS
from fleet.mcp.views import view
from fleet.watchdog.decide import Action
from fleet.watchdog.messages import lead_prompt
from fleet.work.ledger import Ledger


def approval_status(text: str) -> dict[str, Any]:
    return {"agents": [{"name": "agent-1", "state": "waiting_approval", "role": "worker", "since": 10.0,
                        "detail": f"approval of Bash `{text}`",
                        "approval": {"request": "ap-0123456789abcdef", "tool": "Bash", "command": text,
                                     "justification": text, "held": True, "hold_until": 99.0, "since": 10.0},
                        "last_turn": {"outcome": "running", "last_message": text},
                        "lease": {"state": "free"}}]}


HOSTILE_RESULTS: dict[str, Any] = {
    "fleet_status": approval_status,
    "agent_tail": lambda t: {"agent": "agent-1", "lines": [t, "ok"], "dead": False},
    "skill_list": lambda t: {"agents": [{"name": "agent-1", "warnings": [t], "skills": [
        {"name": t, "description": t, "source": "codex_home", "path": "/h/s", "error": t}]}]},
    "assignment_wait": lambda t: {"done": [{"id": "as-1", "agent": "agent-1", "state": "rejected", "summary": t,
                                            "reason": t}], "pending": [], "waited_max": 1.0},
    "fleet_events": lambda t: {"events": [{"cursor": 1, "kind": "reported", "details": {"summary": t}}],
                               "cursor": 1},
    "watchdog_tick": lambda t: {"at": 1.0, "actions": [{"agent": "agent-1", "action": "escalate", "reason": t}]},
    "agent_approve": lambda t: {"agent": "agent-1", "request": "ap-1", "decision": "allow", "command": t},
}


@pytest.mark.parametrize("operation", sorted(HOSTILE_RESULTS))
@given(text=text_with_controls.map(lambda t: f"<<{t}>>{INJECTION}"))
def test_agent_text_reaches_a_model_only_inside_the_untrusted_wrapper(operation: str, text: str) -> None:
    out = view(operation, HOSTILE_RESULTS[operation](text), now=20.0)
    assert unmarked(out, INJECTION) == []
    assert INJECTION in json.dumps(out)  # marked, not dropped: the lead can still read it as data


def test_the_mcp_instructions_say_what_the_wrapper_means() -> None:
    assert NOTE in INSTRUCTIONS


# ---- pure: the watchdog's prompt to a lead -------------------------------------------------------

@given(reason=text_with_controls, kind=st.sampled_from(["escalate", "notify", "notify_only"]),
       request=st.none() | st.sampled_from(["ap-0123456789abcdef", HOSTILE]))
def test_the_leads_prompt_states_facts_and_never_the_agents_words(reason: str, kind: Any, request: str | None) -> None:
    action = Action("agent-1", "as-01JABCDEFGHJKMNPQRSTVWXYZ0", kind, 2, f"{HOSTILE} {reason}", lead="boss")
    prompt = lead_prompt("f", action) if request is None else lead_prompt("f", action, approval_request=request)
    assert INJECTION not in prompt
    assert OSC52 not in prompt
    assert prompt == lead_prompt("f", replace(action, reason=""), approval_request=request)  # reason unused
    assert raw_dangerous(prompt) == []
    assert "agent-1" in prompt
    assert "as-01JABCDEFGHJKMNPQRSTVWXYZ0" in prompt
    if request == "ap-0123456789abcdef":
        assert request in prompt
        assert "fleet_status" in prompt


# ---- the real CLI and MCP server -----------------------------------------------------------------

def hostile_assignment(fleet: Fleet) -> str:
    """An assignment as a hostile agent leaves it: its report, the paths it changed and its checks'
    output all carry `HOSTILE`, and the verdict is `rejected`."""
    with Ledger(fleet.state_dir) as ledger:
        a, _ = ledger.create(task="write docs", holder="lead", actor="lead", agent="agent-1")
        ledger.transition(a.id, "sent", actor="test", turn_id="t1", agent="agent-1")
        ledger.transition(a.id, "reported", actor="agent-1", report={
            "status": "done", "summary": HOSTILE, "changed": [HOSTILE], "tests": HOSTILE, "risks": HOSTILE})
        ledger.transition(a.id, "rejected", actor="verifier", reason=f"write outside its paths: {HOSTILE}",
                          verification={"verdict": "rejected", "changed": [HOSTILE], "notes": [],
                                        "reasons": [{"code": "out_of_scope", "message": f"{HOSTILE} was written",
                                                     "paths": [HOSTILE]}],
                                        "checks": [{"cmd": "pytest", "exit_status": 1, "timed_out": False,
                                                    "duration": 1.0, "passed": False, "output_tail": HOSTILE}]})
    return a.id


def test_fleet_show_prints_a_hostile_report_escaped_on_lines_of_its_own(fleet_factory: Any) -> None:
    fleet = fleet_factory(1)
    assignment = hostile_assignment(fleet)
    proc = fleet.cli("show", assignment)
    assert proc.returncode == 0, proc.stderr
    assert raw_dangerous(proc.stdout) == []
    assert "\\x1b]52;c;" in proc.stdout
    assert "\\u202e" in proc.stdout
    assert "\\x9b" in proc.stdout
    lines = proc.stdout.splitlines()
    assert [ln for ln in lines if ln.strip().startswith("verification:")] == \
        ["  verification: rejected; changed " + escape_terminal(HOSTILE)]
    as_json = fleet.cli("show", assignment, "--json")
    assert raw_dangerous(as_json.stdout) == []
    assert json.loads(as_json.stdout)["report"]["summary"] == HOSTILE


def test_fleet_skills_and_wait_print_hostile_agent_text_escaped(fleet_factory: Any) -> None:
    fleet = fleet_factory(1)
    skill = fleet.root / "homes" / "agent-1" / "skills" / "evil"
    skill.mkdir(parents=True)
    (skill / "SKILL.md").write_text(f"---\nname: evil\ndescription: {json.dumps(HOSTILE)}\n---\nBody.\n")
    assignment = hostile_assignment(fleet)
    for args in (("skills",), ("wait", assignment, "--timeout", "0")):
        proc = fleet.cli(*args)
        assert proc.returncode == 0, proc.stderr
        assert raw_dangerous(proc.stdout) == [], args
        assert "\\x1b" in proc.stdout, (args, proc.stdout)


def test_mcp_carries_a_hostile_report_and_skill_only_in_marked_fields(fleet_factory: Any) -> None:
    fleet = fleet_factory(1)
    skill = fleet.root / "homes" / "agent-1" / "skills" / "evil"
    skill.mkdir(parents=True)
    (skill / "SKILL.md").write_text(f"---\nname: evil\ndescription: {json.dumps(HOSTILE)}\n---\nBody.\n")
    assignment = hostile_assignment(fleet)
    for name, args in (("assignment_get", {"assignment": assignment}), ("skill_list", {}),
                       ("assignment_wait", {"assignments": [assignment], "timeout": 0}),
                       ("fleet_events", {"assignment": assignment})):
        result, instructions = call(fleet.path, name, args)
        assert not result.is_error, result
        assert unmarked(result.structured_content, INJECTION) == [], name
        [content] = result.content
        assert isinstance(content, mcp_types.TextContent)
        assert raw_dangerous(content.text) == [], name
        assert json.loads(content.text) == result.structured_content
        assert instructions is not None
        assert NOTE in instructions
    result, _ = call(fleet.path, "assignment_get", {"assignment": assignment})
    assert result.structured_content is not None
    assert result.structured_content["report"] == {UNTRUSTED_KEY: {
        "status": "done", "summary": HOSTILE, "changed": [HOSTILE], "tests": HOSTILE, "risks": HOSTILE}}


