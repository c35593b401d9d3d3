"""Routing and delivering assignments: who takes one, its lease, its cwd baseline, prompt and send.

Concurrency. Every routing decision (gather facts, route, write the ledger row, claim the lease) is
taken under one file lock per state dir, `<state_dir>/assign.lock`, held for milliseconds: two
`assign` or `dispatch` calls in different processes can never pick the same agent, because the
second one routes after the first one's lease `assignment:<id>` is on record. The send itself
(a second or more) runs outside that lock, under the assignment's lease; until the receipt that
lease lasts `DELIVERY_TTL`, so a process that dies mid-delivery frees the agent soon, and after the
receipt it is renewed to the deadline plus `DEADLINE_GRACE`.

A caller that holds an agent's lease (with its token, if it gives one) hands the agent over to the
assignment: its lease is released and the assignment's claimed at once. Anyone else's live lease
makes the agent ineligible (routing says `leased`).

Not thread-safe per `Service`; use one service per thread, as the adapters do.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from fleet.agents.text import DELIVERY_TIMEOUT
from fleet.config import AgentSpec
from fleet.errors import (
    AgentBusy,
    AgentNotRunning,
    FleetError,
    InvalidInput,
    LeaseHeld,
    LeaseLost,
    NotDelivered,
    Timeout,
)
from fleet.fsutil import ensure_dir, flock_within, open_lock_file
from fleet.leases.rules import MAX_TTL
from fleet.vocab import assignment_holder
from fleet.work.records import Assignment
from fleet.work.scope import normalize_scope

from .core import Service

if TYPE_CHECKING:
    from fleet.work.routing import AgentFacts
    from fleet.work.skills import Inventory

#: The lock file that serialises routing decisions across processes.
ASSIGN_LOCK: Final = "assign.lock"
#: Routing holds the lock for milliseconds; a caller waiting longer than this has a stuck peer.
LOCK_TIMEOUT: Final = 30.0
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


@contextlib.contextmanager
def routing_lock(svc: Service) -> Iterator[None]:
    """One routing decision at a time across processes (an flock on `assign.lock`)."""
    fd = open_lock_file(ensure_dir(svc.config.state_dir) / ASSIGN_LOCK)
    try:
        if not flock_within(fd, LOCK_TIMEOUT):
            raise Timeout(f"Another fleet process held the routing lock for over {LOCK_TIMEOUT:.0f} s.",
                          hint="Retry; if it persists, look for a stuck fleet process.")
        yield
    finally:
        os.close(fd)  # drops the flock


# -- skills and facts ----------------------------------------------------------------------------

def plugins_enabled(spec: AgentSpec) -> bool | None:
    """False when the agent is launched with `-c features.plugins=false` (or `--disable plugins`);
    None lets the skill scan read the agent's config.toml."""
    args = list(spec.args)
    for i, arg in enumerate(args[:-1]):
        value = args[i + 1].replace(" ", "")
        if arg in ("-c", "--config") and value in ("features.plugins=false", 'features.plugins="false"'):
            return False
        if arg == "--disable" and value == "plugins":
            return False
    return None


def inventory(spec: AgentSpec) -> Inventory:
    """The agent's skills as its Codex would load them (reads its homes and cwd; YAML loads here)."""
    from fleet.work.skills import agent_home, scan_skills

    home = spec.env.get("HOME")
    return scan_skills(spec.home, spec.cwd, agent_home({"HOME": home} if home else None),
                       plugins_enabled=plugins_enabled(spec))


def _used_percent(status: dict[str, Any]) -> float | None:
    """The higher rate-limit window use the status reports, if it reports one."""
    limits = status.get("rate_limits")
    if not isinstance(limits, dict):
        return None
    used = [w.get("used_percent") for w in (limits.get("primary"), limits.get("secondary")) if isinstance(w, dict)]
    numbers = [float(u) for u in used if isinstance(u, int | float)]
    return max(numbers) if numbers else None


def gather_facts(svc: Service, specs: Sequence[AgentSpec], caller: str | None,
                 inventories: dict[str, Inventory]) -> list[AgentFacts]:
    """One routing fact per agent, read now: state (Codex's signals), lease, skills and ledger load.
    A lease held by `caller` does not count against the agent (the caller hands it over; pass a
    caller only for work that names its agent, never for routed work)."""
    from fleet.work.routing import AgentFacts

    load = svc.ledger.agent_load()
    statuses = {str(s["name"]): dict(s) for s in svc.runtime.status(list(specs))}
    out = []
    for spec in specs:
        status = statuses.get(spec.name, {})
        try:
            lease = svc.leases.info(spec.name)
            other = lease["state"] == "held" and lease["holder"] != caller
        except FleetError:  # a corrupt record fails closed
            other = True
        count, last = load.get(spec.name, (0, None))
        state = str(status.get("state", "stopped"))
        out.append(AgentFacts(
            name=spec.name, role=spec.role, state=state, skills=inventories[spec.name].names(),
            leased_by_other=other, limited=state == "limited", open_assignments=count, last_assigned_at=last,
            used_percent=_used_percent(status),
        ))
    return out


# -- scope ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Scope:
    """Write and read paths in normal form for one agent's cwd."""

    write: tuple[str, ...]
    read: tuple[str, ...]


