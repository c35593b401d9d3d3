"""Routing: which agent takes an assignment, or why none can. Pure: facts in, a decision out.

An agent is eligible when it is running and idle, not leased by anyone else, not parked, not at a
usage limit, holds every required skill, and its role allows the work (a write needs a `worker`;
an `explorer` only reads; a `lead` never takes assignments). Among the eligible, the pick is the
first by: not near its rate limit (`NEAR_LIMIT_PERCENT`), fewest open assignments, least recently
assigned (never assigned first), name. Every other agent gets one reason, the most lasting first
(role, missing skill) so a caller sees what waiting will not fix before what it will (busy).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final, Literal

from fleet.errors import NoAgentAvailable, SkillNotFound
from fleet.vocab import BUSY_AGENT_STATES, DOWN_AGENT_STATES

Role = Literal["explorer", "worker", "lead"]
Why = Literal["lead", "read_only", "missing_skill", "not_running", "starting", "limited", "parked", "leased",
              "busy"]

#: An agent's rank among the eligible (`rank_key`): smaller is better.
RankKey = tuple[bool, int, bool, float, str]

#: At or above this share of its rate-limit window an agent is picked only if no other can take the
#: work: it may hit the limit mid-task.
NEAR_LIMIT_PERCENT: Final = 90.0


@dataclass(frozen=True)
class AgentFacts:
    """What routing needs to know about one agent, gathered by the caller at one moment.

    `state` is the agent's runtime state (`idle`, `working`, `waiting_approval`, `starting`,
    `stopped`, `exited`, `limited`); `used_percent` the higher of its primary/secondary rate-limit
    windows, None when unknown; `account` its account identity (`fleet.agents.account`), None when
    unknown. `share_accounts` makes agents on one account count as one.
    """

    name: str
    role: Role
    state: str
    skills: frozenset[str] = frozenset()
    leased_by_other: bool = False
    parked: bool = False
    limited: bool = False
    open_assignments: int = 0
    last_assigned_at: float | None = None
    used_percent: float | None = None
    account: str | None = None


@dataclass(frozen=True)
class Need:
    """What the assignment requires. `only` restricts the choice to one named agent (`--to`)."""

    skills: frozenset[str] = frozenset()
    needs_write: bool = False
    only: str | None = None


@dataclass(frozen=True)
class Refusal:
    """Why one agent cannot take the work: `why`, a word of the chooser's vocabulary (routing's `Why`,
    failover's `fleet.work.failover.Why`), and a sentence (`detail`)."""

    agent: str
    why: str
    detail: str

    def to_dict(self) -> dict[str, str]:
        return {"agent": self.agent, "why": self.why, "detail": self.detail}


@dataclass(frozen=True)
class Route:
    """The pick (None when no agent can take it), the other eligible agents in rank order, a
    refusal for every agent considered that cannot, and the pick's rank key (`rank_key`)."""

    agent: str | None
    ranked: tuple[str, ...]
    refusals: tuple[Refusal, ...]
    key: RankKey | None = None


def refusal(agent: AgentFacts, need: Need) -> Refusal | None:
    """Why `agent` cannot take work with `need` now, or None if it can."""
    name = agent.name
    if agent.role == "lead":
        return Refusal(name, "lead", "it is a lead; leads hand out work and never take assignments")
    if need.needs_write and agent.role != "worker":
        return Refusal(name, "read_only", f"it is an {agent.role} (read-only); writing needs a worker")
    missing = sorted(need.skills - agent.skills)
    if missing:
        return Refusal(name, "missing_skill", f"it lacks the skill(s) {', '.join(missing)}")
    if agent.state in DOWN_AGENT_STATES:
        return Refusal(name, "not_running", f"it is {agent.state}; start it with `fleet up {name}`")
    if agent.state == "starting":
        return Refusal(name, "starting", "it is still starting")
    if agent.state == "limited":
        return Refusal(name, "limited", "it hit its usage limit")
    if agent.limited:
        return Refusal(name, "limited", f"its account {agent.account or ''} is at its usage limit".replace("  ", " "))
    if agent.parked:
        return Refusal(name, "parked", "it is parked")
    if agent.leased_by_other:
        return Refusal(name, "leased", "someone else holds its lease")
    if agent.state != "idle":
        what = "waiting for an approval" if agent.state == "waiting_approval" else agent.state
        return Refusal(name, "busy", f"it is {what}" if agent.state in BUSY_AGENT_STATES else f"its state is {what}")
    return None


