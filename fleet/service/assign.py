"""Assignment writes: assign (create), dispatch, deliver and cancel; the watchdog's tick calls
`dispatch` and `deliver` too. The reads (list, show, events, wait) are `fleet.service.assignments`.

Lifecycle (`fleet.work.lifecycle`): `assign` checks the request once (task, deadline, checks,
paths, skills, roles, the template), routes under the routing lock (`fleet.service.routing`),
renders the prompt once for the agent it routes to (or, when none is free, for the longest cwd, as
a bound) so a prompt over the limit is refused before anything is written, writes the row, takes the
lease `assignment:<id>` and sends (`fleet.service.delivery`: snapshot of the agent's cwd, hook
context, the prompt, `sent` with the receipt). From there `reconcile` (run by every
list/get/events/wait/dispatch call and by the watchdog) follows Codex's signals to `working`,
`reported` and the verdict `verified`/`rejected`, or to `failed`; `cancel` ends it early. Whatever
ends an assignment releases its lease and clears its hook context.

Idempotence: `request_id` makes `assign` return the first call's assignment (`duplicate: true`)
without routing or sending again; the same id with a different request is `request_id_conflict`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

from fleet.agents.text import DELIVERY_TIMEOUT
from fleet.config import AgentSpec
from fleet.durations import parse_duration
from fleet.errors import (
    FleetError,
    InvalidInput,
    InvalidTransition,
    LeaseHeld,
    NoAgentAvailable,
    StateConflict,
)
from fleet.hooks.gates import HookContext, write_context
from fleet.tokens import MAX_TOKENS, parse_tokens
from fleet.vocab import assignment_holder
from fleet.work.ledger import request_conflict
from fleet.work.lifecycle import END_STATES
from fleet.work.prompt import MAX_CHECK_CHARS, PromptSpec, check_task, render_prompt
from fleet.work.records import Assignment, request_sha
from fleet.work.routing import Need, Refusal, Route, no_agent_error, route

from .core import Service
from .delivery import (
    MAX_DEADLINE,
    SendAborted,
    check_handover,
    end_context,
    fail,
    free_lease,
    render_for,
    renew_lease,
    send_first,
    take_lease,
    template_text,
)
from .hosts import forward_if_remote
from .routing import (
    candidates,
    check_repo,
    gather_facts,
    inventories,
    lexical_scope,
    repo_of,
    routing_lock,
    scope_for,
    scope_refusals,
)
from .tracking import reconcile
from .worktree import prepare, refuse_dirty

#: Refusals that waiting will not fix: a request no agent can ever take is refused even with --queue.
LASTING: Final = frozenset({"lead", "read_only", "missing_skill", "scope"})


@dataclass(frozen=True)
class _Plan:
    """A routing decision taken under the lock: the assignment, its agent and the lease token."""

    assignment: Assignment
    spec: AgentSpec
    token: int


def compact(a: Assignment) -> dict[str, Any]:
    """The few fields a lead acts on (results stay small for MCP)."""
    out: dict[str, Any] = {"id": a.id, "agent": a.agent, "state": a.state}
    if a.turn_id:
        out["turn_id"] = a.turn_id
    if a.report:
        out["report_status"] = a.report.get("status")
        out["summary"] = a.report.get("summary")
    if a.verification:
        out["verdict"] = a.verification.get("verdict")
    if a.reason:
        out["reason"] = a.reason
    return out


def created(a: Assignment, duplicate: bool, **extra: Any) -> dict[str, Any]:
    """`assignment_create`'s result for `a` (`duplicate`: an earlier call with the request id made it)."""
    return {"assignment": a.id, "state": a.state, "agent": a.agent, "turn_id": a.turn_id, "deadline": a.deadline,
            "budget": a.budget, "duplicate": duplicate, **extra}


# -- create ------------------------------------------------------------------------------------------

def _no_agent(result_refusals: Sequence[Refusal], need: Need) -> NoAgentAvailable:
    err = no_agent_error(Route(None, (), tuple(result_refusals)), need)
    if result_refusals and all(r.why in LASTING for r in result_refusals):
        err.hint = "No configured agent can ever take this (see reasons); change the request or the fleet config."
    return err


