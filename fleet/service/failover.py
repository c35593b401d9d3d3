"""Failover (`[watchdog] on_limit = "reassign"`): moving the open assignment of an agent parked at
its usage limit to an idle agent on another account. The choice is `fleet.work.failover.choose`
(pure); this module gathers its facts for the tick (`limit_facts`), and moves the work (`reassign`).

A reassignment, each step only after the one before it succeeded:

1. Under the routing lock, the agent is chosen again from fresh facts and its lease is taken for the
   assignment (`assignment:<id>`, as a first send does), so no other router picks it meanwhile.
2. What the first attempt changed: its cwd compared with the assignment's baseline, exactly as
   verification would. Where the new attempt builds on those files (a repo agent continues the
   assignment's branch; a plain agent with the same cwd finds them in place), the new attempt's
   verification will not see them, so every change must lie inside the write paths and be seen in
   full; otherwise nothing moves (`work_not_movable`, recorded once per agent as `reassign_refused`,
   after which the tick no longer offers that assignment for failover) and it waits for the reset.
   Any other lasting failure on the new agent's side (its worktree is dirty, the prompt does not fit)
   is recorded the same way (key `to:<agent>`), and that agent is not chosen for it again.
3. A repo agent: the first attempt's changed files are committed to the assignment's branch (as
   `<agent> via fleet`, no hook runs), the parked agent's worktree is taken off the branch (HEAD
   detached at the same commit, nothing deleted), and the new agent's worktree checks the branch out.
   Its baseline snapshot is taken there, so the new verification covers the new attempt's changes.
4. The ledger: a compare-and-set of the assignment's agent (`Ledger.reassign`), with the `reassigned`
   event (from, to, the changed files, branch and commit) and the new baseline, in one transaction.
5. The parked agent's claim ends: its hook context and the assignment's lease on it are released.
   From here the assignment is not its own; the watchdog's resume after its reset tells it the work
   moved (`handed_over_text`) and never sends the assignment or a `continue` to it.
6. The new agent gets its prompt: a note on the first attempt (`handover_note`), then the assignment
   as rendered for it; its receipt becomes the assignment's turn (`delivered`).

A failure before step 4 leaves the assignment where it was (the new agent's lease is freed; a repo
agent's first attempt may be committed on the branch, where its own resume finds it). A send that
fails after step 4 fails the assignment, saying why: the work is never on two agents.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from fleet.agents.text import DELIVERY_TIMEOUT
from fleet.config import AgentSpec
from fleet.errors import (
    FleetError,
    NoAgentAvailable,
    StateConflict,
    WorkNotMovable,
)
from fleet.fsutil import ensure_dir
from fleet.hooks.gates import HookContext, write_context
from fleet.tokens import counted
from fleet.vocab import WATCHDOG_HOLDER, assignment_holder
from fleet.watchdog.decide import OWES_REPORT_STATES
from fleet.watchdog.decide import AgentFacts as LimitFacts
from fleet.work.failover import Candidate, Choice, Work, choose, handover_note
from fleet.work.records import Assignment, Event
from fleet.work.routing import Need
from fleet.work.scope import allows
from fleet.work.verify import SnapshotError, compare_with_baseline, snapshot
from fleet.work.worktrees import git_errors, release_branch

from .core import Service
from .delivery import (
    baseline_record,
    end_context,
    fail,
    free_lease,
    render_for,
    renew_lease,
    take_lease,
    template_text,
)
from .routing import Scope, gather_facts, inventory, repo_of, routing_lock, scope_for
from .tracking import assignment_tokens, journal_with_turn_end
from .worktree import commit, prepare, refuse_dirty


def plan(svc: Service, a: Assignment, parked: AgentSpec, *, events: Sequence[Event] | None = None,
         statuses: Mapping[str, Mapping[str, Any]] | None = None) -> Choice:
    """Where `a`, open on the parked agent, could go now (reads every agent's lease and load, its
    status unless `statuses` (by name, just read) are given, and the assignment's `events` unless
    given; skills only when the assignment names some)."""
    specs = list(svc.config.agents.values())
    inventories = {s.name: inventory(s) for s in specs} if a.skills else {}
    failed = _refusals(svc.ledger.events_for(a.id) if events is None else events)
    candidates = []
    for f in gather_facts(svc, specs, None, inventories, statuses):
        spec = svc.config.agent(f.name)
        _, problems = scope_for(spec, a.write_paths, a.read_paths)
        barred = f"taking this assignment over failed before: {failed[f.name]}" if f.name in failed else None
        candidates.append(Candidate(f, repo_of(spec), problems[0] if problems else None, barred))
    need = Need(skills=frozenset(a.skills), needs_write=bool(a.write_paths))
    return choose(Work(a.id, parked.name, need, a.repo or repo_of(parked)), candidates)


def _refusals(events: Sequence[Event]) -> dict[str, str]:
    """The agents that failed to take the assignment over before (`reassign_refused` with key
    `to:<agent>`), each with why."""
    return {str(e.details.get("key"))[3:]: str(e.details.get("reason")) for e in events
            if e.kind == "reassign_refused" and str(e.details.get("key")).startswith("to:")}


def limit_facts(svc: Service, facts: LimitFacts, statuses: Mapping[str, Mapping[str, Any]] | None = None) -> LimitFacts:
    """A limited agent's facts for `decide`, completed: the assignment handed over from it while it
    was parked (`handed_over`), and with `on_limit = "reassign"` where its open assignment could go
    (`failover_to`, `failover_why`). Never for an agent someone else holds. `statuses`: every
    agent's status as the caller has just read it, by name (else read again)."""
    since = facts.limited_since if facts.limited_since is not None else (facts.idle_since or 0.0)
    out = replace(facts, handed_over=svc.ledger.handed_over(facts.agent, since))
    a = facts.assignment
    if (svc.config.watchdog.on_limit != "reassign" or a is None or a.state not in OWES_REPORT_STATES
            or a.has_valid_report or facts.lease == "other"):
        return out
    events = svc.ledger.events_for(a.id)
    if any(e.kind == "reassign_refused" and e.details.get("key") == facts.agent for e in events):
        return out  # its first attempt cannot move safely: it waits for the reset
    row = svc.ledger.get(a.id)
    if row.budget is not None and counted(row.usage) > row.budget:
        return out  # past its budget: the budget rule ends it; another agent would only spend more
    choice = plan(svc, row, svc.config.agent(facts.agent), events=events, statuses=statuses)
    return replace(out, failover_to=choice.agent, failover_why=choice.reason)


