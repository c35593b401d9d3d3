"""Failover: which agent takes over the open assignment of an agent parked at its usage limit, or
why none can. Pure: facts in, a choice and its reasons out (`fleet.service.failover` gathers them
and moves the work).

With `[watchdog] on_limit = "reassign"`, an assignment goes to another agent only when that agent:

- is on a **known account other than the parked agent's** (agents on one account share its limits,
  so moving work between them gains nothing); when the parked agent's account is unknown, no agent
  is known to be on another, and nothing moves;
- has **headroom**: no agent on its account is at its usage limit (`share_accounts`), and its
  account's rate-limit use is below `NEAR_LIMIT_PERCENT` (or unknown);
- is **idle and free**: running, idle, no lease held by anyone else, no open assignment of its own;
- **matches the work**: every required skill, a role that may do it (`routing.refusal`: a write
  needs a worker, a lead never takes work), the same repository (a repo agent's assignment continues
  on its branch, so only a worktree of that repository can take it; a plain agent's work stays with
  plain agents), and a working directory the assignment's paths fit.

Among those, the pick is the first by: lower account use (unknown counts as none), least recently
assigned (never assigned first), name. Deterministic and independent of the order of the agents.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

from .routing import NEAR_LIMIT_PERCENT, AgentFacts, Need, Refusal, refusal, share_accounts

Why = Literal["parked", "barred", "unknown_account", "same_account", "no_headroom", "repository", "scope", "has_work",
              "lead", "read_only", "missing_skill", "not_running", "starting", "limited", "leased", "busy"]

#: Why nothing moves when the parked agent's own account is unknown.
UNKNOWN_ACCOUNT: Final = ("its account is unknown (set `account` for it in fleet.toml, or log its Codex home "
                          "in), so no agent is known to be on another")


@dataclass(frozen=True)
class Candidate:
    """One configured agent as failover sees it: its routing facts (shared per account or not:
    `choose` shares them), the repository it works in (resolved; None for a plain agent), and why
    the assignment's paths do not fit its cwd (None when they do); `barred`: see below."""

    facts: AgentFacts
    repo: str | None = None
    misfit: str | None = None
    #: Why this agent may not take this assignment whatever its state (a takeover of it failed before).
    barred: str | None = None


@dataclass(frozen=True)
class Work:
    """The parked assignment: its id, its agent, what it needs, and its repository (None: plain)."""

    assignment: str
    agent: str
    need: Need
    repo: str | None = None


@dataclass(frozen=True)
class Choice:
    """The agent to move the work to (None: it stays and waits), a sentence saying why, and why each
    other agent could not take it."""

    agent: str | None
    reason: str
    refused: tuple[Refusal, ...] = ()


def choose(work: Work, candidates: Sequence[Candidate]) -> Choice:
    """Where `work` goes (see the module docstring); `candidates` are every configured agent, the
    parked one included (its account is read from there)."""
    shared = {f.name: f for f in share_accounts([c.facts for c in candidates])}
    parked = shared.get(work.agent)
    home = parked.account if parked is not None else None
    if home is None:
        return Choice(None, f"{work.agent} stays parked: {UNKNOWN_ACCOUNT}.")
    refused: list[Refusal] = []
    fit: list[AgentFacts] = []
    for c in sorted(candidates, key=lambda c: c.facts.name):
        f = shared[c.facts.name]
        why = _refusal(work, c, f, home)
        if why is None:
            fit.append(f)
        else:
            refused.append(why)
    if not fit:
        summary = "; ".join(f"{r.agent}: {r.detail}" for r in refused if r.why != "parked") or "no other agent"
        return Choice(None, f"{work.agent} stays parked: no agent on another account can take {work.assignment} "
                            f"now ({summary}).", tuple(refused))
    best = min(fit, key=rank_key)
    use = f", its account {best.used_percent:.0f}% used" if best.used_percent is not None else ""
    return Choice(best.name, f"{best.name} is idle on account {best.account}{use} and matches {work.assignment}'s "
                             f"skills, role and repository.", tuple(refused))


def rank_key(f: AgentFacts) -> tuple[float, bool, float, str]:
    """Smaller is better: lower account use, least recently assigned (never first), name."""
    last = f.last_assigned_at
    return (f.used_percent if f.used_percent is not None else 0.0, last is not None,
            last if last is not None else 0.0, f.name)


def _refusal(work: Work, c: Candidate, f: AgentFacts, home: str) -> Refusal | None:
    name = f.name
    if name == work.agent:
        return Refusal(name, "parked", "it is the parked agent")
    if f.account is None:
        return Refusal(name, "unknown_account", "its account is unknown")
    if f.account == home:
        return Refusal(name, "same_account", f"it shares account {home} and so its limit")
    if c.barred is not None:
        return Refusal(name, "barred", c.barred)
    if c.repo != work.repo:
        want = f"a worktree of {work.repo}" if work.repo else "a plain working directory"
        return Refusal(name, "repository", f"the work needs {want}")
    why = refusal(f, work.need)
    if why is not None:
        return Refusal(name, why.why, why.detail)
    if c.misfit is not None:
        return Refusal(name, "scope", f"the assignment's paths do not fit its cwd: {c.misfit}")
    if f.used_percent is not None and f.used_percent >= NEAR_LIMIT_PERCENT:
        return Refusal(name, "no_headroom", f"its account is {f.used_percent:.0f}% used "
                                            f"(at least {NEAR_LIMIT_PERCENT:.0f}%)")
    if f.open_assignments > 0:
        return Refusal(name, "has_work", "it has open work of its own")
    return None


#: Files a handover note names; the rest are counted (the first attempt's file names are the model's
#: text: each is quoted as JSON, so none can add a line to the new prompt).
MAX_NOTE_FILES: Final = 30
MAX_NOTE_NAME: Final = 200


def handover_note(*, assignment: str, first: str, changed: Sequence[str] | None, same_cwd: bool,
                  first_cwd: str, branch: str | None = None, commit: str | None = None) -> str:
    """The paragraph that opens the new attempt's prompt: what the first attempt (by `first`, parked
    at its usage limit) had done. `changed` None: fleet could not tell. `branch`: a worktree
    assignment's branch, which the new attempt continues (with the first attempt's work committed
    to it as `commit`)."""
    lines = [f"Assignment {assignment} continues the work of agent {first}, which stopped at its usage limit; "
             "that attempt has ended and will not come back to it. Finish the task below and report on the "
             "whole of it."]
    if branch is not None:
        lines.append(f"You are on the assignment's branch {branch}, which holds the first attempt's work"
                     + (f" (committed as {commit[:12]})" if commit else "") + ": continue from there.")
    if changed is None:
        lines.append("fleet could not tell which files the first attempt changed; check the state of the files "
                     "before you rely on them.")
    elif not changed:
        lines.append("The first attempt changed no file.")
    else:
        where = ("in your working directory" if same_cwd or branch is not None
                 else f"in its own working directory {json_text(first_cwd)}, not in yours: redo what you need")
        names = ", ".join(json_text(p) for p in changed[:MAX_NOTE_FILES])
        more = f" and {len(changed) - MAX_NOTE_FILES} more" if len(changed) > MAX_NOTE_FILES else ""
        lines.append(f"The first attempt changed these files ({where}): {names}{more}.")
    return "\n".join(lines) + "\n\n"


def json_text(text: str) -> str:
    """`text` as a JSON string, cut at `MAX_NOTE_NAME`: control characters and quotes escaped."""
    return json.dumps(text[:MAX_NOTE_NAME], ensure_ascii=True)