def _plan(svc: Service, items: Sequence[Assignment], caller: str | None, token: int | None,
          refusals: dict[str, list[Refusal]] | None = None) -> list[_Plan]:
    """Route each queued assignment in `items`, oldest first, and claim its agent. Runs under the
    routing lock; an agent picked here is not offered to a later item. `refusals` collects, per
    assignment id, why it could not be placed."""
    specs = list(svc.config.agents.values())
    skills_of = inventories(specs, any(a.skills for a in items))
    plans: list[_Plan] = []
    with routing_lock(svc):
        leases = {}
        for spec in specs:
            try:
                leases[spec.name] = svc.leases.info(spec.name)["holder"]
            except FleetError:
                leases[spec.name] = None
        taken: set[str] = set()
        for stale in items:
            a = svc.ledger.get(stale.id)
            if a.state != "queued" or assignment_holder(a.id) in leases.values():
                continue  # placed by someone else, or being delivered right now
            # Only an agent named for the work is handed over from its creator's own lease.
            who = (caller or a.holder) if a.agent is not None else None
            facts = [replace(f, leased_by_other=f.leased_by_other or f.name in taken)
                     for f in gather_facts(svc, specs, who, skills_of)]
            bad = scope_refusals(specs, a.write_paths, a.read_paths)
            excluded = {r.agent for r in bad}
            if a.repo is not None:  # `--repo`: only that repository's agents
                excluded |= {s.name for s in specs if repo_of(s) != a.repo}
            need = Need(skills=frozenset(a.skills), needs_write=bool(a.write_paths), only=a.agent)
            result = route([f for f in facts if f.name not in excluded], need)
            for name in (result.agent, *result.ranked) if result.agent else ():
                try:
                    lease_token = take_lease(svc, name, a.id, who, token if name == a.agent else None)
                except LeaseHeld:
                    continue
                taken.add(name)
                plans.append(_Plan(a, svc.config.agent(name), lease_token))
                break
            else:
                if refusals is not None:
                    refusals[a.id] = [*result.refusals, *(r for r in bad if need.only in (None, r.agent))]
    return plans


@dataclass(frozen=True)
class _Request:
    """A checked `assign` request: nothing in it needs checking again before it is written."""

    caller: str
    task: str
    seconds: float
    skills: tuple[str, ...]
    checks: tuple[str, ...]
    write: tuple[str, ...]
    read: tuple[str, ...]
    to: str | None
    #: Only agents working in worktrees of this repository (resolved), or any agent.
    repo: str | None
    key: dict[str, Any]
    #: The assignment template's text, loaded (and checked) once.
    template: str
    #: Its own token budget (`--budget`); None: the agent's from fleet.toml, if any, when sent.
    budget: int | None = None


def _check_request(svc: Service, *, task: str, deadline: str, queue: bool, to: str | None, skills: list[str] | None,
                   write_paths: list[str] | None, read_paths: list[str] | None, checks: list[str] | None,
                   holder: str | None, token: int | None, repo: str | None = None,
                   budget: str | int | None = None) -> _Request:
    """Everything `assign` refuses before it routes: task (the one check of its text), deadline,
    budget, checks, the token, the named agent's role, paths outside the cwd, and a broken template."""
    text = check_task(task)
    seconds = parse_duration(deadline, what="deadline", max_seconds=MAX_DEADLINE)
    tokens = parse_tokens(budget, what="budget") if budget is not None else None
    wanted = tuple(dict.fromkeys(skills or ()))
    commands = tuple(c.strip() for c in checks or ())
    if any(not c or len(c) > MAX_CHECK_CHARS for c in commands):
        raise InvalidInput(f"A check must be a non-empty command of at most {MAX_CHECK_CHARS} characters.",
                           hint="Put a longer check in a script and name the script.")
    write_in, read_in = list(write_paths or ()), list(read_paths or ())
    if token is not None and to is None:
        raise InvalidInput("A token names one agent's lease: pass --to with --token.",
                           hint="Add --to AGENT (the agent your token is for), or leave out --token.")
    repo_key = check_repo(svc, repo, to)
    if to is not None:
        spec = svc.config.agent(to)
        if spec.role == "lead":
            raise InvalidInput(f"Agent {to} is a lead; leads hand out work and never take assignments.",
                               hint="Name a worker or an explorer with --to, or leave --to out to route it.")
        if write_in and spec.role != "worker":
            raise InvalidInput(f"Agent {to} is an {spec.role} (read-only), so it cannot take write paths.",
                               hint="Name a worker with --to, or drop --write for an investigation.")
        scope, problems = scope_for(spec, write_in, read_in)
        if problems:
            raise InvalidInput(f"The assignment's paths are not usable for agent {to}: {'; '.join(problems)}.",
                               hint=f"Paths must stay inside {spec.cwd}.")
        stored_write, stored_read = scope.write, scope.read
    else:
        stored_write, stored_read = lexical_scope(write_in, "write"), lexical_scope(read_in, "read")
    template = template_text(svc)
    key: dict[str, Any] = {"task": text, "to": to, "skills": sorted(wanted), "write_paths": write_in,
                           "read_paths": read_in, "checks": list(commands), "deadline": deadline, "queue": queue}
    if repo_key is not None:  # only when given: earlier requests' ids keep their sha
        key["repo"] = repo_key
    if tokens is not None:  # the same
        key["budget"] = tokens
    return _Request(svc.holder_for(holder), text, seconds, wanted, commands, stored_write, stored_read, to, repo_key,
                    key, template, tokens)