def reassign(svc: Service, assignment_id: str, from_agent: str, *, actor: str = WATCHDOG_HOLDER) -> dict[str, Any]:
    """Move `assignment_id`, open on the parked `from_agent`, to the agent `plan` picks now, and send
    it there (see the module docstring). Raises `NoAgentAvailable` when none can take it,
    `WorkNotMovable` when its first attempt cannot be carried over safely, `StateConflict` when it
    is no longer open on `from_agent`; each leaves the assignment where it was."""
    a = svc.ledger.get(assignment_id)
    if a.agent != from_agent or a.state not in OWES_REPORT_STATES:
        raise StateConflict(f"Assignment {a.id} is {a.state} on {a.agent or 'no agent'}, not open on {from_agent}.",
                            hint=f"Run `fleet show {a.id}` to see what happened.", assignment=a.id, state=a.state)
    old = svc.config.agent(from_agent)
    with routing_lock(svc):
        choice = plan(svc, a, old)
        if choice.agent is None:
            raise NoAgentAvailable(choice.reason, hint="It stays with its agent, which resumes it after its reset.",
                                   reasons=[r.to_dict() for r in choice.refused])
        new = svc.config.agent(choice.agent)
        token = take_lease(svc, new.name, a.id, None, None)
    try:
        moved, scope, request_id = _move(svc, a, old, new, choice, actor)
    except FleetError as exc:
        free_lease(svc, new.name, a.id)
        if not isinstance(exc, WorkNotMovable | StateConflict) and not exc.retryable:  # not offered it again
            svc.ledger.annotate_once(a.id, "reassign_refused", f"to:{new.name}", actor=actor,
                                     details={"agent": new.name, "code": exc.code, "reason": exc.message[:500]})
        raise
    except BaseException:
        free_lease(svc, new.name, a.id)
        raise
    end_context(svc, old.name, a.id)  # the parked agent's claim ends before the new send
    return _send(svc, moved, old.name, new, scope, token, request_id, actor)


