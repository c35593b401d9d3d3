"""The watchdog's budget rule (`fleet.watchdog.budget`), alone and inside `decide`: examples and properties."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from fleet.config.watchdog import Policy
from fleet.service.budgets import budget_report_request
from fleet.watchdog.budget import BudgetFacts, budget_step, open_turn_tokens
from fleet.watchdog.decide import AgentFacts, Ladder, OpenAssignment, decide

T0 = 1_800_000_000.0
GRACE = 300.0
P = Policy(every=60, idle_after=600, report_grace=GRACE, stall_after=1800, lead="lead")
AS = OpenAssignment("as-1", "working", T0)


def facts(**kw: Any) -> AgentFacts:
    base: dict[str, Any] = {"agent": "ada", "role": "worker", "state": "working", "assignment": AS,
                            "idle_since": None, "last_progress_at": T0 + 60, "last_work_at": T0 + 60}
    base.update(kw)
    return AgentFacts(**base)


def kinds(f: AgentFacts, now: float) -> list[str]:
    return [a.action for a in decide(f, P, now)]


# -- the rule alone -----------------------------------------------------------------------------------

def test_under_or_at_the_budget_the_rule_says_nothing() -> None:
    for used in (0, 999, 1000):
        assert budget_step(BudgetFacts(1000, used), assignment="as-1", owes_report=True, now=T0, grace=GRACE) is None


def test_past_the_budget_it_interrupts_then_waits_the_grace_then_fails_over_budget() -> None:
    over = BudgetFacts(1000, 1001)
    step = budget_step(over, assignment="as-1", owes_report=True, now=T0, grace=GRACE)
    assert step is not None
    assert step.kind == "interrupt"
    assert "as-1 has used 1001 tokens (1001) of its budget of 1k (1000)" in step.reason
    asked = BudgetFacts(1000, 5000, asked_at=T0)
    wait = budget_step(asked, assignment="as-1", owes_report=True, now=T0 + GRACE - 1, grace=GRACE)
    assert wait is not None
    assert wait.kind == "wait"
    end = budget_step(asked, assignment="as-1", owes_report=True, now=T0 + GRACE, grace=GRACE)
    assert end is not None
    assert end.kind == "fail"
    assert end.reason.startswith("over_budget: as-1 has used 5k tokens (5000)")


def test_no_budget_or_no_report_owed_leaves_it_to_the_other_rules() -> None:
    assert budget_step(None, assignment="as-1", owes_report=True, now=T0, grace=GRACE) is None
    assert budget_step(BudgetFacts(10, 99), assignment="as-1", owes_report=False, now=T0, grace=GRACE) is None


@given(budget=st.integers(1, 10**10), used=st.integers(0, 10**10), owes=st.booleans(),
       asked=st.none() | st.floats(T0 - 10**6, T0 + 10**6), now=st.floats(T0 - 10**6, T0 + 10**6),
       grace=st.floats(0, 10**5))
def test_the_rule_acts_only_on_an_owed_report_and_fails_only_after_asking_and_the_grace(
        budget: int, used: int, owes: bool, asked: float | None, now: float, grace: float) -> None:
    step = budget_step(BudgetFacts(budget, used, asked), assignment="as-1", owes_report=owes, now=now, grace=grace)
    if not owes:
        assert step is None
    elif asked is None:
        assert (step is not None) == (used > budget)
        assert step is None or step.kind == "interrupt"
    else:
        assert step is not None
        assert step.kind == ("fail" if max(0.0, now - asked) >= grace else "wait")  # a clock step back waits 0


@given(running=st.none() | st.fixed_dictionaries({"input": st.integers(0, 10**9), "output": st.integers(0, 10**9)}),
       journaled=st.none() | st.fixed_dictionaries({"input": st.integers(0, 10**9),
                                                     "output": st.integers(0, 10**9)}),
       ended=st.booleans())
def test_the_open_turn_adds_its_running_figure_less_what_the_journal_counted_never_negative(
        running: dict[str, int] | None, journaled: dict[str, int] | None, ended: bool) -> None:
    extra = open_turn_tokens(running, journaled, ended)
    assert extra >= 0
    if ended or running is None:
        assert extra == 0
    else:
        before = (journaled or {}).get("input", 0) + (journaled or {}).get("output", 0)
        assert extra == max(0, running["input"] + running["output"] - before)


def test_the_report_request_names_the_use_the_budget_and_the_contract() -> None:
    text = budget_report_request("as-1", 5100, 1000)
    assert "as-1 has used 5.1k tokens (5100), past its budget of 1k (1000)" in text
    assert "fleet-report" in text


# -- inside decide -----------------------------------------------------------------------------------

def test_a_live_turn_running_a_command_is_still_interrupted_for_its_budget() -> None:
    """The ladder never touches a turn that shows progress; a budget passed does."""
    live = facts(command_running=True, last_progress_at=T0 + 100, budget=BudgetFacts(1000, 2000))
    assert kinds(live, T0 + 101) == ["budget_interrupt"]
    assert kinds(facts(command_running=True, last_progress_at=T0 + 100), T0 + 101) == []


def test_while_the_budget_report_is_awaited_the_ladder_is_held() -> None:
    """An idle agent long past idle_after would get a report request; after the budget's ask it gets nothing
    until the grace is over, then the over_budget failure."""
    idle = facts(state="idle", idle_since=T0 + 60, last_progress_at=T0 + 60)
    assert kinds(idle, T0 + 5000) == ["request_report"]
    asked = facts(state="idle", idle_since=T0 + 60, budget=BudgetFacts(1000, 2000, asked_at=T0 + 4900))
    assert kinds(asked, T0 + 5000) == []
    assert kinds(asked, T0 + 4900 + GRACE) == ["fail_over_budget"]


def test_under_budget_the_ladder_goes_on_as_before() -> None:
    idle = facts(state="idle", idle_since=T0 + 60, budget=BudgetFacts(10**6, 10))
    assert kinds(idle, T0 + 5000) == ["request_report"]


def test_a_valid_report_or_another_state_leaves_the_budget_alone() -> None:
    over = BudgetFacts(1000, 2000)
    reported = facts(assignment=OpenAssignment("as-1", "working", T0, has_valid_report=True), budget=over)
    assert kinds(reported, T0 + 100) == []
    assert kinds(facts(state="stopped", budget=over), T0 + 100) == []


def test_an_agent_held_by_someone_else_is_only_told_about_its_budget() -> None:
    held = facts(lease="other", lease_holder="alice", budget=BudgetFacts(1000, 2000))
    [notice] = decide(held, P, T0 + 100)
    assert notice.action == "notify_only"
    assert "budget" in notice.reason


@given(used=st.integers(0, 5000), asked=st.none() | st.floats(T0, T0 + 1000), now=st.floats(T0, T0 + 2000),
       state=st.sampled_from(["idle", "working"]), command=st.booleans())
def test_budget_actions_never_climb_the_ladder(used: int, asked: float | None, now: float, state: str,
                                               command: bool) -> None:
    f = facts(state=state, command_running=command, idle_since=T0 if state == "idle" else None,
              budget=BudgetFacts(1000, used, asked), ladder=Ladder())
    for action in decide(f, P, now):
        if action.action in ("budget_interrupt", "fail_over_budget"):
            assert action.rung is None
            assert action.assignment == "as-1"


def test_a_parked_or_crashed_agent_past_its_budget_is_asked_for_its_report_not_given_the_work_again() -> None:
    """Resuming after a usage limit re-sends the assignment and a crash's restart re-sends its lost turn:
    both spend more. Past the budget, the resume becomes the budget's report request, and the restart
    comes without the re-send (the next tick asks, as for any idle agent past its budget)."""
    over = BudgetFacts(1000, 2000)
    parked = facts(state="limited", limited_since=T0 + 100, resets_at=T0 + 200)
    assert kinds(parked, T0 + 300) == ["resume_after_limit"]
    assert kinds(facts(state="limited", limited_since=T0 + 100, resets_at=T0 + 200, budget=over), T0 + 150) == []
    assert kinds(facts(state="limited", limited_since=T0 + 100, resets_at=T0 + 200, budget=over),
                 T0 + 300) == ["budget_interrupt"]
    crashed = facts(state="exited", exited_at=T0 + 100, lost_turn=True)
    assert kinds(crashed, T0 + 300) == ["restart_resume", "resend"]
    assert kinds(facts(state="exited", exited_at=T0 + 100, lost_turn=True, budget=over), T0 + 300) == [
        "restart_resume"]
