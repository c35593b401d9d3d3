"""The watchdog's pure decision: examples for each rule, and properties over arbitrary facts and over
simulated sequences of ticks whose actions' effects are applied back to the facts."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, get_args

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from fleet.config.watchdog import RUNGS, ApprovalPolicy, Policy
from fleet.vocab import AgentState
from fleet.watchdog.decide import (
    DISRUPTIVE,
    RESTART_STREAK_RESET,
    Action,
    ActionKind,
    AgentFacts,
    Ladder,
    LeaseKind,
    OpenAssignment,
    PendingApproval,
    advance,
    decide,
    decide_all,
    lease_kind,
    restart_backoff,
    shows_progress,
)

T0 = 1_800_000_000.0
P = Policy(every=60, idle_after=600, report_grace=300, stall_after=1800, lead="lead")
AS = OpenAssignment("as-1", "sent", T0)


def facts(**kw: Any) -> AgentFacts:
    base: dict[str, Any] = {"agent": "ada", "role": "worker", "state": "idle", "assignment": AS,
                            "idle_since": T0 + 60, "last_progress_at": T0 + 60, "last_work_at": T0 + 60}
    base.update(kw)
    return AgentFacts(**base)


def kinds(actions: list[Action]) -> list[str]:
    return [a.action for a in actions]


def climbed(f: AgentFacts, action: Action, now: float) -> AgentFacts:
    """Apply what the tick records after carrying out `action` (and the prompt's echo, if it sent one)."""
    echo = now if action.action in ("request_report", "remind", "interrupt_and_reprompt", "restart_resume") else None
    return replace(f, ladder=advance(f.ladder, action, now),
                   last_progress_at=echo if echo is not None else f.last_progress_at)


# -- the ladder ---------------------------------------------------------------------------------------

def test_an_idle_agent_is_asked_for_its_report_only_past_idle_after() -> None:
    f = facts()
    assert decide(f, P, T0 + 60 + 599) == []
    [act] = decide(f, P, T0 + 60 + 600)
    assert (act.agent, act.assignment, act.action, act.rung, act.lead) == ("ada", "as-1", "request_report", 0, None)
    assert act.reason == ("ada has been idle on as-1 for 10m with no valid report (idle_after 10m); "
                          "asking for its report.")


def test_idle_time_counts_from_the_latest_of_idle_since_sent_at_and_own_work() -> None:
    f = facts(assignment=replace(AS, sent_at=T0 + 500), idle_since=T0 + 60, last_work_at=T0 + 400)
    assert decide(f, P, T0 + 1099) == []
    assert kinds(decide(f, P, T0 + 1100)) == ["request_report"]


def test_the_ladder_climbs_one_rung_per_grace_window_in_policy_order() -> None:
    f = facts(lead_state="idle")
    now = T0 + 660
    seen = []
    for _ in range(8):
        for act in decide(f, P, now):
            seen.append((act.action, act.rung, round(now - T0)))
            f = climbed(f, act, now)
        now += 300
    # remind and notify follow at grace; interrupt waits for stall_after after remind's echo (T0+960),
    # restart for stall_after after interrupt's echo; then one last escalation.
    assert seen == [
        ("request_report", 0, 660), ("remind", 1, 960), ("notify", 2, 1260), ("interrupt_and_reprompt", 3, 2760),
    ]
    for _ in range(12):
        for act in decide(f, P, now):
            seen.append((act.action, act.rung, round(now - T0)))
            f = climbed(f, act, now)
        now += 300
    assert seen[4:] == [("restart_resume", 4, 4560), ("resend", None, 4560), ("escalate", 5, 4860)]
    assert decide(f, P, now + 10_000) == []  # exhausted: nothing more until a report or new work


def test_notify_and_escalate_prompt_the_lead_only_when_it_is_idle_and_not_the_agent_itself() -> None:
    f = facts(ladder=Ladder(rung=1, last_step_at=T0 + 1000, last_request_at=T0 + 1000, requests=2))
    assert decide(replace(f, lead_state="idle"), P, T0 + 1300)[0].lead == "lead"
    assert decide(replace(f, lead_state="working"), P, T0 + 1300)[0].lead is None
    assert decide(replace(f, agent="lead", lead_state="idle"), P, T0 + 1300)[0].lead is None


def test_interrupt_and_restart_wait_while_the_agent_shows_progress() -> None:
    f = facts(ladder=Ladder(rung=2, last_step_at=T0 + 1000, last_request_at=T0 + 700, requests=2),
              last_progress_at=T0 + 1200)
    assert decide(f, P, T0 + 1300) == []
    assert decide(f, P, T0 + 2999) == []
    [act] = decide(f, P, T0 + 3000)
    assert act.action == "interrupt_and_reprompt"
    assert "no progress for 30m (stall_after 30m)" in act.reason
    assert decide(replace(f, command_running=True), P, T0 + 99_999) == []


def test_a_valid_report_or_a_closed_assignment_stops_the_ladder() -> None:
    mid = Ladder(rung=1, last_step_at=T0 + 1000, last_request_at=T0 + 1000, requests=2)
    assert decide(facts(ladder=mid, assignment=replace(AS, has_valid_report=True)), P, T0 + 99_999) == []
    assert decide(facts(ladder=mid, assignment=replace(AS, state="reported")), P, T0 + 99_999) == []
    assert decide(facts(ladder=mid, assignment=None), P, T0 + 99_999) == []


def test_new_work_after_the_last_step_starts_the_climb_over_but_requests_stay_a_grace_apart() -> None:
    mid = Ladder(rung=2, last_step_at=T0 + 1000, last_request_at=T0 + 700, requests=2)
    f = facts(ladder=mid, last_work_at=T0 + 1100, idle_since=T0 + 1150, last_progress_at=T0 + 1150)
    assert decide(f, P, T0 + 1700) == []  # idle only 9m10s since that work
    [act] = decide(f, P, T0 + 1750)
    assert (act.action, act.rung) == ("request_report", 0)
    fast = replace(P, idle_after=60)
    recent = replace(f, ladder=replace(mid, last_request_at=T0 + 1000))
    assert decide(recent, fast, T0 + 1299) == []
    assert kinds(decide(recent, fast, T0 + 1300)) == ["request_report"]


def test_a_working_agent_is_left_alone_until_its_turn_stalls() -> None:
    f = facts(state="working", last_progress_at=T0 + 100, idle_since=None)
    assert decide(f, P, T0 + 1899) == []
    [act] = decide(f, P, T0 + 1900)
    assert (act.action, act.rung) == ("request_report", 0)
    assert act.reason == "ada's turn on as-1 has shown no progress for 30m (stall_after 30m); asking for its report."
    assert decide(replace(f, command_running=True), P, T0 + 99_999) == []


def test_past_its_deadline_an_idle_agent_is_asked_without_waiting_for_idle_after() -> None:
    f = facts(assignment=replace(AS, deadline=T0 + 200))
    assert decide(f, P, T0 + 199) == []
    [act] = decide(f, P, T0 + 230)
    assert act.action == "request_report"
    assert "30s past its deadline" in act.reason


def test_an_empty_ladder_asks_once_then_escalates_once() -> None:
    p = replace(P, ladder=())
    f = facts(ladder=Ladder(rung=0, last_step_at=T0 + 700, last_request_at=T0 + 700, requests=1))
    [act] = decide(f, p, T0 + 1000)
    assert (act.action, act.rung) == ("escalate", 1)
    assert decide(climbed(f, act, T0 + 1000), p, T0 + 9999) == []


@pytest.mark.parametrize("state", ["stopped", "starting"])
def test_stopped_and_starting_agents_are_not_touched(state: AgentState) -> None:
    assert decide(facts(state=state), P, T0 + 99_999) == []


# -- crashes ------------------------------------------------------------------------------------------

def crashed(**kw: Any) -> AgentFacts:
    return facts(state="exited", exited_at=T0 + 100, **kw)


def test_a_crash_is_restarted_at_once_and_the_lost_turn_is_resent() -> None:
    actions = decide(crashed(lost_turn=True), P, T0 + 101)
    assert kinds(actions) == ["restart_resume", "resend"]
    assert actions[0].reason == "ada exited 1s ago; restarting it with its session resumed (restart 1 of 3)."
    assert actions[1].reason == "The crash lost the open turn of as-1; re-sending it."
    assert kinds(decide(crashed(lost_turn=False), P, T0 + 101)) == ["restart_resume"]
    assert kinds(decide(crashed(lost_turn=True, assignment=None), P, T0 + 101)) == ["restart_resume"]


def test_restarts_back_off_doubling_from_every() -> None:
    assert [restart_backoff(n, P) for n in range(5)] == [0, 60, 120, 240, 480]
    assert restart_backoff(99, P) == 3600
    f = crashed(restarts=2, last_restart_at=T0 + 50)
    assert decide(f, P, T0 + 169) == []
    [act] = decide(f, P, T0 + 170)
    assert act.reason.endswith("(restart 3 of 3, backoff 2m).")


def test_past_max_restarts_the_agent_is_marked_fatal_and_escalated_once() -> None:
    f = crashed(restarts=3, last_restart_at=T0 + 50, lead_state="idle")
    actions = decide(f, P, T0 + 10_000)
    assert kinds(actions) == ["mark_fatal", "escalate"]
    assert actions[1].lead == "lead"
    assert "after 3 restart(s) in this streak (max_restarts 3)" in actions[0].reason
    assert decide(replace(f, fatal=True), P, T0 + 10_000) == []


def test_an_agent_that_ran_an_hour_since_its_last_restart_starts_a_new_streak() -> None:
    f = crashed(restarts=3, last_restart_at=T0 + 100 - RESTART_STREAK_RESET)
    assert kinds(decide(f, P, T0 + 101)) == ["restart_resume"]
    assert "restart 1 of 3" in decide(f, P, T0 + 101)[0].reason


# -- usage limits -------------------------------------------------------------------------------------

def test_a_limited_agent_waits_for_its_reset_and_is_never_escalated_for_silence() -> None:
    f = facts(state="limited", limited_since=T0 + 100, resets_at=T0 + 20_000,
              ladder=Ladder(rung=1, last_step_at=T0, last_request_at=T0, requests=1))
    for now in (T0 + 700, T0 + 5000, T0 + 19_999):
        assert decide(f, P, now) == []
    [act] = decide(f, P, T0 + 20_030)
    assert (act.action, act.assignment) == ("resume_after_limit", "as-1")
    assert act.reason == "ada was parked at its usage limit and its usage limit reset 30s ago; re-sending as-1."


def test_without_a_usable_reset_time_limit_retry_decides() -> None:
    f = facts(state="limited", limited_since=T0 + 100, resets_at=None, assignment=None)
    assert decide(f, P, T0 + 3699) == []
    [act] = decide(f, P, T0 + 3700)
    assert "limit_retry (1h) passed with no reset time" in act.reason
    assert "short 'continue'" in act.reason
    stale = replace(f, resets_at=T0 + 50)  # a reset time from before the limit hit again
    assert decide(stale, P, T0 + 3699) == []


def test_with_on_limit_reassign_a_parked_agents_work_moves_only_where_the_tick_found_an_agent() -> None:
    f = facts(state="limited", limited_since=T0 + 100, resets_at=T0 + 20_000)
    moving = replace(P, on_limit="reassign")
    assert decide(f, moving, T0 + 200) == []  # no agent found: it waits
    found = replace(f, failover_to="bob", failover_why="bob is idle on account b.")
    assert decide(found, P, T0 + 200) == []  # on_limit = wait (the default): it waits
    [act] = decide(found, moving, T0 + 200)
    assert (act.action, act.agent, act.assignment) == ("reassign", "ada", "as-1")
    assert act.reason == ("ada is parked at its usage limit (5h30m until it may resume); on_limit = reassign "
                          "moves as-1 to bob: bob is idle on account b.")
    held = replace(found, lease="other", lease_holder="lead:me")
    assert [a.action for a in decide(held, moving, T0 + 200)] == ["notify_only"]
    reported = replace(found, assignment=replace(AS, has_valid_report=True))
    assert decide(reported, moving, T0 + 200) == []
    assert [a.action for a in decide(found, moving, T0 + 20_030)] == ["resume_after_limit"]  # reset: resume


def test_an_agent_whose_work_moved_is_told_so_on_resume_never_sent_a_continue() -> None:
    f = facts(state="limited", limited_since=T0 + 100, resets_at=None, assignment=None, handed_over="as-1")
    [act] = decide(f, P, T0 + 3700)
    assert (act.action, act.assignment) == ("resume_after_limit", None)
    assert "as-1 went to another agent meanwhile (no 'continue')" in act.reason


# -- approvals ----------------------------------------------------------------------------------------

def waiting(policy_approve: ApprovalPolicy | None = None, **kw: Any) -> tuple[AgentFacts, Policy]:
    ap = PendingApproval(since=T0 + 100, tool="Bash", command="rm -rf build", justification="clean the build")
    return facts(state="waiting_approval", approval=replace(ap, **kw)), replace(P, approve=policy_approve)


def test_a_held_approval_is_answered_by_policy() -> None:
    ro = ApprovalPolicy(allow=frozenset({"read-only"}), otherwise="deny")
    # The tick does not see the environment the command would run in (which `ls`?): only fleet's hook
    # may allow, so a command the policy would allow waits for a person here.
    f, p = waiting(ro, command="ls -la")
    assert decide(f, p, T0 + 101) == []
    f, p = waiting(ro)
    assert kinds(decide(f, p, T0 + 101)) == ["deny"]
    f, p = waiting(ro, held=False)  # the dialog is open: no exact answer possible, a person decides
    assert decide(f, p, T0 + 101) == []


def test_an_approval_past_approval_timeout_is_escalated_once_with_command_and_justification() -> None:
    f, p = waiting(ApprovalPolicy(allow=frozenset({"read-only"}), otherwise="ask"))
    assert decide(f, p, T0 + 999) == []
    [act] = decide(f, p, T0 + 1000)
    assert act.action == "escalate"
    assert act.reason == ("ada has waited 15m (approval_timeout 15m) for approval of Bash `rm -rf build`, justified "
                          "as: clean the build. Answer with `fleet approve ada` or `fleet deny ada`.")
    assert f.approval is not None
    assert decide(replace(f, approval=replace(f.approval, escalated_at=T0 + 1000)), p, T0 + 9999) == []


# -- leases -------------------------------------------------------------------------------------------

def test_lease_kinds() -> None:
    assert lease_kind(None, watchdog_holder="watchdog") == "free"
    assert lease_kind("watchdog", watchdog_holder="watchdog") == "watchdog"
    assert lease_kind("lead:mila", watchdog_holder="watchdog", assignment_holders=["lead:mila"]) == "assignment"
    assert lease_kind("bob", watchdog_holder="watchdog", assignment_holders=["lead:mila"]) == "other"


@pytest.mark.parametrize("lease", ["free", "assignment", "watchdog"])
def test_the_watchdog_acts_on_free_assignment_and_its_own_leases(lease: LeaseKind) -> None:
    assert kinds(decide(facts(lease=lease), P, T0 + 700)) == ["request_report"]


def test_an_agent_held_by_someone_else_only_gets_notices_one_per_grace_window() -> None:
    f = facts(lease="other", lease_holder="bob", state="exited", exited_at=T0 + 100, lost_turn=True)
    [act] = decide(f, P, T0 + 101)
    assert (act.action, act.rung) == ("notify_only", None)
    assert act.reason.startswith("ada is held by bob, so the watchdog touches nothing and only tells. It would act: "
                                 "ada exited 1s ago; restarting it")
    assert "Then: The crash lost the open turn of as-1" in act.reason
    assert decide(replace(f, last_notice_at=T0 + 101), P, T0 + 400) == []
    assert kinds(decide(replace(f, last_notice_at=T0 + 101), P, T0 + 401)) == ["notify_only"]


def test_a_held_agents_ladder_advances_through_notices_and_its_notify_rung_still_notifies() -> None:
    f = facts(lease="other", lease_holder="bob")
    [act] = decide(f, P, T0 + 700)
    assert (act.action, act.rung) == ("notify_only", 0)
    f = replace(climbed(f, act, T0 + 700), last_notice_at=T0 + 700)
    [act] = decide(f, P, T0 + 1000)
    assert (act.action, act.rung) == ("notify_only", 1)
    f = replace(climbed(f, act, T0 + 1000), last_notice_at=T0 + 1000)
    assert kinds(decide(f, P, T0 + 1300)) == ["notify"]


def test_policy_does_not_answer_approvals_for_an_agent_someone_else_holds() -> None:
    f, p = waiting(ApprovalPolicy(allow=frozenset({"read-only"}), otherwise="deny"), command="ls")
    assert decide(replace(f, lease="other", lease_holder="bob"), p, T0 + 101) == []


# -- the fleet ----------------------------------------------------------------------------------------

def test_decide_all_keeps_agent_order_and_adds_dispatch_when_work_waits_and_someone_is_free() -> None:
    free = facts(agent="bo", assignment=None)
    busy = facts(agent="ada")
    actions = decide_all([busy, free], P, T0 + 700, queued=2)
    assert [(a.agent, a.action) for a in actions] == [("ada", "request_report"), (None, "dispatch")]
    assert actions[1].reason == "2 queued assignment(s) wait and 1 agent(s) are idle with no open work."
    assert kinds(decide_all([busy, free], P, T0 + 700, queued=0)) == ["request_report"]
    assert kinds(decide_all([busy, replace(free, lease="other")], P, T0 + 700, queued=2)) == ["request_report"]


def test_actions_serialise_to_the_tick_json_shape() -> None:
    [act] = decide(facts(), P, T0 + 700)
    assert act.to_dict() == {"agent": "ada", "assignment": "as-1", "action": "request_report", "rung": 0,
                             "reason": act.reason, "lead": None}


def test_advance_records_steps_and_requests_and_ignores_off_ladder_actions() -> None:
    lad = Ladder()
    lad = advance(lad, Action("a", "as-1", "request_report", 0, "r"), T0)
    assert lad == Ladder(rung=0, last_step_at=T0, last_request_at=T0, requests=1)
    lad = advance(lad, Action("a", "as-1", "notify", 1, "r"), T0 + 5)
    assert lad == Ladder(rung=1, last_step_at=T0 + 5, last_request_at=T0, requests=1)
    assert advance(lad, Action("a", "as-1", "resend", None, "r"), T0 + 9) == lad


# -- properties ---------------------------------------------------------------------------------------

TIMES = st.one_of(st.none(), st.floats(T0 - 10_000, T0 + 10_000, allow_nan=False))
STATES: tuple[AgentState, ...] = get_args(AgentState)
POLICIES = st.builds(
    Policy,
    every=st.sampled_from([1.0, 10.0, 60.0]),
    idle_after=st.sampled_from([1.0, 30.0, 600.0]),
    report_grace=st.sampled_from([1.0, 20.0, 300.0]),
    stall_after=st.sampled_from([1.0, 45.0, 1800.0]),
    ladder=st.permutations(RUNGS).flatmap(lambda p: st.integers(0, 4).map(lambda n: tuple(p[:n]))),
    lead=st.sampled_from([None, "lead", "ada"]),
    max_restarts=st.integers(0, 4),
    approval_timeout=st.sampled_from([1.0, 900.0]),
    limit_retry=st.sampled_from([1.0, 3600.0]),
    on_limit=st.sampled_from(["wait", "reassign"]),
    approve=st.sampled_from([None, ApprovalPolicy(allow=frozenset({"read-only"}), otherwise="deny")]),
)
ANY_FACTS = st.builds(
    AgentFacts,
    agent=st.just("ada"),
    role=st.sampled_from(["worker", "explorer"]),
    state=st.sampled_from(STATES),
    last_progress_at=TIMES,
    last_work_at=TIMES,
    command_running=st.booleans(),
    idle_since=TIMES,
    assignment=st.one_of(st.none(), st.builds(
        OpenAssignment, id=st.just("as-1"), state=st.sampled_from(["sent", "working", "reported", "queued"]),
        sent_at=st.floats(T0 - 10_000, T0 + 10_000), has_valid_report=st.booleans(), deadline=TIMES)),
    ladder=st.builds(Ladder, rung=st.one_of(st.none(), st.integers(0, 6)), last_step_at=TIMES,
                     last_request_at=TIMES, requests=st.integers(0, 9)),
    lease=st.sampled_from(get_args(LeaseKind)),
    lease_holder=st.sampled_from([None, "bob"]),
    limited_since=TIMES,
    resets_at=TIMES,
    exited_at=TIMES,
    restarts=st.integers(0, 6),
    last_restart_at=TIMES,
    lost_turn=st.booleans(),
    fatal=st.booleans(),
    approval=st.one_of(st.none(), st.builds(PendingApproval, since=st.floats(T0 - 10_000, T0 + 10_000),
                                            tool=st.sampled_from(["Bash", "apply_patch"]),
                                            command=st.sampled_from(["ls", "rm -rf /"]), held=st.booleans(),
                                            escalated_at=TIMES)),
    lead_state=st.one_of(st.none(), st.sampled_from(STATES)),
    last_notice_at=TIMES,
    failover_to=st.sampled_from([None, "bob"]),
    failover_why=st.just("bob is idle on account b."),
    handed_over=st.sampled_from([None, "as-0"]),
)
NOW = st.floats(T0 - 10_000, T0 + 20_000, allow_nan=False)


@settings(deadline=None)  # no wall-clock limits in tests: the machine is shared
@given(f=ANY_FACTS, policy=POLICIES, now=NOW)
def test_no_live_agent_is_ever_interrupted_restarted_or_stopped(f: AgentFacts, policy: Policy, now: float) -> None:
    actions = decide(f, policy, now)
    if f.state != "exited" and shows_progress(f, policy, now):
        assert not [a for a in actions if a.action in DISRUPTIVE]
    assert len([a for a in actions if a.rung is not None]) <= 1  # one ladder step per tick, at most
    for a in actions:
        assert a.agent == "ada"
        assert a.reason[0].isupper() or a.reason.startswith("ada")
        assert a.reason.endswith(".")
        if f.lease == "other":
            assert a.action not in {"request_report", "remind", "interrupt_and_reprompt", "restart_resume",
                                    "resend", "resume_after_limit", "approve", "deny", "reassign"}
    if f.fatal:
        assert actions == []


@settings(deadline=None)
@given(f=ANY_FACTS, policy=POLICIES, now=NOW)
def test_work_moves_only_off_a_limited_agent_with_on_limit_reassign_and_a_place_found(
        f: AgentFacts, policy: Policy, now: float) -> None:
    actions = decide(f, policy, now)
    moves = [a for a in actions if a.action == "reassign"]
    if moves:
        assert actions == moves
        assert (policy.on_limit, f.state) == ("reassign", "limited")
        assert f.lease != "other"
        assert f.failover_to is not None
        assert f.assignment is not None
        assert f.assignment.state in ("sent", "working")
        assert not f.assignment.has_valid_report
        assert moves[0].assignment == f.assignment.id
        assert not f.fatal
    resumes = [a for a in actions if a.action == "resume_after_limit" and a.assignment is None]
    if resumes and f.handed_over:
        assert "no 'continue'" in resumes[0].reason


@dataclass
class World:
    """One agent on one assignment, the way the tick would see it after each event and action."""

    facts: AgentFacts
    asked: list[tuple[str, float]] = field(default_factory=list)  # (assignment, time) of report requests
    notices: list[float] = field(default_factory=list)
    steps: list[tuple[int, bool, float]] = field(default_factory=list)  # (rung, reset since the last step, time)
    reset: bool = False


EVENTS = st.sampled_from(["none", "none", "reply", "work", "work_on", "command", "command_done", "report",
                          "new_assignment"])
DTS = st.sampled_from([1.0, 10.0, 30.0, 60.0, 299.0, 300.0, 301.0, 900.0, 1799.0, 1800.0, 4000.0])


def happen(w: World, event: str, now: float) -> None:
    f = w.facts
    if event == "reply":  # a short turn without work (the agent answered but did nothing)
        w.facts = replace(f, state="idle", last_progress_at=now, idle_since=now)
    elif event == "work":  # a turn of its own, finished
        w.facts = replace(f, state="idle", last_progress_at=now, last_work_at=now, idle_since=now)
        w.reset = True
    elif event == "work_on":  # a turn of its own, still running
        w.facts = replace(f, state="working", last_progress_at=now, last_work_at=now)
        w.reset = True
    elif event == "command":
        w.facts = replace(f, state="working", command_running=True, last_progress_at=now)
    elif event == "command_done":
        w.facts = replace(f, state="idle", command_running=False, last_progress_at=now, idle_since=now)
    elif event == "report" and f.assignment is not None:
        w.facts = replace(f, assignment=replace(f.assignment, has_valid_report=True))
    elif event == "new_assignment":
        w.facts = replace(f, assignment=OpenAssignment(f"as-{now}", "sent", now), ladder=Ladder())
        w.reset = True


@settings(max_examples=500, deadline=None)
@example(policy=replace(P, idle_after=1.0), lease="free",  # new work right after a request, then quiet
         script=[(1.0, "none"), (1.0, "work"), (1.0, "none")])
@given(policy=POLICIES, lease=st.sampled_from(["free", "other"]),
       script=st.lists(st.tuples(DTS, EVENTS), min_size=1, max_size=60))
def test_simulated_ticks_keep_requests_a_grace_apart_climb_one_rung_at_a_time_and_reset_on_report_or_work(
        policy: Policy, lease: LeaseKind, script: list[tuple[float, str]]) -> None:
    w = World(facts(lease=lease, lease_holder="bob"))
    now = T0 + 60
    for dt, event in script:
        now += dt
        happen(w, event, now)
        f = w.facts
        live = shows_progress(f, policy, now)
        for act in decide(f, policy, now):
            assert f.assignment is not None
            assert not f.assignment.has_valid_report
            if act.action in DISRUPTIVE:
                assert not live
            if act.action in ("request_report", "remind"):
                w.asked.append((f.assignment.id, now))
            if act.action == "notify_only":
                w.notices.append(now)
                w.facts = replace(w.facts, last_notice_at=now)
            if act.rung is not None:
                w.steps.append((act.rung, w.reset, now))
                w.reset = False
            w.facts = climbed(w.facts, act, now)
    for (one, earlier), (other, later) in zip(w.asked, w.asked[1:], strict=False):
        assert one != other or later - earlier >= policy.report_grace  # per assignment: a new one may be asked
    for earlier, later in zip(w.notices, w.notices[1:], strict=False):
        assert later - earlier >= policy.report_grace
    previous: tuple[int, float] | None = None
    for rung, reset, at in w.steps:
        expected = 0 if previous is None or reset else previous[0] + 1
        assert rung == expected, w.steps
        if previous is not None and not reset:
            assert at - previous[1] >= policy.report_grace, w.steps
        previous = (rung, at)


def test_every_action_kind_is_documented_in_the_module() -> None:
    import inspect

    import fleet.watchdog.decide as mod

    text = inspect.getsource(mod)
    for kind in get_args(ActionKind):
        assert f'"{kind}",  #' in text