def share_accounts(agents: Sequence[AgentFacts]) -> list[AgentFacts]:
    """`agents` with each known account's limits shared: every agent of an account where one is at
    its usage limit counts as limited, and each one's `used_percent` is the highest known on its
    account (they draw on one allowance). Agents of unknown account stand alone. Order kept."""
    limited: set[str] = set()
    used: dict[str, float] = {}
    for a in agents:
        if a.account is None:
            continue
        if a.limited or a.state == "limited":
            limited.add(a.account)
        if a.used_percent is not None:
            used[a.account] = max(used.get(a.account, a.used_percent), a.used_percent)
    return [a if a.account is None else replace(a, limited=a.limited or a.account in limited,
                                                used_percent=used.get(a.account, a.used_percent))
            for a in agents]


def rank_key(agent: AgentFacts) -> RankKey:
    """Smaller is better: not near the limit, fewest open assignments, least recently assigned, name."""
    near = agent.used_percent is not None and agent.used_percent >= NEAR_LIMIT_PERCENT
    last = agent.last_assigned_at
    return (near, agent.open_assignments, last is not None, last if last is not None else 0.0, agent.name)


def route(agents: Sequence[AgentFacts], need: Need) -> Route:
    """Pick the agent for `need` among `agents` (see the module docstring). Deterministic: the
    order of `agents` does not matter. With `need.only`, only that agent is considered."""
    pool = [a for a in agents if need.only is None or a.name == need.only]
    refusals: list[Refusal] = []
    eligible: list[AgentFacts] = []
    for agent in sorted(pool, key=lambda a: a.name):
        why = refusal(agent, need)
        if why is None:
            eligible.append(agent)
        else:
            refusals.append(why)
    keys = sorted(rank_key(a) for a in eligible)
    ranked = tuple(k[-1] for k in keys)
    return Route(agent=ranked[0] if ranked else None, ranked=ranked[1:], refusals=tuple(refusals),
                 key=keys[0] if keys else None)


def skill_holders(agents: Iterable[AgentFacts], skills: Iterable[str]) -> dict[str, list[str]]:
    """For each skill, the agents (sorted) that have it."""
    pool = list(agents)
    return {s: sorted(a.name for a in pool if s in a.skills) for s in sorted(set(skills))}


def check_skills(agents: Sequence[AgentFacts], need: Need) -> None:
    """Raise `SkillNotFound` when a required skill is held by no agent (or, with `need.only`, not by
    that agent), naming the agents that do have each missing skill. Run it before `route`: a skill
    nobody has is a mistake in the request, not a reason to wait."""
    holders = skill_holders(agents, need.skills)
    if need.only is not None:
        missing = {s: who for s, who in holders.items() if need.only not in who}
        where = f"agent {need.only}"
    else:
        missing = {s: who for s, who in holders.items() if not who}
        where = "any agent"
    if not missing:
        return
    parts = [f"{s} ({'held by ' + ', '.join(who) if who else 'held by no agent'})" for s, who in missing.items()]
    raise SkillNotFound(
        f"No skill {', '.join(parts)} for {where}.",
        hint="Run `fleet skills` to see each agent's skills; skill names are as Codex lists them "
             "(plugin skills as plugin:skill).",
        skills=missing,
    )


def no_agent_error(result: Route, need: Need) -> NoAgentAvailable:
    """The error for a route with no pick, carrying every agent's reason (`reasons`)."""
    reasons: list[dict[str, Any]] = [r.to_dict() for r in result.refusals]
    summary = "; ".join(f"{r.agent}: {r.why}" for r in result.refusals) or (
        f"{need.only} is not among the agents considered" if need.only else "no agents are configured")
    target = f"Agent {need.only} cannot" if need.only else "No agent can"
    return NoAgentAvailable(
        f"{target} take this assignment now ({summary}).",
        hint="Pass --queue to keep it until an agent frees up, or see `fleet status` for each agent.",
        reasons=reasons,
    )