def _render(svc: Service, req: _Request, agent: str | None, deadline: float) -> str | None:
    """The prompt, rendered once, before anything is written, so one over the limit is refused: for
    `agent` (without its id yet: `fleet.service.delivery.ID_STAND_IN`), which is what is sent; or,
    with no agent to send to now, for the longest cwd, as a bound (None: it is rendered when sent)."""
    if agent is not None:
        spec = svc.config.agent(agent)
        scope, _ = scope_for(spec, req.write, req.read)  # the pool holds only agents it fits
        return render_for(spec, scope, task=req.task, skills=req.skills, checks=req.checks, deadline=deadline,
                          template=req.template, budget=req.budget)
    cwd = max((str(s.cwd) for s in svc.config.agents.values()), key=len, default="/")
    render_prompt(PromptSpec(assignment_id="as-" + "0" * 26, task=req.task, cwd=cwd, write_paths=req.write,
                             read_paths=req.read, skills=req.skills, checks=req.checks, deadline=deadline,
                             role="worker" if req.write else "explorer", budget=req.budget or MAX_TOKENS),
                  now=time.time(), template=req.template)
    return None


def create_here(
    svc: Service, *, task: str, deadline: str, queue: bool, to: str | None = None, skills: list[str] | None = None,
    write_paths: list[str] | None = None, read_paths: list[str] | None = None, checks: list[str] | None = None,
    request_id: str | None = None, holder: str | None = None, token: int | None = None, repo: str | None = None,
    budget: str | int | None = None,
) -> dict[str, Any]:
    """`assignment_create` among this host's agents: routed (or `to`), recorded and sent. The
    registry's handler is `fleet.service.assigncreate.assignment_create`, which also reaches remote
    hosts' agents and calls this for this host's."""
    req = _check_request(svc, task=task, deadline=deadline, queue=queue, to=to, skills=skills,
                         write_paths=write_paths, read_paths=read_paths, checks=checks, holder=holder, token=token,
                         repo=repo, budget=budget)
    caller = req.caller
    ledger = svc.ledger
    earlier = _earlier(svc, request_id, req)
    if earlier is not None:
        return created(earlier, True)
    if to is not None and not svc.ledger.agent_load().get(to, (0, None))[0]:
        refuse_dirty(svc.config.agent(to))  # files left from ad-hoc work, not an open assignment's
    need = Need(skills=frozenset(req.skills), needs_write=bool(req.write), only=to)
    pool, skills_of, bad = candidates(svc, need, req.write, req.read, req.repo)
    dispatch(svc)  # older queued work goes first
    with routing_lock(svc):
        if to is not None and token is not None:
            check_handover(svc, to, caller, token)  # a stale token is refused before anything is written
        facts = gather_facts(svc, pool, caller if to is not None else None, skills_of)
        result = route(facts, need)
        refusals = [*result.refusals, *bad]
        lasting = bool(refusals) and all(r.why in LASTING for r in refusals)
        if result.agent is None and (not queue or lasting):
            raise _no_agent(refusals, need)
        due = time.time() + req.seconds
        prompt = _render(svc, req, result.agent, due)
        a, duplicate = ledger.create(
            task=req.task, holder=caller, actor=caller, agent=to, skills=req.skills, read_paths=req.read,
            write_paths=req.write, checks=req.checks, deadline=due, request_id=request_id, repo=req.repo,
            budget=req.budget, request=req.key,
            details={"to": to, "queue": queue, "request_id": request_id, "deadline": deadline, "budget": req.budget})
        if duplicate:
            return created(a, True)
        chosen = None
        for name in (result.agent, *result.ranked) if result.agent else ():
            try:
                chosen = (svc.config.agent(name), take_lease(svc, name, a.id, caller if to else None,
                                                             token if name == to else None))
                break
            except LeaseHeld:
                continue
            except FleetError:
                fail(svc, a.id, None, "fleet could not take its agent's lease", actor=caller, expect=("queued",))
                raise
    if chosen is None:
        reasons = [r.to_dict() for r in refusals]
        if queue:
            return created(a, False, reasons=reasons)
        fail(svc, a.id, None, "no agent could take it", actor=caller, expect=("queued",))
        raise _no_agent(refusals, need)
    spec, lease_token = chosen
    return _send_new(svc, a, spec, lease_token, caller, queue, prompt if spec.name == result.agent else None)


