"""Usage limits and model errors through the watchdog, on real Codex against the scripted model: a
usage limit parks the agent until its window resets, then the tick resumes it and the assignment
completes; any other model error just ends the turn, so the agent is idle and the ladder applies."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from conftest import Fleet, wait_until
from mockmodel import MockServer
from mocksteps import Step, rate_limit_headers
from test_watchdog_tick import REPORT, assign, policy, tick

from fleet.work.ledger import Ledger


def state_of(f: Fleet, assignment: str) -> str:
    with Ledger(f.state_dir) as ledger:
        return ledger.get(assignment).state


def test_a_usage_limit_parks_the_agent_and_after_the_reset_it_is_resumed_and_completes(
        fleet_factory: Callable[..., Fleet], mock_model: MockServer) -> None:
    f = fleet_factory(1, model=mock_model, extra=policy(idle_after="2s", report_grace="2s"))
    f.json("up")
    reset = int(time.time()) + 8
    mock_model.model.script(Step.usage_limit(headers=rate_limit_headers(100, reset)), Step(text=REPORT))
    aid = assign(f, "agent-1", "A big job.")
    limited = wait_until(lambda: (s := f.status("agent-1"))["state"] == "limited" and s, timeout=30)
    assert limited["resets_at"] == reset
    parked: list[dict[str, Any]] = []
    while time.time() < reset - 1:  # well past idle_after and report_grace: parked, never asked
        parked += tick(f)["actions"]
    assert parked == []
    resumed: list[dict[str, Any]] = []
    wait_until(lambda: resumed.extend(tick(f)["actions"]) or resumed, timeout=30, interval=0.3)
    assert [(a["action"], a["outcome"], a["assignment"]) for a in resumed] == [("resume_after_limit", "done", aid)]
    assert "usage limit reset" in resumed[0]["reason"]
    # the assignment, re-sent: the receipt comes from Codex's UserPromptSubmit hook, a moment before
    # Codex's request reaches the model
    wait_until(lambda: len([p for p in mock_model.model.user_prompts() if "A big job." in p]) == 2, timeout=10)
    wait_until(lambda: tick(f) is not None and state_of(f, aid) == "verified", timeout=30)


def test_a_server_error_mid_turn_leaves_the_agent_idle_with_a_failed_turn_and_the_ladder_applies(
        fleet_factory: Callable[..., Fleet], mock_model: MockServer) -> None:
    f = fleet_factory(1, model=mock_model, extra=policy(idle_after="2s"))
    f.json("up")
    mock_model.model.script(Step(tool=("exec_command", {"cmd": "echo working"})), Step.server_error())
    aid = assign(f, "agent-1", "Do the thing.")
    status = wait_until(lambda: (s := f.status("agent-1"))["last_turn"]["outcome"] == "failed" and s, timeout=30)
    assert status["state"] == "idle"
    assert status["last_turn"]["error"]["code"] == "internal_server_error"
    seen: list[dict[str, Any]] = []
    wait_until(lambda: seen.extend(tick(f)["actions"]) or seen, timeout=30, interval=0.3)
    assert [(a["action"], a["assignment"]) for a in seen] == [("request_report", aid)]