def _first_attempt(svc: Service, a: Assignment) -> tuple[list[str] | None, str | None, tuple[str, ...],
                                                          dict[str, str | None]]:
    """What the first attempt changed in its cwd since the baseline (None when fleet cannot tell,
    with why), the write paths it had, and the state the snapshot saw of each changed path (what the
    carry-over commit must hold: a process the parked agent left running may still write)."""
    baseline = svc.ledger.baseline(a.id) or {}
    write = tuple(str(p) for p in baseline.get("write_paths") or ())
    try:
        seen = compare_with_baseline(baseline)
    except (SnapshotError, ValueError, KeyError, TypeError, OSError) as exc:
        return None, f"fleet could not compare its working directory with the baseline: {exc}", write, {}
    if seen.notes:
        return None, f"its working directory could not be seen in full: {seen.notes[0]}", write, {}
    return seen.changed, None, write, seen.states


def _move(svc: Service, a: Assignment, old: AgentSpec, new: AgentSpec, choice: Choice,
          actor: str) -> tuple[Assignment, Scope, str]:
    """Steps 2-4 of the module docstring; returns the moved assignment, its scope on the new agent
    and the send's request id."""
    changed, unseen, write, states = _first_attempt(svc, a)
    builds_on = old.repo is not None or old.cwd == new.cwd
    outside = [p for p in changed or () if not allows(write, p)]
    if builds_on and (changed is None or outside):
        why = unseen or f"it changed files outside its write paths ({', '.join(outside[:5])})"
        svc.ledger.annotate_once(a.id, "reassign_refused", old.name, actor=actor,
                                 details={"agent": old.name, "to": new.name, "reason": why})
        raise WorkNotMovable(f"Assignment {a.id} stays with {old.name}: the next attempt would build on its first "
                             f"attempt's files, and {why}.",
                             hint=f"It resumes on {old.name} after its reset; or cancel it and assign it anew.",
                             assignment=a.id, agent=old.name)
    # Everything about the new agent that can fail comes before git is touched: a move that stopped
    # half-way would leave the branch off the parked worktree and on neither agent.
    scope, problems = scope_for(new, a.write_paths, a.read_paths)
    if problems:  # `plan` checked; the directory changed since
        raise WorkNotMovable(f"The paths of {a.id} no longer fit {new.name}: {problems[0]}.",
                             hint="It stays with its agent.", assignment=a.id)
    refuse_dirty(new)
    body = render_for(new, scope, task=a.task, skills=a.skills, checks=a.checks, deadline=a.deadline,
                      template=template_text(svc), assignment_id=a.id, budget=a.budget)
    tip = None
    if old.repo is not None:
        tip = commit(old, a.id, f"first attempt by {old.name}, carried over to {new.name}", changed or [], states)
        with git_errors():
            release_branch(old.cwd, a.id, repo=old.repo)
    try:
        moved, count = _hand_over(svc, a, old, new, choice, actor, scope=scope, changed=changed, tip=tip,
                                  prompt_body=body)
    except BaseException:
        # The move did not happen: the branch goes back to the parked worktree (committed), so its
        # resume goes on there, and never stays on the new agent's.
        if new.repo is not None:
            with contextlib.suppress(FleetError):
                release_branch(new.cwd, a.id, repo=new.repo)
        if old.repo is not None:
            with contextlib.suppress(FleetError):
                prepare(svc, old, a.id)
        raise
    return moved, scope, f"{a.id}:reassigned:{count + 1}"