def _earlier(svc: Service, request_id: str | None, req: _Request) -> Assignment | None:
    """The assignment an earlier call with `request_id` made, if any (`request_id_conflict` when that
    call asked for something else)."""
    if request_id is None:
        return None
    prior = svc.ledger.find_request("assign", request_id)
    if prior is None:
        return None
    if prior.sha != request_sha(req.key):
        raise request_conflict("assign", request_id)
    if prior.result and prior.result.get("assignment"):
        return svc.ledger.get(str(prior.result["assignment"]))
    return None


def _send_new(svc: Service, a: Assignment, spec: AgentSpec, lease_token: int, caller: str,
              queue: bool, prompt: str | None) -> dict[str, Any]:
    """Send a just-created assignment (its `prompt` as rendered for `spec`, or None to render it);
    if nothing could be typed, keep it queued (`queue`) or fail it."""
    try:
        sent = send_first(svc, a, spec, lease_token, actor=caller, prompt=prompt)
    except SendAborted as aborted:
        free_lease(svc, spec.name, a.id)
        err = aborted.error
        if queue:
            svc.ledger.annotate(a.id, "send_aborted", actor=caller, details={"agent": spec.name, "error": err.code})
            return created(svc.ledger.get(a.id), False, reasons=[{"agent": spec.name, "why": err.code,
                                                                    "detail": err.message}])
        fail(svc, a.id, spec.name, f"not sent: {err.message}", actor=caller, expect=("queued",))
        err.data["assignment"] = a.id
        raise err from None
    return created(sent, False, receipt=sent.receipt)


# -- dispatch / deliver ------------------------------------------------------------------------------

def dispatch(svc: Service) -> dict[str, Any]:
    """One pass: reconcile (which frees agents of finished work), then send every queued assignment
    an agent can take now, oldest first. Safe to run from several processes at once."""
    reconcile(svc)
    queued = svc.ledger.queued()
    if not queued:
        return {"dispatched": [], "queued": [], "failed": []}
    why: dict[str, list[Refusal]] = {}
    plans = _plan(svc, queued, None, None, why)
    dispatched, failed = [], []
    for plan in plans:
        try:
            sent = send_first(svc, plan.assignment, plan.spec, plan.token, actor="dispatch")
            dispatched.append(compact(sent))
        except SendAborted as aborted:
            free_lease(svc, plan.spec.name, plan.assignment.id)
            why[plan.assignment.id] = [Refusal(plan.spec.name, "busy", aborted.error.message)]
        except FleetError as exc:
            failed.append({"id": plan.assignment.id, "agent": plan.spec.name, "error": exc.code,
                           "message": exc.message})
    still = [{"id": a.id, "reasons": [r.to_dict() for r in why.get(a.id, [])]}
             for a in svc.ledger.queued()]
    return {"dispatched": dispatched, "queued": still, "failed": failed}


def fleet_dispatch(svc: Service) -> dict[str, Any]:
    return dispatch(svc)