def scope_for(spec: AgentSpec, write: Sequence[str], read: Sequence[str]) -> tuple[Scope, list[str]]:
    """The scope normalised against `spec.cwd` (symlinks resolved) and every problem found."""
    cwd = str(spec.cwd)
    w = normalize_scope(write, cwd)
    r = normalize_scope(read, cwd)
    problems = [*(f"write path {p}" for p in w.problems), *(f"read path {p}" for p in r.problems)]
    return Scope(w.entries, r.entries), problems


def lexical_scope(paths: Sequence[str], what: str) -> tuple[str, ...]:
    """Paths for an assignment fleet will route: relative, normalised without touching a disk (the
    agent is not known yet); refused when absolute or escaping the cwd."""
    absolute = [p for p in paths if p.startswith("/")]
    if absolute:
        raise InvalidInput(
            f"The {what} path {absolute[0]!r} is absolute; without --to, paths are relative to whichever "
            "agent's working directory the assignment is routed to.",
            hint="Give paths relative to the agent's working directory, or name the agent with --to.")
    root = "/cwd"
    norm = normalize_scope(paths, root, follow_links=False)
    if norm.problems:
        problem = norm.problems[0].replace(f" {root}", "")
        raise InvalidInput(f"The {what} paths are not usable: {problem}.",
                           hint="Paths must stay inside the agent's working directory.")
    return norm.entries


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
    from fleet.hooks.gates import clear_context

    if agent is None or agent not in svc.config.agents:
        return
    with contextlib.suppress(OSError):
        clear_context(svc.runtime.agent_dir(agent), assignment_id)
    free_lease(svc, agent, assignment_id)


# -- delivery -------------------------------------------------------------------------------------

class SendAborted(Exception):
    """Nothing was typed (the agent was busy, stopped or had text in its composer)."""

    def __init__(self, error: FleetError) -> None:
        super().__init__(error.message)
        self.error = error


def template_text(svc: Service) -> str:
    from fleet.work.prompt import load_template

    return load_template(svc.config.assignment_template)


def send_first(svc: Service, a: Assignment, spec: AgentSpec, token: int, *, actor: str) -> Assignment:
    """Deliver a queued assignment to `spec` under its lease (token `token`): normalise its scope for
    this agent, snapshot the cwd as the verification baseline, write the hook context, render and
    send the prompt, record `sent` with the receipt, and renew the lease to the deadline.

    Raises `SendAborted` when nothing was typed (the caller decides: queue again or fail), and
    `NotDelivered` after the assignment was marked failed (keys went in, no receipt came).
    """
    from fleet.agents.codex import effective_sandbox
    from fleet.hooks.gates import HookContext, clear_context, write_context
    from fleet.work.prompt import PromptSpec, render_prompt
    from fleet.work.verify import SnapshotError, snapshot

    holder = assignment_holder(a.id)
    scope, problems = scope_for(spec, a.write_paths, a.read_paths)
    if problems:
        raise SendAborted(InvalidInput(f"The assignment's paths do not fit agent {spec.name}: {problems[0]}.",
                                       hint="Assign again with paths inside that agent's working directory."))
    now = time.time()
    try:
        prompt = render_prompt(
            PromptSpec(assignment_id=a.id, task=a.task, cwd=str(spec.cwd), write_paths=scope.write,
                       read_paths=scope.read, skills=a.skills, checks=a.checks, deadline=a.deadline, role=spec.role),
            now=now, template=template_text(svc), tz=datetime.now().astimezone().tzinfo)
    except FleetError as exc:  # a template changed since, or a prompt over the limit for this agent
        raise SendAborted(exc) from exc
    try:
        snap = snapshot(spec.cwd)
    except SnapshotError as exc:
        raise SendAborted(InvalidInput(f"fleet cannot snapshot {spec.cwd} to verify the work later: {exc}.",
                                       hint="Fix the working directory (or its git repository) and assign again.")
                          ) from exc
    baseline = {"version": 1, "agent": spec.name, "role": spec.role, "cwd": str(spec.cwd),
                "write_paths": list(scope.write), "read_paths": list(scope.read), "snapshot": snap.to_json(),
                "sandbox": effective_sandbox(spec)}  # the verification records what the work ran under
    svc.ledger.annotate(a.id, "baseline", actor=actor, baseline=baseline,
                        details={"agent": spec.name, "kind": snap.kind, "files": len(snap.files),
                                 "write_paths": list(scope.write), "notes": list(snap.notes)})
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
    sent = svc.ledger.transition(
        a.id, "sent", actor=actor, expect="queued", agent=spec.name, prompt=prompt, receipt=dict(receipt),
        turn_id=receipt["turn_id"],
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
         expect: Sequence[str]) -> Assignment | None:
    """Move an open assignment to `failed` (compare-and-set on `expect`), free its agent; None when
    another process ended it first."""
    from fleet.errors import StateConflict

    try:
        done = svc.ledger.transition(assignment_id, "failed", actor=actor, expect=tuple(expect),  # type: ignore[arg-type]
                                     reason=reason, details={"reason": reason})
    except StateConflict:
        return None
    end_context(svc, agent, assignment_id)
    return done