def _hand_over(svc: Service, a: Assignment, old: AgentSpec, new: AgentSpec, choice: Choice, actor: str, *,
               scope: Scope, changed: list[str] | None, tip: str | None,
               prompt_body: str) -> tuple[Assignment, int]:
    """Step 4: the new agent's worktree on the branch, its baseline, and the ledger's move."""
    branch = prepare(svc, new, a.id)  # a repo agent's worktree goes on the branch, with the first attempt
    snap = snapshot(new.cwd)
    baseline = baseline_record(new, scope, snap, branch)
    note = handover_note(assignment=a.id, first=old.name, changed=changed, same_cwd=old.cwd == new.cwd,
                         first_cwd=str(old.cwd), branch=branch["branch"] if branch else None, commit=tip)
    events = svc.ledger.events_for(a.id)
    count = sum(1 for e in events if e.kind == "reassigned")
    spent = assignment_tokens(a, journal_with_turn_end(svc, old.name), events)  # the first attempt's, carried
    wt = {k: branch[k] for k in ("repo", "branch", "base_commit")} if branch else {}
    moved = svc.ledger.reassign(
        a.id, from_agent=old.name, to_agent=new.name, actor=actor, baseline=baseline, prompt=note + prompt_body,
        **wt, details={"reason": choice.reason, "changed": (changed or [])[:200], "changed_known": changed is not None,
                       "usage": spent, **({"branch": branch["branch"], "commit": tip} if branch else {})})
    if spent["turns"]:
        svc.ledger.set_usage(a.id, spent)
    return moved, count


def _send(svc: Service, a: Assignment, parked: str, new: AgentSpec, scope: Scope, token: int, request_id: str,
          actor: str) -> dict[str, Any]:
    """Step 6: the prompt to the new agent under the assignment's lease, its receipt recorded."""
    holder = assignment_holder(a.id)
    directory = ensure_dir(svc.runtime.agent_dir(new.name))
    write_context(directory, HookContext(assignment=a.id, role=new.role, cwd=str(new.cwd), write_paths=scope.write,
                                         read_paths=scope.read))
    try:
        with svc.agent_guard(new, holder, token, operation="assign"):
            receipt = svc.runtime.send(new, a.prompt or a.task, request_id, DELIVERY_TIMEOUT, holder=holder)
    except FleetError as exc:  # moved in the ledger, never sent: it fails rather than wait for a report
        fail(svc, a.id, new.name, f"reassigned to {new.name}, but not sent there: {exc.message}", actor=actor,
             expect=sorted(OWES_REPORT_STATES))
        exc.data["assignment"] = a.id
        raise
    except BaseException:
        fail(svc, a.id, new.name, f"reassigned to {new.name}; its send there was interrupted", actor=actor,
             expect=sorted(OWES_REPORT_STATES))
        raise
    svc.ledger.annotate(a.id, "delivered", actor=actor, turn_id=receipt["turn_id"], receipt=dict(receipt),
                        details={"turn_id": receipt["turn_id"], "chars": receipt["chars"], "resend": False,
                                 "reassigned": True, "request_id": request_id, "duplicate": receipt["duplicate"],
                                 "latency_ms": receipt["latency_ms"]})
    renew_lease(svc, new.name, a.id, a.deadline)
    write_context(directory, HookContext(assignment=a.id, role=new.role, cwd=str(new.cwd), write_paths=scope.write,
                                         read_paths=scope.read, turn_id=receipt["turn_id"]))
    return {"assignment": a.id, "from": parked, "to": new.name, "turn_id": receipt["turn_id"], "delivered": True}
