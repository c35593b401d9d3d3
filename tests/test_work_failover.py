"""The failover choice: a parked agent's assignment goes only to an idle, free agent on another known
account with headroom that matches the work's skills, role, repository and paths; else it stays,
with a reason for every agent. Also: agents on one account share its limits in routing."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleet.work.failover import (
    MAX_NOTE_FILES,
    Candidate,
    Choice,
    Work,
    choose,
    handover_note,
    rank_key,
)
from fleet.work.routing import NEAR_LIMIT_PERCENT, AgentFacts, Need, refusal, share_accounts


def facts(name: str, **kw: object) -> AgentFacts:
    base: dict[str, object] = {"role": "worker", "state": "idle", "account": f"acct-{name}"}
    return AgentFacts(name=name, **{**base, **kw})  # type: ignore[arg-type]


PARKED = facts("p", state="limited", account="acct-p", open_assignments=1)
WORK = Work("as-1", "p", Need())


def pick(*others: Candidate, work: Work = WORK, parked: AgentFacts = PARKED) -> Choice:
    return choose(work, [Candidate(parked), *others])


def test_an_idle_agent_on_another_account_takes_the_work() -> None:
    choice = pick(Candidate(facts("b")))
    assert choice.agent == "b"
    assert "acct-b" in choice.reason
    assert [(r.agent, r.why) for r in choice.refused] == [("p", "parked")]


def test_with_the_parked_agents_account_unknown_nothing_moves() -> None:
    choice = pick(Candidate(facts("b")), parked=facts("p", state="limited", account=None))
    assert choice.agent is None
    assert "account is unknown" in choice.reason


@pytest.mark.parametrize(("candidate", "why"), [
    (Candidate(facts("b", account="acct-p")), "same_account"),
    (Candidate(facts("b", account=None)), "unknown_account"),
    (Candidate(facts("b", state="working")), "busy"),
    (Candidate(facts("b", state="stopped")), "not_running"),
    (Candidate(facts("b", state="limited")), "limited"),
    (Candidate(facts("b", leased_by_other=True)), "leased"),
    (Candidate(facts("b", open_assignments=1)), "has_work"),
    (Candidate(facts("b", role="lead")), "lead"),
    (Candidate(facts("b", used_percent=NEAR_LIMIT_PERCENT)), "no_headroom"),
    (Candidate(facts("b"), repo="/r"), "repository"),
    (Candidate(facts("b"), misfit="'x' is outside the working directory"), "scope"),
    (Candidate(facts("b"), barred="taking this assignment over failed before: dirty"), "barred"),
])
def test_each_unfit_agent_is_refused_with_its_reason(candidate: Candidate, why: str) -> None:
    choice = pick(candidate)
    assert choice.agent is None
    assert ("b", why) in [(r.agent, r.why) for r in choice.refused]
    assert "stays parked" in choice.reason


def test_the_work_needs_its_skills_its_role_and_its_repository() -> None:
    work = Work("as-1", "p", Need(skills=frozenset({"pdf"}), needs_write=True), repo="/r")
    explorer = Candidate(facts("a", role="explorer", skills=frozenset({"pdf"})), repo="/r")
    unskilled = Candidate(facts("b"), repo="/r")
    elsewhere = Candidate(facts("c", skills=frozenset({"pdf"})), repo="/other")
    fit = Candidate(facts("d", skills=frozenset({"pdf"})), repo="/r")
    choice = pick(explorer, unskilled, elsewhere, fit, work=work, parked=PARKED)
    assert choice.agent == "d"
    assert {r.agent: r.why for r in choice.refused} == {"p": "parked", "a": "read_only", "b": "missing_skill",
                                                        "c": "repository"}


def test_an_agent_whose_account_mate_is_limited_has_no_headroom() -> None:
    mate = Candidate(facts("m", state="limited", account="acct-b"))
    choice = pick(Candidate(facts("b", account="acct-b")), mate)
    assert choice.agent is None
    assert {r.agent: r.why for r in choice.refused}["b"] == "limited"


def test_the_least_used_account_wins_then_the_least_recently_assigned() -> None:
    busy = Candidate(facts("a", used_percent=60.0))
    calm = Candidate(facts("b", used_percent=10.0, last_assigned_at=5.0))
    fresh = Candidate(facts("c", used_percent=10.0))
    assert pick(busy, calm, fresh).agent == "c"
    assert pick(busy, calm).agent == "b"


def test_sharing_an_account_spreads_its_limit_and_its_highest_use() -> None:
    agents = [facts("a", account="x", state="limited", used_percent=20.0), facts("b", account="x", used_percent=70.0),
              facts("c", account="y", used_percent=5.0), facts("d", account=None, used_percent=99.0)]
    shared = {f.name: f for f in share_accounts(agents)}
    assert (shared["b"].limited, shared["b"].used_percent) == (True, 70.0)
    assert shared["a"].used_percent == 70.0
    assert (shared["c"].limited, shared["c"].used_percent) == (False, 5.0)
    assert (shared["d"].limited, shared["d"].used_percent) == (False, 99.0)
    assert refusal(shared["b"], Need()) is not None
    assert "account x" in refusal(shared["b"], Need()).detail  # type: ignore[union-attr]


# -- properties -------------------------------------------------------------------------------------

NAMES = [f"a{i}" for i in range(6)]
ACCOUNTS = st.none() | st.sampled_from(["x", "y", "z"])
candidates = st.lists(st.builds(
    Candidate,
    facts=st.builds(AgentFacts, name=st.sampled_from(NAMES), role=st.sampled_from(["explorer", "worker", "lead"]),
                    state=st.sampled_from(["idle", "working", "limited", "stopped", "starting", "exited"]),
                    skills=st.frozensets(st.sampled_from(["pdf", "xlsx"])), leased_by_other=st.booleans(),
                    limited=st.booleans(), open_assignments=st.integers(0, 2),
                    last_assigned_at=st.none() | st.floats(0, 100), used_percent=st.none() | st.floats(0, 100),
                    account=ACCOUNTS),
    repo=st.none() | st.sampled_from(["/r", "/s"]), misfit=st.none() | st.just("outside"),
    barred=st.none() | st.just("failed before")),
    max_size=6, unique_by=lambda c: c.facts.name)
works = st.builds(Work, assignment=st.just("as-1"), agent=st.sampled_from(NAMES),
                  need=st.builds(Need, skills=st.frozensets(st.sampled_from(["pdf", "xlsx"])),
                                 needs_write=st.booleans()),
                  repo=st.none() | st.sampled_from(["/r", "/s"]))


@given(works, candidates)
def test_a_pick_is_on_another_known_account_with_headroom_and_fits_the_work(work: Work, pool: list[Candidate]) -> None:
    choice = choose(work, pool)
    if choice.agent is None:
        return
    by_name = {c.facts.name: c for c in pool}
    shared = {f.name: f for f in share_accounts([c.facts for c in pool])}
    picked, parked = by_name[choice.agent], shared[work.agent]
    f = shared[choice.agent]
    assert choice.agent != work.agent
    assert f.account is not None
    assert parked.account is not None
    assert f.account != parked.account
    assert not f.limited
    assert f.state == "idle"
    assert not f.leased_by_other
    assert f.open_assignments == 0
    assert f.used_percent is None or f.used_percent < NEAR_LIMIT_PERCENT
    assert work.need.skills <= f.skills
    assert f.role != "lead"
    assert (f.role == "worker" or not work.need.needs_write)
    assert picked.repo == work.repo
    assert picked.misfit is None
    assert picked.barred is None
    assert not any(r.agent == choice.agent for r in choice.refused)


@given(works, candidates, st.randoms(use_true_random=False))
def test_the_choice_does_not_depend_on_the_order_of_the_agents(work: Work, pool: list[Candidate],
                                                              rnd: object) -> None:
    shuffled = list(pool)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert choose(work, pool) == choose(work, shuffled)


@given(works, candidates)
def test_every_other_agent_gets_exactly_one_reason_and_the_pick_ranks_first(work: Work, pool: list[Candidate]) -> None:
    choice = choose(work, pool)
    names = {c.facts.name for c in pool}
    if work.agent not in names or choice.agent is None:
        assert choice.agent is None
        return
    refused = [r.agent for r in choice.refused]
    assert sorted([*refused, choice.agent]) == sorted(names)
    shared = {f.name: f for f in share_accounts([c.facts for c in pool])}
    eligible = [shared[n] for n in names - set(refused)]
    assert min(eligible, key=rank_key).name == choice.agent


@given(st.lists(st.text(max_size=40), max_size=60), st.booleans())
def test_a_handover_note_quotes_every_file_name_and_adds_no_line_of_its_own_from_them(
        names: list[str], same: bool) -> None:
    note = handover_note(assignment="as-1", first="p", changed=names, same_cwd=same, first_cwd="/w/p")
    assert note.count("\n") == 3  # two lines, then the blank line that ends it
    for name in names[:MAX_NOTE_FILES]:
        assert json.dumps(name[:200], ensure_ascii=True) in note


def test_a_worktree_note_names_the_branch_the_new_attempt_continues() -> None:
    note = handover_note(assignment="as-1", first="p", changed=["a.txt"], same_cwd=False, first_cwd="/w/p",
                         branch="fleet/as-1", commit="0123456789abcdef")
    assert "fleet/as-1" in note
    assert "0123456789ab" in note
    assert "in your working directory" in note
    assert "could not tell" in handover_note(assignment="as-1", first="p", changed=None, same_cwd=True,
                                             first_cwd="/w/p")
