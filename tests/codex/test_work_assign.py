"""Assignments end to end: real Codex agents in real tmux against the scripted mock model, driven
through the real CLI: route, send with a receipt, follow the turn, take the report, verify it."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from conftest import Fleet, wait_until
from mockmodel import MockModel, MockServer
from mocksteps import Step

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
    busy = threading.Event()
    mock_model.model.script(Step(text=report(), gate=busy))
    aid = f.json("assign", "--to", "agent-1", "Look around and report")["assignment"]
    early = f.cli("wait", aid, "--timeout", "0", "--json")
    assert early.returncode == 5, early.stderr
    assert [a["id"] for a in json.loads(early.stdout)["pending"]] == [aid]
    busy.set()
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


def test_a_write_outside_the_scope_is_rejected_naming_the_path(fleet_factory: Callable[..., Fleet],
                                                               mock_model: MockServer) -> None:
    """The shell writes where apply_patch may not: the hook cannot see it, the after-turn comparison does."""
    f = fleet_factory(1, model=mock_model, agent_extra=WORKER)
    f.json("up")
    shell = Step(tool=("exec_command", {"cmd": "mkdir -p src && echo x > src/evil.py"}))
    mock_model.model.script(shell, Step(text=report(changed=("src/evil.py",))))
    aid = f.json("assign", "--to", "agent-1", "--write", "docs/", "Write the docs")["assignment"]
    [done] = f.json("wait", aid, "--timeout", "60")["done"]
    assert done["state"] == "rejected", f.json("show", aid)
    shown = f.json("show", aid)
    [reason] = shown["verification"]["reasons"]
    assert (reason["code"], reason["paths"]) == ("outside_scope", ["src/evil.py"])
    assert "src/evil.py" in shown["reason"]


def test_an_out_of_scope_patch_is_denied_before_it_is_written_and_the_ledger_shows_it(
        fleet_factory: Callable[..., Fleet], mock_model: MockServer) -> None:
    f = fleet_factory(1, model=mock_model, agent_extra=WORKER, catalog=True)
    f.json("up")
    mock_model.model.script(patch_adding("src/evil.py"), Step(text=report(status="blocked")))
    aid = f.json("assign", "--to", "agent-1", "--write", "docs/", "Write the docs")["assignment"]
    [done] = f.json("wait", aid, "--timeout", "60")["done"]
    assert done["state"] == "rejected"
    assert not (f.root / "work" / "agent-1" / "src" / "evil.py").exists()
    shown = f.json("show", aid)
    [denied] = [e for e in shown["events"] if e["kind"] == "scope_denied"]
    assert denied["details"]["paths"] == ["src/evil.py"]
    assert shown["verification"]["denied"] == {"count": 1, "paths": ["src/evil.py"]}
    assert [r["code"] for r in shown["verification"]["reasons"]] == ["status"]


def test_a_missing_report_is_asked_for_once_in_the_same_turn(fleet_factory: Callable[..., Fleet],
                                                            mock_model: MockServer) -> None:
    f = fleet_factory(1, model=mock_model, agent_extra=WORKER)
    f.json("up")
    mock_model.model.script(Step(text="All done, I think."), Step(text=report()))
    created = f.json("assign", "--to", "agent-1", "Look around")
    [done] = f.json("wait", created["assignment"], "--timeout", "60")["done"]
    assert done["state"] == "verified"
    shown = f.json("show", created["assignment"])
    [asked] = [e for e in shown["events"] if e["kind"] == "report_asked"]
    assert asked["details"]["turn_id"] == created["turn_id"]
    asks = {p for p in mock_model.model.user_prompts() if "<hook_prompt" in p or "needs a report" in p}
    assert len(asks) == 1
    # One turn: the ask continued it; the agent's journal shows it ending once.
    ends = [e for e in f.journal("agent-1") if e["event"] == "turn_completed"]
    assert [e["turn_id"] for e in ends] == [created["turn_id"]]


def test_a_failing_check_rejects_the_assignment(fleet_factory: Callable[..., Fleet],
                                                mock_model: MockServer) -> None:
    f = fleet_factory(1, model=mock_model, agent_extra=WORKER)
    f.json("up")
    mock_model.model.script(Step(text=report()))
    aid = f.json("assign", "--to", "agent-1", "--check", "echo checking; exit 3", "Look around")["assignment"]
    [done] = f.json("wait", aid, "--timeout", "60")["done"]
    assert done["state"] == "rejected"
    verification = f.json("show", aid)["verification"]
    [check] = verification["checks"]
    assert (check["exit_status"], check["passed"], check["ran"]) == (3, False, True)
    assert check["output_tail"].endswith("checking\n")  # after Codex's warning about a home under /tmp
    assert [r["code"] for r in verification["reasons"]] == ["check_failed"]


def test_a_queued_assignment_is_dispatched_when_its_agent_frees(fleet_factory: Callable[..., Fleet],
                                                               mock_model: MockServer) -> None:
    f = fleet_factory(1, model=mock_model, agent_extra=WORKER)
    f.json("up")
    busy = threading.Event()  # the first turn runs until the queue has been checked, however slow the machine
    mock_model.model.script(Step(text=report(), gate=busy), Step(text=report()))
    first = f.json("assign", "Look around")
    assert first["agent"] == "agent-1"
    refused = f.cli("assign", "Look again", "--json")
    assert refused.returncode == 1
    assert json.loads(refused.stdout)["error"]["code"] == "no_agent_available"
    assert json.loads(refused.stdout)["error"]["reasons"] == [
        {"agent": "agent-1", "why": "leased", "detail": "someone else holds its lease"}]
    second = f.json("assign", "--queue", "Look again")
    assert (second["state"], second["agent"]) == ("queued", None)
    assert f.json("dispatch")["dispatched"] == []
    busy.set()
    assert f.json("wait", first["assignment"], "--timeout", "60")["done"][0]["state"] == "verified"
    dispatched = f.json("dispatch")["dispatched"]
    assert [(d["id"], d["agent"], d["state"]) for d in dispatched] == [(second["assignment"], "agent-1", "sent")]
    assert f.json("wait", second["assignment"], "--timeout", "60")["done"][0]["state"] == "verified"
    assert len(prompts(mock_model.model)) == 2


def test_a_retry_with_the_same_request_id_sends_one_prompt(fleet_factory: Callable[..., Fleet],
                                                           mock_model: MockServer) -> None:
    f = fleet_factory(1, model=mock_model, agent_extra=WORKER)
    f.json("up")
    mock_model.model.script(Step(text=report(), delay=2))
    first = f.json("assign", "--request-id", "job-7", "Look around")
    again = f.json("assign", "--request-id", "job-7", "Look around")
    assert (again["assignment"], again["duplicate"], first["duplicate"]) == (first["assignment"], True, False)
    other = f.cli("assign", "--request-id", "job-7", "Something else", "--json")
    assert json.loads(other.stdout)["error"]["code"] == "request_id_conflict"
    f.json("wait", first["assignment"], "--timeout", "60")
    assert len(prompts(mock_model.model)) == 1
    assert len(f.json("assignments")["assignments"]) == 1


def test_concurrent_assigns_from_several_processes_never_share_an_agent(fleet_factory: Callable[..., Fleet],
                                                                       mock_model: MockServer) -> None:
    import subprocess
    import sys

    f = fleet_factory(2, model=mock_model, agent_extra=WORKER)
    f.json("up")
    busy = threading.Event()  # both turns run until every assign has answered
    mock_model.model.script(*(Step(text=report(), gate=busy) for _ in range(2)))
    procs = [subprocess.Popen([sys.executable, "-m", "fleet", "--config", str(f.path), "assign", "--queue",
                               f"Task {i}", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(4)]
    try:
        results = []
        for proc in procs:
            out, err = proc.communicate(timeout=90)
            assert proc.returncode == 0, err
            results.append(json.loads(out))
        sent = [r for r in results if r["state"] == "sent"]
        assert sorted(r["agent"] for r in sent) == f.agents  # each agent got exactly one
        assert [r["state"] for r in results].count("queued") == 2
        # the receipt comes from Codex's UserPromptSubmit hook, a moment before its request reaches the model
        wait_until(lambda: len(prompts(mock_model.model)) == 2, timeout=10)
        listed = f.json("assignments", "--open")["assignments"]
        by_agent = [a["agent"] for a in listed if a["state"] != "queued"]
        assert len(by_agent) == len(set(by_agent))
    finally:
        busy.set()


def test_deliver_continues_an_assignment_whose_turn_ended_without_a_report(fleet_factory: Callable[..., Fleet],
                                                                           mock_model: MockServer) -> None:
    """What the watchdog does: a report request through `deliver`; a report from that turn counts."""
    from fleet.service import Service
    from fleet.service.assign import deliver
    from fleet.service.tracking import reconcile

    f = fleet_factory(1, model=mock_model, agent_extra=WORKER)
    f.json("up")
    mock_model.model.script(Step(text="No report."), Step(text="Still none."), Step(text=report()))
    created = f.json("assign", "--to", "agent-1", "Look around")
    aid = created["assignment"]
    wait_until(lambda: any(e["kind"] == "no_report" for e in f.json("show", aid)["events"]), timeout=30)
    assert f.json("show", aid)["state"] == "working"
    svc = Service(config_path=str(f.path), surface="api", holder="watchdog")
    try:
        sent = deliver(svc, aid, actor="watchdog", text="Please send your fleet-report block now.")
        assert sent["turn_id"] != created["turn_id"]
        assert f.status("agent-1")["lease"]["holder"] == f"assignment:{aid}"
        wait_until(lambda: reconcile(svc) or svc.ledger.get(aid).state == "verified", timeout=30)
    finally:
        svc.close()
    shown = f.json("show", aid)
    assert shown["state"] == "verified"
    [delivered] = [e for e in shown["events"] if e["kind"] == "delivered"]
    assert (delivered["actor"], delivered["details"]["turn_id"]) == ("watchdog", sent["turn_id"])
    assert [e["details"]["turn_id"] for e in shown["events"] if e["kind"] == "reported" or e["to"] == "reported"] \
        == [sent["turn_id"]]


def test_an_assignment_fails_when_its_deadline_passes_without_a_report(fleet_factory: Callable[..., Fleet],
                                                                      mock_model: MockServer) -> None:
    f = fleet_factory(1, model=mock_model, agent_extra=WORKER)
    f.json("up")
    mock_model.model.script(Step(text="No report."), Step(text="Still none."))
    aid = f.json("assign", "--to", "agent-1", "--deadline", "2s", "Look around")["assignment"]
    [done] = f.json("wait", aid, "--timeout", "60")["done"]
    assert (done["state"], done["reason"]) == ("failed", "the deadline passed with no report")
    assert f.status("agent-1")["lease"]["state"] == "free"


def test_an_assignment_fails_when_its_agent_dies(fleet_factory: Callable[..., Fleet], mock_model: MockServer) -> None:
    import os
    import signal

    f = fleet_factory(1, model=mock_model, agent_extra=WORKER)
    f.json("up")
    mock_model.model.script(Step(text="working " * 100, chunks=100, chunk_delay=0.2))
    aid = f.json("assign", "--to", "agent-1", "Take your time")["assignment"]
    os.kill(f.status("agent-1")["pid"], signal.SIGKILL)
    [done] = f.json("wait", aid, "--timeout", "60")["done"]
    assert (done["state"], done["reason"]) == ("failed", "its agent exited before a report came")


def test_a_caller_holding_the_agent_hands_its_lease_to_the_assignment(fleet_factory: Callable[..., Fleet],
                                                                      mock_model: MockServer) -> None:
    f = fleet_factory(1, model=mock_model, agent_extra=WORKER)
    f.json("up")
    token = f.json("claim", "agent-1", "--holder", "lead")["token"]
    routed = f.cli("assign", "--holder", "lead", "Look around", "--json")
    assert json.loads(routed.stdout)["error"]["reasons"][0]["why"] == "leased"  # routing never takes it
    other = f.cli("assign", "--to", "agent-1", "--holder", "someone", "Look around", "--json")
    assert json.loads(other.stdout)["error"]["code"] == "no_agent_available"
    stale = f.cli("assign", "--to", "agent-1", "--holder", "lead", "--token", str(token + 5), "Look", "--json")
    assert json.loads(stale.stdout)["error"]["code"] == "lease_lost"
    assert f.json("assignments")["assignments"] == []
    busy = threading.Event()
    mock_model.model.script(Step(text=report(), gate=busy))
    created = f.json("assign", "--to", "agent-1", "--holder", "lead", "--token", str(token), "Look around")
    lease = f.status("agent-1")["lease"]
    assert (lease["holder"], lease["token"] > token) == (f"assignment:{created['assignment']}", True)
    busy.set()
    assert f.json("wait", created["assignment"], "--timeout", "60")["done"][0]["state"] == "verified"
    assert f.status("agent-1")["lease"]["state"] == "free"


def test_the_prompt_comes_from_the_users_template(fleet_factory: Callable[..., Fleet],
                                                  mock_model: MockServer) -> None:
    f = fleet_factory(1, model=mock_model, agent_extra=WORKER)
    template = f.root / "prompt.md"
    template.write_text("Job ${assignment_id} ($$5 budget): ${task}\n${skills}\n${report_contract}\n")
    f.path.write_text(f.path.read_text().replace("[fleet]\n", f'[fleet]\nassignment_template = "{template}"\n'))
    f.json("up")
    mock_model.model.script(Step(text=report()))
    aid = f.json("assign", "--to", "agent-1", "Count the files")["assignment"]
    assert f.json("wait", aid, "--timeout", "60")["done"][0]["state"] == "verified"
    [prompt] = [p for p in mock_model.model.user_prompts() if p.startswith("Job ")]
    assert prompt.startswith(f"Job {aid} ($5 budget): Count the files\n")
    assert "fleet-report" in prompt
