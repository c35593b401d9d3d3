"""Delivering an assignment to the agent routing chose: its lease, its cwd baseline, prompt and send.

The send (a second or more) runs outside the routing lock (`fleet.service.routing`), under the
assignment's lease; until the receipt that lease lasts `DELIVERY_TTL`, so a process that dies
mid-delivery frees the agent soon, and after the receipt it is renewed to the deadline plus
`DEADLINE_GRACE`.

A caller that holds an agent's lease (with its token, if it gives one) hands the agent over to the
assignment: its lease is released and the assignment's claimed at once. Anyone else's live lease
makes the agent ineligible (routing says `leased`).

Not thread-safe per `Service`; use one service per thread, as the adapters do.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from fleet.agents.codex import effective_sandbox
from fleet.agents.text import DELIVERY_TIMEOUT
from fleet.config import AgentSpec
from fleet.errors import (
    AgentBusy,
    AgentNotRunning,
    AssignmentNotFound,
    FleetError,
    InvalidInput,
    LeaseHeld,
    LeaseLost,
    NotDelivered,
    StateConflict,
    StateDirError,
)
from fleet.fsutil import ensure_dir
from fleet.hooks.gates import ContextError, HookContext, clear_context, read_context, write_context
from fleet.leases.rules import MAX_TTL
from fleet.vocab import WATCHDOG_HOLDER, assignment_holder
from fleet.work.lifecycle import END_STATES
from fleet.work.prompt import PromptSpec, load_template, render_prompt
from fleet.work.records import Assignment
from fleet.work.verify import Snapshot, SnapshotError, snapshot

from .core import Service
from .routing import Scope, scope_for
from .worktree import prepare

#: The assignment's lease while its prompt is being delivered (a send takes seconds; a crash mid-way
#: frees the agent after this).
DELIVERY_TTL: Final = 120.0
#: The lease outlives the deadline by this much, so the report of a turn that ends right at the
#: deadline is still taken in under the assignment's lease.
DEADLINE_GRACE: Final = 120.0
#: The longest lease an assignment can hold.
MAX_LEASE: Final = MAX_TTL
#: The longest deadline: the lease covering it (deadline + grace) must fit in the longest lease.
MAX_DEADLINE: Final = MAX_LEASE - DEADLINE_GRACE
#: Open assignments `end_stale_contexts` lists per tick (the tick's own `OPEN_LOOKUP`): far more than
#: a fleet has agents; a context whose assignment is past them is read from the ledger one by one.
_OPEN_LOOKUP: Final = 1000
#: Stands in for the assignment id in a prompt rendered before its ledger row (and so its id) exists:
#: as long as an id (`as-` and 26 characters) and made of NULs, which no task (`fleet.prompttext`),
#: path or skill name holds, so putting the real id in is exact and keeps the length that was checked.
ID_STAND_IN: Final = "\x00" * 29


# -- the lease handover ----------------------------------------------------------------------------

def check_handover(svc: Service, agent: str, caller: str | None, token: int | None) -> dict[str, Any]:
    """The agent's lease info; with `token`, raise `LeaseLost` unless it is `caller`'s live lease."""
    lease = dict(svc.leases.info(agent))
    if token is not None and not (lease["state"] == "held" and lease["holder"] == caller and lease["token"] == token):
        raise LeaseLost(
            f"Your lease on agent {agent} (token {token}) is not current, so it cannot be handed to the assignment.",
            hint="Claim the agent again with `fleet claim` and pass the new token, or assign without --token.",
            agent=agent, holder=lease["holder"], token=lease["token"], your_token=token)
    return lease


def take_lease(svc: Service, agent: str, assignment_id: str, caller: str | None, token: int | None) -> int:
    """Claim `agent` for the assignment (`DELIVERY_TTL`) and return the token. The caller's own live
    lease is handed over (its token, if given, must be current: `lease_lost` otherwise); anyone
    else's raises `LeaseHeld`."""
    holder = assignment_holder(assignment_id)
    lease = check_handover(svc, agent, caller, token)
    if caller is not None and lease["state"] == "held" and lease["holder"] == caller:
        svc.leases.release(agent, caller)
    return int(svc.leases.claim(agent, holder, ttl=DELIVERY_TTL)["token"])


def free_lease(svc: Service, agent: str, assignment_id: str) -> None:
    """Release the assignment's lease if it still holds the agent (never anyone else's)."""
    holder = assignment_holder(assignment_id)
    try:
        if svc.leases.info(agent)["holder"] == holder:
            svc.leases.release(agent, holder)
    except FleetError:
        pass  # a corrupt record or a lost race: the lease expires on its own


