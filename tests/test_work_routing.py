"""Routing: the pick satisfies every constraint, ranks as documented, and every other agent gets a reason."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleet.work.routing import (
    AgentFacts,
    Need,
    NoAgentAvailable,
    SkillNotFound,
    check_skills,
    no_agent_error,
    rank_key,
    refusal,
    route,
    skill_holders,
)


def agent(name: str, **kw: object) -> AgentFacts:
    base: dict[str, object] = {"role": "worker", "state": "idle", "skills": frozenset({"pdf"})}
    return AgentFacts(name=name, **{**base, **kw})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("facts", "need", "why"),
    [
        (agent("a", role="lead"), Need(), "lead"),
        (agent("a", role="explorer"), Need(needs_write=True), "read_only"),
        (agent("a"), Need(skills=frozenset({"pdf", "xlsx"})), "missing_skill"),
        (agent("a", state="stopped"), Need(), "not_running"),
        (agent("a", state="exited"), Need(), "not_running"),
        (agent("a", state="starting"), Need(), "starting"),
        (agent("a", state="limited"), Need(), "limited"),
        (agent("a", limited=True), Need(), "limited"),
        (agent("a", parked=True), Need(), "parked"),
        (agent("a", leased_by_other=True), Need(), "leased"),
        (agent("a", state="working"), Need(), "busy"),
        (agent("a", state="waiting_approval"), Need(), "busy"),
        (agent("a", role="explorer", state="working"), Need(needs_write=True), "read_only"),  # lasting first
    ],
)
def test_each_constraint_refuses_with_its_reason(facts: AgentFacts, need: Need, why: str) -> None:
    got = refusal(facts, need)
    assert got is not None
    assert got.why == why
    assert got.detail


def test_an_explorer_may_take_read_only_work() -> None:
    assert refusal(agent("a", role="explorer"), Need(skills=frozenset({"pdf"}))) is None


def test_the_pick_prefers_headroom_then_fewest_open_then_least_recent_then_name() -> None:
    agents = [
        agent("near", used_percent=95.0),
        agent("loaded", open_assignments=2),
        agent("recent", open_assignments=1, last_assigned_at=200.0),
        agent("older", open_assignments=1, last_assigned_at=100.0),
        agent("zed", open_assignments=1),
        agent("busy", state="working"),
    ]
    result = route(agents, Need(skills=frozenset({"pdf"}), needs_write=True))
    assert result.agent == "zed"  # never assigned beats assigned long ago
    assert result.ranked == ("older", "recent", "loaded", "near")
    assert [r.to_dict() for r in result.refusals] == [
        {"agent": "busy", "why": "busy", "detail": "it is working"}]


def test_an_agent_near_its_limit_is_picked_when_it_is_the_only_one() -> None:
    assert route([agent("near", used_percent=99.0)], Need()).agent == "near"


def test_only_restricts_the_choice_to_the_named_agent() -> None:
    agents = [agent("a"), agent("b", state="working")]
    assert route(agents, Need(only="b")).agent is None
    assert [r.agent for r in route(agents, Need(only="b")).refusals] == ["b"]
    assert route(agents, Need(only="a")).agent == "a"


def test_no_pick_gives_an_error_with_every_reason() -> None:
    result = route([agent("mila", state="working"), agent("noor", role="explorer")], Need(needs_write=True))
    err = no_agent_error(result, Need(needs_write=True))
    assert err.code == "no_agent_available"
    assert err.retryable
    assert err.data["reasons"][0] == {"agent": "mila", "why": "busy", "detail": "it is working"}
    assert err.data["reasons"][1]["why"] == "read_only"
    assert "--queue" in err.hint
    assert "noor is not among" in no_agent_error(route([], Need(only="noor")), Need(only="noor")).message


def test_a_skill_nobody_has_is_skill_not_found_and_one_the_target_lacks_names_who_has_it() -> None:
    agents = [agent("mila", skills=frozenset({"pdf"})), agent("noor", skills=frozenset({"pdf", "xlsx"}))]
    assert skill_holders(agents, ["xlsx", "pdf"]) == {"pdf": ["mila", "noor"], "xlsx": ["noor"]}
    check_skills(agents, Need(skills=frozenset({"pdf", "xlsx"})))
    with pytest.raises(SkillNotFound) as info:
        check_skills(agents, Need(skills=frozenset({"docx", "pdf"})))
    assert info.value.data["skills"] == {"docx": []}
    assert "docx (held by no agent)" in info.value.message
    with pytest.raises(SkillNotFound) as info:
        check_skills(agents, Need(skills=frozenset({"xlsx"}), only="mila"))
    assert info.value.data["skills"] == {"xlsx": ["noor"]}
    assert "xlsx (held by noor) for agent mila" in info.value.message


# -- properties ------------------------------------------------------------------------------------

names = st.sampled_from(["ada", "bo", "cy", "di", "ed", "fa"])
facts = st.builds(
    AgentFacts,
    name=names,
    role=st.sampled_from(["explorer", "worker", "lead"]),
    state=st.sampled_from(["idle", "idle", "working", "waiting_approval", "starting", "stopped", "exited",
                           "limited"]),
    skills=st.frozensets(st.sampled_from(["pdf", "xlsx", "doc"])),
    leased_by_other=st.booleans(),
    parked=st.booleans(),
    limited=st.booleans(),
    open_assignments=st.integers(0, 3),
    last_assigned_at=st.none() | st.floats(0, 1000),
    used_percent=st.none() | st.floats(0, 100),
)
fleets = st.lists(facts, max_size=6, unique_by=lambda a: a.name)
needs = st.builds(Need, skills=st.frozensets(st.sampled_from(["pdf", "xlsx", "doc"]), max_size=2),
                  needs_write=st.booleans(), only=st.none() | names)


@given(fleets, needs)
def test_the_pick_satisfies_every_constraint(agents: list[AgentFacts], need: Need) -> None:
    result = route(agents, need)
    if result.agent is None:
        return
    [pick] = [a for a in agents if a.name == result.agent]
    assert pick.state == "idle"
    assert not pick.leased_by_other
    assert not pick.parked
    assert not pick.limited
    assert need.skills <= pick.skills
    assert pick.role != "lead"
    assert pick.role == "worker" or not need.needs_write
    assert need.only in (None, pick.name)


@given(fleets, needs)
def test_every_agent_considered_is_either_eligible_or_has_a_reason(agents: list[AgentFacts], need: Need) -> None:
    result = route(agents, need)
    considered = {a.name for a in agents if need.only in (None, a.name)}
    picked = {result.agent} if result.agent else set()
    refused = {r.agent for r in result.refusals}
    assert picked | set(result.ranked) | refused == considered
    assert not (picked | set(result.ranked)) & refused
    eligible = [a for a in agents if a.name in picked | set(result.ranked)]
    assert all(rank_key(a) >= rank_key(next(b for b in agents if b.name == result.agent)) for a in eligible)


@given(fleets, needs, st.randoms())
def test_routing_is_deterministic_whatever_the_input_order(agents: list[AgentFacts], need: Need,
                                                          rnd: random.Random) -> None:
    shuffled = list(agents)
    rnd.shuffle(shuffled)
    assert route(shuffled, need) == route(agents, need)


@given(fleets, needs)
def test_no_pick_means_an_error_with_one_reason_per_agent(agents: list[AgentFacts], need: Need) -> None:
    result = route(agents, need)
    if result.agent is not None:
        return
    err = no_agent_error(result, need)
    assert isinstance(err, NoAgentAvailable)
    assert len(err.data["reasons"]) == len([a for a in agents if need.only in (None, a.name)])
