"""Assignments without a running Codex: what `assign` refuses before anything is written or sent, the
queue, cancel, events, and the skill inventory, all through the real CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import Fleet, sent_in_ledger, wait_until

from fleet.errors import FleetError


def skill(root: Path, name: str, front: str) -> None:
    d = root / name
    d.mkdir(parents=True)
    (d / "SKILL.md").write_text(f"---\n{front}\n---\n\n# {name}\n")


def error(f: Fleet, *args: str, input_text: str | None = None) -> dict[str, Any]:
    proc = f.cli(*args, "--json", input_text=input_text)
    assert proc.returncode != 0, proc.stdout
    err: dict[str, Any] = json.loads(proc.stdout)["error"]
    assert err["hint"]
    return err


def nothing_written(f: Fleet) -> None:
    assert f.json("assignments")["assignments"] == []
    assert f.json("events")["events"] == []


@pytest.fixture
def fleet(fleet_factory: Callable[..., Fleet]) -> Fleet:
    """agent-1 an explorer, agent-2 and agent-3 workers (agent-3 holds the pdf skill), lead a lead."""
    f = fleet_factory(3, extra="", agent_extra="")
    text = f.path.read_text()
    text = text.replace("[agents.agent-2]", "[agents.agent-2]\nrole = \"worker\"")
    text = text.replace("[agents.agent-3]", "[agents.agent-3]\nrole = \"worker\"")
    lead_cwd = f.root / "work" / "lead"
    lead_cwd.mkdir()
    text += f'\n[agents.lead]\nhome = "{f.root / "homes" / "lead"}"\ncwd = "{lead_cwd}"\nrole = "lead"\n'
    f.path.write_text(text)
    f.agents.append("lead")
    skill(f.root / "work" / "agent-3" / ".agents" / "skills", "pdf", "name: pdf\ndescription: Make PDFs.")
    return f


def test_an_unknown_skill_is_refused_naming_the_agents_that_have_it(fleet: Fleet) -> None:
    err = error(fleet, "assign", "--skill", "pdf", "--to", "agent-2", "Make a PDF")
    assert err["code"] == "skill_not_found"
    assert "held by agent-3" in err["message"]
    assert err["skills"] == {"pdf": ["agent-3"]}
    err = error(fleet, "assign", "--skill", "nope", "Make a PDF")
    assert (err["code"], err["skills"]) == ("skill_not_found", {"nope": []})
    nothing_written(fleet)


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (("--to", "agent-1", "--write", "docs/"), "invalid_input", "explorer"),
        (("--to", "lead"), "invalid_input", "lead"),
        (("--to", "agent-2", "--write", "../elsewhere"), "invalid_input", "outside the working directory"),
        (("--to", "agent-2", "--read", "/etc"), "invalid_input", "outside the working directory"),
        (("--write", "/etc/passwd"), "invalid_input", "absolute"),
        (("--write", "docs/../../x"), "invalid_input", "outside"),
        (("--deadline", "30"), "invalid_input", "a number needs a unit"),
        (("--deadline", "40d"), "invalid_input", "longer than the limit"),
        (("--token", "3"), "invalid_input", "--to"),
        (("--check", "  "), "invalid_input", "check"),
        (("--to", "No-Body!"), "invalid_input", "agent name"),
        (("--to", "ghost"), "unknown_agent", "ghost"),
    ],
)
def test_bad_requests_are_refused_before_anything_is_written(fleet: Fleet, args: tuple[str, ...], code: str,
                                                            words: str) -> None:
    err = error(fleet, "assign", *args, "Do it")
    assert err["code"] == code
    assert words in err["message"]
    nothing_written(fleet)


def test_an_empty_or_oversized_task_is_refused(fleet: Fleet) -> None:
    assert error(fleet, "assign", "   ")["code"] == "invalid_input"
    assert error(fleet, "assign", "-", input_text="\n\n")["code"] == "invalid_input"
    assert error(fleet, "assign", "-", input_text="x" * 16_001)["code"] == "invalid_input"
    nothing_written(fleet)


def test_writes_no_agent_can_ever_take_are_refused_even_with_queue(fleet_factory: Callable[..., Fleet]) -> None:
    f = fleet_factory(2)  # explorers only
    err = error(f, "assign", "--queue", "--write", "docs/", "Write docs")
    assert err["code"] == "no_agent_available"
    assert {r["why"] for r in err["reasons"]} == {"read_only"}
    nothing_written(f)


def test_with_no_agent_running_it_is_refused_or_queued_then_cancelled(fleet: Fleet) -> None:
    err = error(fleet, "assign", "--write", "docs/", "Write docs")
    assert err["code"] == "no_agent_available"
    assert {(r["agent"], r["why"]) for r in err["reasons"]} == {
        ("agent-1", "read_only"), ("agent-2", "not_running"), ("agent-3", "not_running"), ("lead", "lead")}
    nothing_written(fleet)
    queued = fleet.json("assign", "--queue", "--write", "docs/", "--skill", "pdf", "Write docs")
    assert (queued["state"], queued["agent"], queued["duplicate"]) == ("queued", None, False)
    assert {r["agent"]: r["why"] for r in queued["reasons"]}["agent-3"] == "not_running"
    assert fleet.json("dispatch")["queued"][0]["id"] == queued["assignment"]
    shown = fleet.json("show", queued["assignment"])
    assert (shown["write_paths"], shown["skills"], shown["task"]) == (["docs/"], ["pdf"], "Write docs")
    cancelled = fleet.json("cancel", queued["assignment"])
    assert (cancelled["cancelled"], cancelled["state"]) == (True, "cancelled")
    events = fleet.json("events")
    assert [(e["kind"], e["to"]) for e in events["events"]] == [("created", "queued"), ("transition", "cancelled")]
    assert fleet.json("events", "--since", str(events["cursor"])) == {"events": [], "cursor": events["cursor"]}
    assert fleet.json("assignments", "--open")["assignments"] == []


def test_a_queued_assignment_fails_when_its_deadline_passes(fleet: Fleet) -> None:
    aid = fleet.json("assign", "--queue", "--deadline", "1s", "Look around")["assignment"]
    wait_until(lambda: fleet.json("assignments")["assignments"][0]["state"] == "failed", timeout=15)
    assert fleet.json("show", aid)["reason"] == "deadline passed while queued"


def test_wait_on_an_unknown_assignment_says_so(fleet: Fleet) -> None:
    err = error(fleet, "wait", "as-01JABCDEFGHJKMNPQRSTVWXYZ0", "--timeout", "0")
    assert err["code"] == "assignment_not_found"
    assert error(fleet, "wait", "as-nope")["code"] == "invalid_input"


def test_skills_lists_what_codex_would_load_and_broken_files_with_their_error(fleet: Fleet) -> None:
    skill(fleet.root / "homes" / "agent-2" / "skills", "notes", "name: notes\ndescription: Take notes.")
    skill(fleet.root / "homes" / "agent-2" / "skills", "broken", "name: [broken\ndescription: x")
    listed = {a["name"]: a["skills"] for a in fleet.json("skills")["agents"]}
    assert [s["name"] for s in listed["agent-3"]] == ["pdf"]
    assert listed["agent-3"][0]["source"] == "project"
    by_name = {s["name"]: s for s in listed["agent-2"]}
    assert by_name["notes"]["description"] == "Take notes."
    assert "not valid YAML" in by_name["broken"]["error"]
    assert fleet.json("skills", "agent-1")["agents"] == [{"name": "agent-1", "skills": []}]


def test_an_mcp_wait_is_held_at_most_50_seconds(fleet: Fleet) -> None:
    from fleet import ops
    from fleet.service import Service

    aid = fleet.json("assign", "--queue", "Look around")["assignment"]
    fleet.json("cancel", aid)
    svc = Service(config_path=str(fleet.path), surface="mcp")
    try:
        waited = ops.invoke(svc, "assignment_wait", {"assignments": [aid], "timeout": 3600})
        assert (waited["waited_max"], waited["pending"]) == (50, [])
        assert ops.invoke(svc, "assignment_wait", {"assignments": [aid]})["waited_max"] == 25
    finally:
        svc.close()


def test_the_longest_deadline_fits_in_the_longest_lease() -> None:
    from fleet.leases.rules import MAX_TTL
    from fleet.service.delivery import DEADLINE_GRACE, MAX_DEADLINE, MAX_LEASE

    assert MAX_LEASE == MAX_TTL
    assert MAX_DEADLINE + DEADLINE_GRACE == MAX_TTL


def sent_by_hand(fleet: Fleet) -> tuple[str, list[dict[str, Any]]]:
    """An assignment sent to agent-2 (turn t1) that wrote docs/a.md, and the journal lines its hooks
    would have written: a denied patch, then a turn end with a valid report. No Codex needed."""
    cwd = fleet.root / "work" / "agent-2"
    (cwd / "docs").mkdir()
    aid = sent_in_ledger(fleet, "agent-2", task="Write docs", write_paths=["docs/"])
    (cwd / "docs" / "a.md").write_text("new\n")
    body = {"status": "done", "summary": "Wrote it.", "changed": ["docs/a.md"], "tests": "", "risks": ""}
    (fleet.state_dir / "agents" / "agent-2").mkdir(parents=True, exist_ok=True)
    return aid, [{"event": "turn_started", "turn_id": "t1", "time": 1.0},
                 {"event": "tool_denied", "turn_id": "t1", "time": 2.0, "assignment": aid, "paths": ["src/x.py"]},
                 {"event": "turn_completed", "turn_id": "t1", "time": 3.0,
                  "last_message": f"Done.\n```fleet-report\n{json.dumps(body)}\n```"}]


def write_journal(path: Path, lines: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


def test_a_compacted_journal_still_yields_the_denial_and_the_report(fleet: Fleet) -> None:
    aid, lines = sent_by_hand(fleet)
    agent_dir = fleet.state_dir / "agents" / "agent-2"
    write_journal(agent_dir / "events.jsonl.1", lines[:2])
    write_journal(agent_dir / "events.jsonl", [lines[0], lines[2], {"event": "compacted", "time": 3.0, "at": 4.0}])
    shown = fleet.json("show", aid)
    assert shown["state"] == "verified", shown["verification"]
    assert [e["details"]["paths"] for e in shown["events"] if e["kind"] == "scope_denied"] == [["src/x.py"]]


def test_reconcile_from_several_processes_at_once_moves_each_step_once(fleet: Fleet) -> None:
    import subprocess
    import sys

    aid, lines = sent_by_hand(fleet)
    write_journal(fleet.state_dir / "agents" / "agent-2" / "events.jsonl", lines)
    procs = [subprocess.Popen([sys.executable, "-m", "fleet", "--config", str(fleet.path), "assignments", "--json"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    shown = fleet.json("show", aid)
    assert shown["state"] == "verified", shown["verification"]
    kinds = [(e["kind"], e["to"]) for e in shown["events"]]
    assert kinds.count(("transition", "working")) == 1
    assert kinds.count(("transition", "reported")) == 1
    assert kinds.count(("transition", "verified")) == 1
    assert kinds.count(("scope_denied", None)) == 1


def test_every_work_command_has_a_readable_form(fleet: Fleet) -> None:
    queued = fleet.cli("assign", "--queue", "--write", "docs/", "Write\nthe docs")
    assert queued.returncode == 0, queued.stderr
    aid = queued.stdout.split(":")[0]
    assert "queued (" in queued.stdout
    for args, words in [(("assignments",), "Write the docs"), (("assignments", "--open"), aid),
                        (("show", aid), "task: Write"), (("events",), "created"), (("dispatch",), "still queued"),
                        (("skills",), "pdf"), (("wait", aid, "--timeout", "0"), "still queued"),
                        (("cancel", aid), "cancelled"), (("show", aid), "queued -> cancelled")]:
        proc = fleet.cli(*args)
        assert proc.returncode == (5 if args[0] == "wait" else 0), proc.stderr
        assert words in proc.stdout, (args, proc.stdout)


def test_the_work_tools_answer_over_mcp(fleet: Fleet) -> None:
    import anyio
    from mcp import Client

    from fleet.mcp.server import build_server

    async def calls() -> list[Any]:
        async with Client(build_server(str(fleet.path))) as client:
            made = await client.call_tool("assignment_create", {"task": "Look", "queue": True})
            bad = await client.call_tool("assignment_create", {"task": "Look", "deadline": 5})
            listed = await client.call_tool("assignment_list", {"open_only": True})
            return [made, bad, listed]

    made, bad, listed = anyio.run(calls)
    assert made.structured_content["state"] == "queued"
    assert bad.is_error
    assert json.loads(bad.content[0].text)["error"]["code"] == "invalid_input"
    assert [a["id"] for a in listed.structured_content["assignments"]] == [made.structured_content["assignment"]]


def test_a_user_template_is_checked_before_anything_is_written(fleet: Fleet) -> None:
    template = fleet.root / "prompt.md"
    template.write_text("Job ${assignment_id}: ${task}\n${bogus}\n")
    fleet.path.write_text(fleet.path.read_text().replace("[fleet]\n", f'[fleet]\nassignment_template = "{template}"\n'))
    err = error(fleet, "assign", "--queue", "Look around")
    assert err["code"] == "config_invalid"
    assert "unknown placeholder(s) bogus" in err["message"]
    nothing_written(fleet)
    template.write_text("Job ${assignment_id} for $$5: ${task}\n${report_contract}\n")
    assert fleet.json("assign", "--queue", "Look around")["state"] == "queued"


def test_any_task_with_a_forbidden_control_character_is_refused_by_assign_and_send(fleet: Fleet) -> None:
    """A task is prompt text: one rule (`fleet.prompttext`) refuses it up front, through the registry,
    for `assign` (before anything is written) and for `send` (before anything is typed)."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from fleet import ops
    from fleet.prompttext import forbidden
    from fleet.service import Service

    controls = st.characters(min_codepoint=0, max_codepoint=0x7f).filter(forbidden)
    svc = Service(config_path=str(fleet.path), surface="api")

    @settings(max_examples=40, deadline=None)
    @given(st.text(max_size=40), controls, st.text(max_size=40))
    def refused(before: str, control: str, after: str) -> None:
        task = f"{before}Do it{control}{after}"
        for name, args in (("assignment_create", {"task": task, "to": "agent-2", "queue": True}),
                           ("agent_send", {"agent": "agent-2", "text": task})):
            with pytest.raises(FleetError) as caught:
                ops.invoke(svc, name, args)
            assert (name, caught.value.code) == (name, "invalid_input")
            assert "control characters" in caught.value.message

    try:
        refused()
    finally:
        svc.close()
    nothing_written(fleet)