def end_context(svc: Service, agent: str | None, assignment_id: str) -> None:
    """Free the agent from a finished assignment: its hook context and its lease."""
    if agent is None or agent not in svc.config.agents:
        return
    with contextlib.suppress(OSError):
        clear_context(svc.runtime.agent_dir(agent), assignment_id)
    free_lease(svc, agent, assignment_id)


def end_stale_contexts(svc: Service) -> list[dict[str, str]]:
    """Free this host's agents from assignments that ended where their host could not act: cancelled
    from a host that does not know the agent (with the shared ledger), or ended by an earlier process
    that died before freeing it. An agent whose hook context names an assignment the ledger has ended,
    or does not have at all (a repaired or replaced ledger), gets `end_context`. Each agent is looked
    at under its operation lock, taken without waiting (a send writing a new context holds it: that
    agent waits for the next tick), so no new assignment's context is ever removed. One agent's trouble
    never stops the others. The open assignments are listed once, at the first context seen; only a
    context whose assignment is not among them is read from the ledger (it may be newer than the list).
    Returns `{"agent", "assignment", "state"}` for each one freed."""
    from fleet.agents.oplock import op_lock  # noqa: PLC0415 (the tick's path only)

    freed = []
    still_open: set[str] | None = None
    for agent in svc.config.agents:
        agent_dir = svc.runtime.agent_dir(agent)
        try:
            with op_lock(agent_dir, agent, operation="end-stale", holder=WATCHDOG_HOLDER, wait=0):
                ctx = read_context(agent_dir)
                if ctx is None:
                    continue
                if still_open is None:
                    still_open = {a.id for a in svc.ledger.assignments(open_only=True, limit=_OPEN_LOOKUP)}
                if ctx.assignment in still_open:
                    continue
                try:
                    state: str = svc.ledger.get(ctx.assignment).state
                except AssignmentNotFound:
                    state = "unknown"
                if state in END_STATES or state == "unknown":
                    end_context(svc, agent, ctx.assignment)
                    freed.append({"agent": agent, "assignment": ctx.assignment, "state": state})
        except (ContextError, OSError, AgentBusy, StateDirError):
            continue  # busy now, or a context the hooks fail closed on (`fleet doctor` names it)
    return freed


# -- delivery -------------------------------------------------------------------------------------

class SendAborted(Exception):
    """Nothing was typed (the agent was busy, stopped or had text in its composer)."""

    def __init__(self, error: FleetError) -> None:
        super().__init__(error.message)
        self.error = error


def template_text(svc: Service) -> str:
    """The assignment template (`[fleet] assignment_template`, checked; else the packaged one)."""
    return load_template(svc.config.assignment_template)


def render_for(spec: AgentSpec, scope: Scope, *, task: str, skills: Sequence[str], checks: Sequence[str],
               deadline: float | None, template: str, assignment_id: str = ID_STAND_IN,
               budget: int | None = None) -> str:
    """The assignment prompt for `spec` (its cwd and role), sent now; raises `InvalidInput` or
    `TextTooLong` for what it cannot state. Without an id, `ID_STAND_IN` stands in for it. `budget`:
    the assignment's own token budget, else the agent's (`AgentSpec.budget`)."""
    return render_prompt(
        PromptSpec(assignment_id=assignment_id, task=task, cwd=str(spec.cwd), write_paths=scope.write,
                   read_paths=scope.read, skills=tuple(skills), checks=tuple(checks), deadline=deadline,
                   role=spec.role, budget=budget if budget is not None else spec.budget),
        now=time.time(), template=template, tz=datetime.now().astimezone().tzinfo)


def baseline_record(spec: AgentSpec, scope: Scope, snap: Snapshot, branch: dict[str, Any] | None) -> dict[str, Any]:
    """The verification baseline the ledger keeps for the work on `spec`: its cwd and scope, the
    snapshot `snap` of the cwd, the sandbox the work runs under (the verification records it), and a
    repo agent's worktree branch (`prepare`)."""
    return {"version": 1, "agent": spec.name, "role": spec.role, "cwd": str(spec.cwd),
            "write_paths": list(scope.write), "read_paths": list(scope.read), "snapshot": snap.to_json(),
            "sandbox": effective_sandbox(spec), **({"worktree": branch} if branch else {})}


