"""The watchdog tick on real Codex agents against the scripted mock model, with durations in seconds.

Ticks run as real `fleet watchdog tick --json` processes, as the systemd timer runs them. Assignments
are created in the ledger and delivered through the work layer's `deliver`, as `fleet assign` does.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import Fleet, wait_until
from mockmodel import MockServer
from mockrequests import TITLE_MARKER
from mocksteps import Step
from test_watchdog_tick import assign, policy, tick
from test_watchdog_units import directive, systemd_words, unescape

from fleet.watchdog.units import fleet_command, passthrough_env, render_units
from fleet.work.ledger import Ledger
from fleet.work.prompt import REPORT_CONTRACT

REPORT = ('All done.\n\n```fleet-report\n{"status": "done", "summary": "did it", "changed": [], '
          '"tests": "none", "risks": "none"}\n```')


def ticks_until(f: Fleet, done: Callable[[list[dict[str, Any]]], bool], timeout: float = 60) -> list[dict[str, Any]]:
    """Tick (as the timer would) until the actions so far satisfy `done`; return them all."""
    seen: list[dict[str, Any]] = []

    def step() -> bool:
        seen.extend(tick(f)["actions"])
        return done(seen)

    wait_until(step, timeout=timeout, interval=0.3)
    return seen


def ledger_events(f: Fleet, assignment: str) -> list[dict[str, Any]]:
    with Ledger(f.state_dir) as ledger:
        return [e.to_dict() for e in ledger.events_for(assignment)]


def test_silence_brings_a_report_request_then_each_rung_in_order(fleet_factory: Callable[..., Fleet],
                                                                  mock_model: MockServer, tmp_path: Path) -> None:
    notes = tmp_path / "notified.jsonl"
    notifier = [sys.executable, "-c", f"import sys; open({str(notes)!r}, 'a').write(sys.stdin.read() + '\\n')"]
    f = fleet_factory(1, model=mock_model, extra=policy(notify_command=notifier))
    f.json("up")
    mock_model.model.default_text = "Still on it."  # never a report
    aid = assign(f, "agent-1", "Write the summary.")
    wait_until(lambda: f.status("agent-1")["state"] == "idle", timeout=30)

    def kinds(actions: list[dict[str, Any]]) -> list[str]:
        return [a["action"] for a in actions if a["agent"] == "agent-1"]

    seen = ticks_until(f, lambda acts: "escalate" in kinds(acts), timeout=120)
    mine = [a for a in seen if a["agent"] == "agent-1"]
    assert kinds(mine) == ["request_report", "remind", "notify", "interrupt_and_reprompt", "restart_resume",
                           "resend", "escalate"]
    assert [a["rung"] for a in mine] == [0, 1, 2, 3, 4, None, 5]
    assert all(a["outcome"] == "done" for a in mine), mine
    assert all(a["assignment"] == aid for a in mine)
    # The report request went out with a receipt, named the assignment and carried the contract.
    request = mine[0]
    assert request["detail"]["delivered"] is True
    assert request["detail"]["turn_id"] in [e["turn_id"] for e in f.journal("agent-1") if e["event"] == "receipt"]
    asked = [p for p in mock_model.model.user_prompts() if "asking for your report" in p]
    assert len(asked) == 1
    assert aid in asked[0]
    assert REPORT_CONTRACT.splitlines()[0] in asked[0]
    # notify ran the notify command with the action as JSON, once for the rung and once for the escalation.
    told = [json.loads(line) for line in notes.read_text().splitlines() if line.strip()]
    assert [t["action"] for t in told] == ["notify", "escalate"]
    assert told[0]["assignment"] == aid
    # Every action is in the ledger, on the assignment, and in the audit log.
    recorded = [e["kind"] for e in ledger_events(f, aid) if e["kind"].startswith("watchdog_")]
    assert recorded == [f"watchdog_{k}" for k in kinds(mine)]
    audit = [r["event"] for r in f.audit()]
    assert [e for e in audit if e.startswith("watchdog.")] == [f"watchdog.{k}" for k in kinds(mine)]
    # The restart resumed the same session.
    restart = next(a for a in mine if a["action"] == "restart_resume")
    assert restart["detail"]["resumed"]
    assert restart["detail"]["state"] == "idle"
    # After the top rung, nothing more.
    assert kinds(tick(f)["actions"]) == []
    status = f.json("watchdog", "status")
    assert status["last_tick"]["actions"] == []
    assert any(a["action"] == "escalate" for t in status["recent"] for a in t["actions"])


def test_a_report_stops_the_ladder(fleet_factory: Callable[..., Fleet], mock_model: MockServer) -> None:
    f = fleet_factory(1, model=mock_model, extra=policy())
    f.json("up")
    mock_model.model.default_text = "Still on it."
    aid = assign(f, "agent-1", "Write the summary.")
    wait_until(lambda: f.status("agent-1")["state"] == "idle", timeout=30)
    mock_model.model.script(Step(text=REPORT))  # the answer to the report request is the report
    seen = ticks_until(f, lambda acts: any(a["action"] == "request_report" for a in acts))
    assert [a["action"] for a in seen] == ["request_report"]
    wait_until(lambda: f.status("agent-1")["state"] == "idle" and f.status("agent-1")["last_turn"]["outcome"]
               == "completed", timeout=30)
    later: list[dict[str, Any]] = []
    until = time.time() + 6  # three report_grace windows: a ladder would have climbed twice by now
    while time.time() < until:
        later += tick(f)["actions"]
    assert later == []
    with Ledger(f.state_dir) as ledger:
        assert ledger.get(aid).state == "verified"


def test_a_slowly_streaming_turn_past_idle_after_is_never_touched(fleet_factory: Callable[..., Fleet],
                                                                  mock_model: MockServer) -> None:
    f = fleet_factory(1, model=mock_model, extra=policy(report_grace="1s", stall_after="1m"))
    f.json("up")
    mock_model.model.script(Step(text="slow " * 40, chunks=40, chunk_delay=0.2))  # ~8 s of streaming
    assign(f, "agent-1", "Think slowly.")
    seen: list[dict[str, Any]] = []
    while f.status("agent-1")["state"] == "working":
        seen += tick(f)["actions"]
    assert seen == []


def test_two_concurrent_ticks_act_once(fleet_factory: Callable[..., Fleet], mock_model: MockServer) -> None:
    f = fleet_factory(1, model=mock_model, extra=policy())
    f.json("up")
    mock_model.model.default_text = "Still on it."
    aid = assign(f, "agent-1", "Write the summary.")
    wait_until(lambda: f.status("agent-1")["state"] == "idle", timeout=30)
    wait_until(lambda: tick(f, "--dry-run")["actions"], timeout=30)  # a request is due now
    argv = [sys.executable, "-m", "fleet", "--config", str(f.path), "watchdog", "tick", "--json"]
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    results = [json.loads(p.communicate(timeout=60)[0]) for p in procs]
    actions = [a for r in results for a in r["actions"]]
    assert [a["action"] for a in actions] == ["request_report"]
    assert actions[0]["assignment"] == aid

    def asked() -> int:
        return len([p for p in mock_model.model.user_prompts() if "asking for your report" in p])

    wait_until(asked, timeout=30)  # the receipt comes when Codex records the prompt, just before it asks the model
    wait_until(lambda: f.status("agent-1")["state"] == "idle", timeout=30)
    assert asked() == 1


def test_a_killed_agent_is_resumed_with_its_session_and_its_assignment_resent(
        fleet_factory: Callable[..., Fleet], mock_model: MockServer) -> None:
    f = fleet_factory(1, model=mock_model, extra=policy(idle_after="1m"))
    f.json("up")
    mock_model.model.script(Step(text="slow " * 100, chunks=100, chunk_delay=0.2))  # a turn that is open when killed
    aid = assign(f, "agent-1", "Think slowly about the summary.")
    wait_until(lambda: f.status("agent-1")["state"] == "working", timeout=30)
    assert tick(f)["actions"] == []  # the watchdog is running (so the work layer leaves a crash to it)
    before = f.status("agent-1")
    session = next(e["session_id"] for e in f.journal("agent-1") if e.get("event") == "receipt")
    os.kill(before["pid"], signal.SIGKILL)
    wait_until(lambda: f.status("agent-1")["state"] == "exited", timeout=30)
    mock_model.model.script(Step(text=REPORT))
    acted = tick(f)["actions"]
    assert [(a["action"], a["outcome"]) for a in acted] == [("restart_resume", "done"), ("resend", "done")], acted
    assert acted[0]["detail"]["resumed"] == session
    after = f.status("agent-1")
    assert after["pid"] != before["pid"]
    with open(f"/proc/{after['pid']}/cmdline", "rb") as cmd:
        argv = cmd.read().split(b"\0")
    assert b"resume" in argv
    assert argv[-2] == session.encode()  # `codex resume ... <session id>`
    # The resumed session kept its history: the re-sent prompt arrives after the lost turn's prompt.
    task = "Think slowly about the summary."

    def sent() -> list[str]:
        return [p for p in mock_model.model.user_prompts() if task in p]

    wait_until(lambda: len(sent()) == 2, timeout=30)
    assert sent()[0] == sent()[1]  # the same assignment prompt, re-sent
    turns = [json.dumps(r["input"]) for r in mock_model.model.requests if TITLE_MARKER not in json.dumps(r["input"])]
    assert turns[-1].count(task) == 2 * json.dumps(sent()[0]).count(task)
    wait_until(lambda: tick(f)["actions"] == [] and f.json("status")["agents"][0]["state"] == "idle", timeout=30)
    with Ledger(f.state_dir) as ledger:
        assert ledger.get(aid).state == "verified"
    status = f.json("watchdog", "status")
    assert status["agents"] == [{"agent": "agent-1", "restarts": 1, "last_restart_at": status["agents"][0]
                                 ["last_restart_at"], "fatal_at": None, "fatal_reason": None}]


def test_the_rendered_units_exec_start_runs_a_tick_exactly_as_rendered(fleet_factory: Callable[..., Fleet],
                                                                        mock_model: MockServer) -> None:
    f = fleet_factory(1, model=mock_model, extra=policy(idle_after="1s"))
    f.json("up")
    mock_model.model.default_text = "Still on it."
    aid = assign(f, "agent-1", "Write the summary.")
    wait_until(lambda: f.status("agent-1")["state"] == "idle", timeout=30)
    wait_until(lambda: tick(f, "--dry-run")["actions"], timeout=30)
    rendered = render_units(fleet=f.name, config=f.path, every=60, command=fleet_command(),
                            env=passthrough_env(os.environ))
    [exec_start] = directive(rendered.service, "ExecStart")
    argv = [unescape(w, dollars=True) for w in systemd_words(exec_start)]
    env = dict(unescape(w, dollars=False).split("=", 1)
               for line in directive(rendered.service, "Environment") for w in systemd_words(line))
    # A user manager gives a unit little more than HOME and the unit's own Environment= lines.
    proc = subprocess.run(argv, env={"HOME": os.environ["HOME"], **env}, cwd="/", capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert f"agent-1: did request_report (rung 0) -- agent-1 has been idle on {aid}" in proc.stdout
    last = f.json("watchdog", "status")["last_tick"]
    assert [(a["action"], a["outcome"]) for a in last["actions"]] == [("request_report", "done")]


def test_an_agent_held_by_someone_else_is_only_told_about_never_touched(fleet_factory: Callable[..., Fleet],
                                                                        mock_model: MockServer) -> None:
    f = fleet_factory(2, model=mock_model, extra=policy(lead="agent-2"))
    f.json("up")
    mock_model.model.default_text = "Still on it."
    aid = assign(f, "agent-1", "Write the summary.")
    wait_until(lambda: f.status("agent-1")["state"] == "idle", timeout=30)
    f.json("release", "agent-1", "--force")  # a person takes the agent over from its assignment
    f.json("claim", "agent-1", "--holder", "person:ada", "--ttl", "600")
    prompts = len(mock_model.model.user_prompts())
    seen = ticks_until(f, lambda acts: any(a["agent"] == "agent-1" for a in acts))
    [notice] = [a for a in seen if a["agent"] == "agent-1"]
    assert (notice["action"], notice["assignment"], notice["lead"]) == ("notify_only", aid, "agent-2")
    assert "held by person:ada" in notice["reason"]
    assert "asking for its report" in notice["reason"]  # what it would have done
    # The lead was told; agent-1 got nothing.
    wait_until(lambda: any(p.startswith("Fleet watchdog") and "notify_only about agent-1" in p
                           for p in mock_model.model.user_prompts()), timeout=30)
    assert [p for p in mock_model.model.user_prompts()[prompts:] if "asking for your report" in p] == []
    assert f.status("agent-1")["last_turn"]["turn_id"] == [e for e in f.journal("agent-1")
                                                           if e["event"] == "receipt"][-1]["turn_id"]
    assert tick(f)["actions"] == []  # at most one notice per report_grace


def test_after_max_restarts_an_agent_is_marked_fatal_and_escalated_until_a_person_starts_it(
        fleet_factory: Callable[..., Fleet], mock_model: MockServer) -> None:
    f = fleet_factory(1, model=mock_model, extra=policy(max_restarts=1))
    f.json("up")

    def crash() -> None:
        os.kill(f.status("agent-1")["pid"], signal.SIGKILL)
        wait_until(lambda: f.status("agent-1")["state"] == "exited", timeout=30)

    crash()
    assert [(a["action"], a["outcome"]) for a in tick(f)["actions"]] == [("restart_resume", "done")]
    crash()
    acted = tick(f)["actions"]
    assert [a["action"] for a in acted] == ["mark_fatal", "escalate"]
    assert "after 1 restart(s) in this streak (max_restarts 1)" in acted[1]["reason"]
    assert tick(f)["actions"] == []  # fatal: left alone
    assert f.status("agent-1")["state"] == "exited"
    fatal = f.json("watchdog", "status")["agents"]
    assert fatal[0]["fatal_at"] is not None
    f.json("up", "agent-1")  # a person starts it again: a new streak
    crash()
    assert [a["action"] for a in tick(f)["actions"]] == ["restart_resume"]