def deliver(svc: Service, assignment_id: str, *, actor: str, text: str | None = None,
            request_id: str | None = None) -> dict[str, Any]:
    """(Re)send an open assignment's prompt, or `text` (a report request, "continue"), to its agent
    under the assignment's lease, wait for the receipt and record it as a `delivered` event; later
    reports from that turn count for the assignment. A queued assignment is routed and sent as
    `dispatch` would. Raises `LeaseHeld` if someone else holds the agent, `AgentBusy` while it is
    working, `NotDelivered` without a receipt (retry with the same `request_id`: never typed twice)."""
    a = svc.ledger.get(assignment_id)
    if a.state == "queued":
        if text is not None:
            raise InvalidInput(f"Assignment {a.id} is queued: there is no turn to continue.",
                               hint="Send it first (`fleet dispatch`), or cancel it.")
        plans = _plan(svc, [a], None, None)
        if not plans:
            raise NoAgentAvailable(f"No agent can take assignment {a.id} now.",
                                   hint="It stays queued; `fleet dispatch` sends it when an agent frees up.")
        sent = send_first(svc, plans[0].assignment, plans[0].spec, plans[0].token, actor=actor)
        return {"assignment": a.id, "agent": sent.agent, "turn_id": sent.turn_id, "delivered": True,
                "duplicate": False}
    if a.state not in ("sent", "working") or a.agent is None:
        raise InvalidTransition(
            f"Assignment {a.id} is {a.state}; only a sent or working assignment can be sent more.",
            hint=f"Run `fleet show {a.id}`; a redo is a new assignment.", assignment=a.id, state=a.state)
    spec = svc.config.agent(a.agent)
    holder = assignment_holder(a.id)
    body = text if text is not None else (a.prompt or a.task)
    renew_lease(svc, spec.name, a.id, a.deadline)
    if a.branch is not None:  # a resume continues on the assignment's branch, edits kept
        prepare(svc, spec, a.id)
    with svc.agent_guard(spec, holder, None, operation="deliver"):
        receipt = svc.runtime.send(spec, body, request_id, DELIVERY_TIMEOUT, holder=holder)
    svc.ledger.annotate(a.id, "delivered", actor=actor,
                        details={"turn_id": receipt["turn_id"], "chars": receipt["chars"], "resend": text is None,
                                 "request_id": request_id, "duplicate": receipt["duplicate"],
                                 "latency_ms": receipt["latency_ms"]})
    base = svc.ledger.baseline(a.id) or {}
    write_context(svc.runtime.agent_dir(spec.name), HookContext(
        assignment=a.id, role=spec.role, cwd=str(spec.cwd), write_paths=tuple(base.get("write_paths", ())),
        read_paths=tuple(base.get("read_paths", ())), turn_id=receipt["turn_id"]))
    return {"assignment": a.id, "agent": spec.name, "turn_id": receipt["turn_id"], "delivered": True,
            "duplicate": receipt["duplicate"]}


# -- cancel ------------------------------------------------------------------------------------------

def assignment_cancel(svc: Service, *, assignment: str, interrupt: bool, holder: str | None = None) -> dict[str, Any]:
    """Cancel an open assignment, free its agent (hook context and lease) and, with `interrupt`, stop
    its running turn. One whose agent runs on a remote host (shared ledger) is cancelled there, where
    its lease, hook context and pane are; one whose agent this host does not know at all is cancelled
    in the ledger only: the agent's own host frees it (hook context and lease) at its next watchdog
    tick (`delivery.end_stale_contexts`)."""
    agent = svc.ledger.get(assignment).agent
    if agent is not None and (there := forward_if_remote(
            svc, "assignment_cancel", {"assignment": assignment, "interrupt": interrupt, "holder": holder},
            agent=agent)) is not None:
        return there
    caller = svc.holder_for(holder)
    for _ in range(3):
        a = svc.ledger.get(assignment)
        if a.state in END_STATES:
            return {"assignment": a.id, "cancelled": False, "state": a.state, "interrupted": False}
        try:
            svc.ledger.transition(a.id, "cancelled", actor=caller, expect=a.state, reason=f"cancelled by {caller}",
                                  details={"interrupt": interrupt})
            break
        except StateConflict:
            continue
    else:
        raise StateConflict(f"Assignment {assignment} kept changing while it was being cancelled.",
                            hint="Retry the cancel.", assignment=assignment)
    interrupted = False
    try:
        if interrupt and a.agent in svc.config.agents and a.state in ("sent", "working"):
            spec = svc.config.agent(a.agent)
            with svc.agent_guard(spec, assignment_holder(a.id), None, operation="interrupt"):
                interrupted = bool(svc.runtime.interrupt(spec)["interrupted"])
    finally:
        end_context(svc, a.agent, a.id)
    return {"assignment": a.id, "cancelled": True, "state": "cancelled", "interrupted": interrupted,
            "turn_id": a.turn_id}