def send_first(svc: Service, a: Assignment, spec: AgentSpec, token: int, *, actor: str,
               prompt: str | None = None) -> Assignment:
    """Deliver a queued assignment to `spec` under its lease (token `token`): normalise its scope for
    this agent, put a repo agent's worktree on the assignment's branch, snapshot the cwd as the
    verification baseline, write the hook context, render (unless
    `prompt`, rendered for this agent by `render_for` without an id, is given) and send the prompt,
    record `sent` with the receipt, and renew the lease to the deadline.

    Raises `SendAborted` when nothing was typed (the caller decides: queue again or fail), and
    `NotDelivered` after the assignment was marked failed (keys went in, no receipt came).
    """
    holder = assignment_holder(a.id)
    scope, problems = scope_for(spec, a.write_paths, a.read_paths)
    if problems:
        raise SendAborted(InvalidInput(f"The assignment's paths do not fit agent {spec.name}: {problems[0]}.",
                                       hint="Assign again with paths inside that agent's working directory."))
    if prompt is not None:
        prompt = prompt.replace(ID_STAND_IN, a.id)
    else:
        try:
            prompt = render_for(spec, scope, task=a.task, skills=a.skills, checks=a.checks, deadline=a.deadline,
                                template=template_text(svc), assignment_id=a.id, budget=a.budget)
        except FleetError as exc:  # a template changed since, or a prompt over the limit for this agent
            raise SendAborted(exc) from exc
    try:  # a repo agent's worktree goes on the assignment's branch first: the snapshot is of that commit
        branch = prepare(svc, spec, a.id)
    except FleetError as exc:  # worktree_dirty (nothing stashed), a foreign worktree, a missing base
        raise SendAborted(exc) from exc
    wt_fields = {k: branch[k] for k in ("repo", "branch", "base_commit")} if branch else {}
    try:
        snap = snapshot(spec.cwd)
    except SnapshotError as exc:
        raise SendAborted(InvalidInput(f"fleet cannot snapshot {spec.cwd} to verify the work later: {exc}.",
                                       hint="Fix the working directory (or its git repository) and assign again.")
                          ) from exc
    baseline = baseline_record(spec, scope, snap, branch)
    svc.ledger.annotate(a.id, "baseline", actor=actor, baseline=baseline, **wt_fields,
                        details={"agent": spec.name, "kind": snap.kind, "files": len(snap.files),
                                 "write_paths": list(scope.write), "notes": list(snap.notes),
                                 **({"branch": branch} if branch else {})})
    context = HookContext(assignment=a.id, role=spec.role, cwd=str(spec.cwd), write_paths=scope.write,
                          read_paths=scope.read)
    directory = ensure_dir(svc.runtime.agent_dir(spec.name))
    write_context(directory, context)
    try:
        with svc.agent_guard(spec, holder, token, operation="assign"):
            receipt = svc.runtime.send(spec, prompt, a.id, DELIVERY_TIMEOUT, holder=holder)
    except (AgentBusy, AgentNotRunning, LeaseHeld, LeaseLost) as exc:  # raised before any keystroke
        clear_context(directory, a.id)
        raise SendAborted(exc) from exc
    except NotDelivered as exc:
        fail(svc, a.id, spec.name, f"not delivered: {exc.message}", actor=actor, expect=("queued",))
        exc.data["assignment"] = a.id
        raise
    # an assignment without a budget of its own takes the agent's (`budget` in fleet.toml), as its prompt said
    inherited = {"budget": spec.budget} if a.budget is None and spec.budget is not None else {}
    sent = svc.ledger.transition(
        a.id, "sent", actor=actor, expect="queued", agent=spec.name, prompt=prompt, receipt=dict(receipt),
        turn_id=receipt["turn_id"], **inherited,
        details={"agent": spec.name, "turn_id": receipt["turn_id"], "latency_ms": receipt["latency_ms"],
                 "duplicate": receipt["duplicate"]})
    renew_lease(svc, spec.name, a.id, a.deadline)
    write_context(directory, HookContext(assignment=a.id, role=spec.role, cwd=str(spec.cwd),
                                         write_paths=scope.write, read_paths=scope.read,
                                         turn_id=receipt["turn_id"]))
    return sent


def renew_lease(svc: Service, agent: str, assignment_id: str, deadline: float | None) -> None:
    """Stretch the assignment's lease to its deadline plus grace (at least `DELIVERY_TTL`)."""
    left = (deadline - time.time()) if deadline is not None else MAX_DEADLINE
    ttl = min(MAX_LEASE, max(DELIVERY_TTL, left + DEADLINE_GRACE))
    svc.leases.claim(agent, assignment_holder(assignment_id), ttl=ttl)


def fail(svc: Service, assignment_id: str, agent: str | None, reason: str, *, actor: str,
         expect: Sequence[str], code: str | None = None) -> Assignment | None:
    """Move an open assignment to `failed` (compare-and-set on `expect`), free its agent; None when
    another process ended it first. `code`: a stable word for the reason (`fleet.vocab.FAIL_CODES`),
    kept in the event's details."""
    details = {"reason": reason, **({"code": code} if code else {})}
    try:
        done = svc.ledger.transition(assignment_id, "failed", actor=actor, expect=tuple(expect),  # type: ignore[arg-type]
                                     reason=reason, details=details)
    except StateConflict:
        return None
    end_context(svc, agent, assignment_id)
    return done
