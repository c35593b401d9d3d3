"""Token budgets on real Codex against the scripted model: the model's first reply reports more tokens
than the assignment's budget, and its turn is then held open (a gated reply), so the turn runs, with
fresh progress, when the watchdog's tick looks. The ladder is set never to act on its own here
(`idle_after` and `stall_after` an hour), so what happens is the budget rule's doing."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Final

from conftest import Fleet, wait_until
from mockmodel import MockServer
from mockrequests import last_input_type
from mocksteps import Step
from test_watchdog_tick import REPORT, tick
from test_watchdog_tick import policy as base_policy

from fleet.work.ledger import Ledger

NO_REPORT = "Still working on it; nothing to report yet."
#: Over a 1k budget with the first reply alone (input + output = 5,100).
SPENT: Final = {"input": 5000, "cached_input": 4000, "output": 100, "reasoning": 20}


def ticks_until(f: Fleet, done: Callable[[list[dict[str, Any]]], bool], timeout: float = 60) -> list[dict[str, Any]]:
    """Tick (as the timer would) until the actions so far satisfy `done`; return them all."""
    seen: list[dict[str, Any]] = []

    def step() -> bool:
        seen.extend(tick(f)["actions"])
        return done(seen)

    wait_until(step, timeout=timeout, interval=0.3)
    return seen


def policy() -> str:
    return base_policy(idle_after="1h", stall_after="1h", report_grace="2s")


def over_budget_turn(mock_model: MockServer, gate: threading.Event, *after: Step) -> None:
    """A tool call reporting `SPENT`, then the next reply held on `gate`: the turn stays open."""
    mock_model.model.script(Step(tool=("exec_command", {"cmd": "true"}), usage=dict(SPENT)),
                            Step(text="held", gate=gate), *after)


def held(mock_model: MockServer) -> bool:
    """The request after the tool call has arrived: its reply is the one held on the gate."""
    with mock_model.model.lock:
        return any(last_input_type(b) == "function_call_output" for b in mock_model.model.requests)


def assign_with_budget(f: Fleet, *budget: str) -> str:
    """`fleet assign` with `--budget B` given, or without: then the agent's `budget` is the assignment's."""
    out = f.json("assign", "Count the files.", "--to", "agent-1", *budget, "--holder", "lead:test")
    assert (out["state"], out["budget"]) == ("sent", 1000), out
    return str(out["assignment"])


def test_a_budget_passed_mid_turn_interrupts_it_and_the_report_it_asks_for_ends_the_work(
        fleet_factory: Callable[..., Fleet], mock_model: MockServer) -> None:
    f = fleet_factory(1, model=mock_model, extra=policy())
    f.json("up")
    gate = threading.Event()
    over_budget_turn(mock_model, gate, Step(text=REPORT))
    try:
        aid = assign_with_budget(f, "--budget", "1k")
        prompt = f.json("show", aid)["prompt"]
        assert "Token budget: 1k tokens (1000)" in prompt
        wait_until(lambda: held(mock_model) and f.status("agent-1")["state"] == "working", timeout=30)
        seen = ticks_until(f, lambda acts: any(a["action"] == "budget_interrupt" for a in acts))
    finally:
        gate.set()
    [act] = [a for a in seen if a["action"] == "budget_interrupt"]
    assert [a["action"] for a in seen] == ["budget_interrupt"]
    assert act["outcome"] == "done", act
    assert act["detail"]["interrupt"]["interrupted"] is True
    assert "5.1k tokens (5100) of its budget of 1k (1000)" in act["reason"]
    wait_until(lambda: f.json("show", aid)["state"] == "verified", timeout=30)
    shown = f.json("show", aid)
    assert shown["budget"] == 1000
    assert shown["budget_use"]["over"] is True
    assert shown["budget_use"]["used"] > 5100
    asked = [m for m in mock_model.model.user_prompts() if "past its budget of 1k" in m]
    assert len(asked) == 1
    later: list[dict[str, Any]] = []
    for _ in range(3):
        later += ticks_until(f, lambda acts: True)
    assert later == []  # reported: nothing more to do
    [row] = [a for a in f.json("usage")["assignments"] if a["id"] == aid]
    assert (row["budget"], row["budget_use"]["over"]) == (1000, True)


def test_no_report_after_the_budget_interrupt_fails_the_assignment_over_budget(
        fleet_factory: Callable[..., Fleet], mock_model: MockServer) -> None:
    """The budget here is the agent's own, from fleet.toml."""
    f = fleet_factory(1, model=mock_model, extra=policy(), agent_extra="budget = 1000")
    f.json("up")
    mock_model.model.default_text = NO_REPORT  # the report request, and the Stop hook's ask, get no report
    gate = threading.Event()
    over_budget_turn(mock_model, gate)
    try:
        aid = assign_with_budget(f)
        assert "Token budget: 1k tokens (1000)" in f.json("show", aid)["prompt"]
        wait_until(lambda: held(mock_model) and f.status("agent-1")["state"] == "working", timeout=30)
        seen = ticks_until(f, lambda acts: any(a["action"] == "fail_over_budget" for a in acts))
    finally:
        gate.set()
    assert [a["action"] for a in seen] == ["budget_interrupt", "fail_over_budget"]
    failed = seen[-1]
    assert failed["outcome"] == "done", failed
    assert failed["detail"]["failed"] is True
    with Ledger(f.state_dir) as ledger:
        a = ledger.get(aid)
        events = [e.to_dict() for e in ledger.events_for(aid)]
    assert a.state == "failed"
    assert (a.reason or "").startswith("over_budget: ")
    [end] = [e for e in events if e["to"] == "failed"]
    assert end["details"]["code"] == "over_budget"
    assert end["actor"] == "watchdog"
    assert ticks_until(f, lambda acts: True) == []
