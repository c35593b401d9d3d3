"""`assignment_create`, the registry's handler: this host's agents through `fleet.service.assign`
(`create_here`), and with remote hosts (`[hosts.*]`) their agents too.

- `to` names a remote agent: its host makes and sends it (`_create_remote`), in the shared ledger
  (`[store]`), so `show`, `wait` and a lead here see it; without a shared store it is refused.
- No `to`, remote agents and a shared store: routing across hosts (`_create_anywhere`): every host,
  this one too, says which agent it would pick (`fleet.service.hostroute`), and the hosts are asked to
  take it best pick first, each routing among its own.
- Otherwise: `create_here`, as on a single host.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from fleet.errors import AgentRemote, FleetError, HostLost, NoAgentAvailable
from fleet.work.lifecycle import END_STATES

from .assign import create_here, created
from .core import Service

if TYPE_CHECKING:
    from fleet.work.records import Assignment

#: A host's answer to a create that passes the work on to the next host: its pick got busy since it
#: was asked, or it cannot be reached (or runs another fleet).
_PASS_ON: Final = frozenset({"no_agent_available", "host_unreachable", "host_version_mismatch"})
#: The ledger's request scope that remembers which host's answer to an attempt was lost (`_lost`).
_LOST_SCOPE: Final = "routelost"


def assignment_create(
    svc: Service, *, task: str, deadline: str, queue: bool, to: str | None = None, skills: list[str] | None = None,
    write_paths: list[str] | None = None, read_paths: list[str] | None = None, checks: list[str] | None = None,
    request_id: str | None = None, holder: str | None = None, token: int | None = None, repo: str | None = None,
    budget: str | int | None = None,
) -> dict[str, Any]:
    args: dict[str, Any] = {"task": task, "deadline": deadline, "queue": queue, "skills": skills,
                            "write_paths": write_paths, "read_paths": read_paths, "checks": checks, "repo": repo,
                            "budget": budget}
    if to is not None and to in svc.config.remote_agents:
        return _create_remote(svc, to=to, request_id=request_id, holder=holder, token=token, args=args)
    if to is None and svc.config.remote_agents and svc.config.store is not None:
        return _create_anywhere(svc, request_id=request_id, holder=holder, args=args)
    return create_here(svc, task=task, deadline=deadline, queue=queue, to=to, skills=skills, write_paths=write_paths,
                       read_paths=read_paths, checks=checks, request_id=request_id, holder=holder, token=token,
                       repo=repo, budget=budget)


def _create_remote(svc: Service, *, to: str, request_id: str | None, holder: str | None, token: int | None,
                   args: dict[str, Any]) -> dict[str, Any]:
    """`assign --to` a remote agent: created and sent by its host, in the shared ledger (`[store]`),
    so `show`, `wait` and the lead here see it as any other. It always carries a request id (one is
    made when the caller gave none): an answer the channel lost is asked again with it and answered
    with the first creation, never a second assignment. Without a shared store the host's ledger is
    its own, which this host could never show or wait on: refused."""
    host = svc.config.remote_agents[to].host
    if svc.config.store is None:
        raise AgentRemote(f"Agent {to!r} runs on host {host!r}, and this fleet has no shared store: an assignment "
                          "made there would be in that host's own ledger, which fleet here cannot show or wait on.",
                          hint="Configure the shared store (`[store] url`, README 'Scaling out') on both hosts, or "
                               f"assign on {host}.", agent=to, host=host)
    from .hosts import forward_agent_op, remote_request_id  # noqa: PLC0415 (only a config with hosts needs it)

    call = {**args, "to": to, "token": token, "holder": holder, "request_id": request_id or remote_request_id()}
    return forward_agent_op(svc, "assignment_create", call, host=host, timeout=60.0)


def _create_anywhere(svc: Service, *, request_id: str | None, holder: str | None,
                     args: dict[str, Any]) -> dict[str, Any]:
    """Routing across hosts, with a shared store: this host and every host are asked at once which
    agent they would pick (`assignment_route`, within the bound `fleet status` uses; a host that does
    not answer in time is passed over, with its reason), and asked to take it best pick first
    (`fleet.work.hostrank`: ties keep this host first, then config order), each routing among its own
    (`assignment_create` without `to`, forwarded); the first that can makes and sends it, in the shared
    ledger, and one whose pick got busy meanwhile (`no_agent_available`) or that cannot be reached
    passes it on; one whose answer was lost does not (`_lost`). Nobody can: with `queue` it waits in
    the queue of this host (the first host's when this one has no agents), else `no_agent_available`
    naming every host's reasons. Each attempt has a request id of its own, derived from the caller's
    (or a fresh one), so a retried call finds each attempt's earlier answer and never makes a second
    assignment."""
    from .hostroute import order_hosts  # noqa: PLC0415 (only a config with hosts needs it)
    from .hosts import forward_agent_op, remote_request_id  # noqa: PLC0415 (the same)

    base = request_id or remote_request_id()
    hosts = list(dict.fromkeys(remote.host for remote in svc.config.remote_agents.values()))
    if request_id is not None:  # a retried call: whichever attempt made it answers, wherever it was
        prior = _prior_attempt(svc, base, hosts)
        if prior is not None:
            return created(prior, True)
    reasons: list[dict[str, Any]] = []

    def here(queue: bool) -> dict[str, Any]:
        target = "local.queue" if queue else "local"
        return create_here(svc, request_id=_attempt_id(base, target), holder=holder, **{**args, "queue": queue})

    def there(host: str, queue: bool) -> dict[str, Any]:
        call = {**args, "queue": queue, "holder": holder,
                "request_id": _attempt_id(base, f"host.{host}.queue" if queue else f"host.{host}")}
        return forward_agent_op(svc, "assignment_create", call, host=host, timeout=60.0)

    if request_id is not None:  # an earlier call lost a host's answer: that host alone is asked again
        lost = svc.ledger.find_request(_LOST_SCOPE, base)
        if lost is not None and lost.result and lost.result.get("host") in hosts:
            return _ask_again(svc, base, str(lost.result["host"]), bool(lost.result.get("queue")), there)
    for host in order_hosts(svc, hosts, args, reasons):
        try:
            return here(False) if host is None else there(host, False)
        except FleetError as exc:
            if exc.code == "host_lost" and host is not None:
                return _lost(svc, exc, host, base)
            if exc.code not in _PASS_ON:
                raise
            reasons += [{**r, "host": host} for r in exc.data.get("reasons", []) if isinstance(r, dict)] or [
                {"host": host, "why": exc.code, "detail": exc.message}]
    if args["queue"]:
        return _queue_somewhere(svc, base, hosts, here, there, reasons)
    raise NoAgentAvailable(f"No agent on this host or on {', '.join(hosts)} can take the assignment now.",
                           hint="Pass --queue to keep it queued until one frees up, or see each host's reasons.",
                           reasons=reasons[:50])


def _prior_attempt(svc: Service, base: str, hosts: list[str]) -> Assignment | None:
    """What an earlier call with this request id made, on whichever host: an attempt whose assignment
    is still open (or ended after it was sent) first. An attempt that ended at creation (its host's pick
    got busy, so it failed and passed the work on) is only the answer when nothing else was made."""
    found = []
    for target in ("local", *(f"host.{h}" for h in hosts), "local.queue", *(f"host.{h}.queue" for h in hosts)):
        prior = svc.ledger.find_request("assign", _attempt_id(base, target))
        if prior is not None and prior.result and prior.result.get("assignment"):
            found.append(svc.ledger.get(str(prior.result["assignment"])))
    made = [a for a in found if a.state not in END_STATES or a.sent_at is not None]
    return (made or found)[0] if found else None


def _queue_somewhere(svc: Service, base: str, hosts: list[str], here: Callable[[bool], dict[str, Any]],
                     there: Callable[[str, bool], dict[str, Any]], reasons: list[dict[str, Any]]) -> dict[str, Any]:
    """Nobody can take it now, and the caller asked to queue it: in the queue of the first host that
    accepts it (this one first when it has an agent that could ever take work, then config order).
    The queue is the shared ledger's, which every host's dispatch offers to its own free agents; a
    host whose agents could never take it (a skill none of them has) or that cannot be reached
    passes it on, and one whose answer was lost does not (`_lost`)."""
    targets: list[str | None] = [None] if any(s.role != "lead" for s in svc.config.agents.values()) else []
    for host in [*targets, *hosts]:
        try:
            return here(True) if host is None else there(host, True)
        except FleetError as exc:
            if exc.code == "host_lost" and host is not None:
                return _lost(svc, exc, host, base, queue=True)
            if exc.code not in (*_PASS_ON, "skill_not_found"):
                raise
            reasons.append({"host": host, "why": exc.code, "detail": exc.message})
    raise NoAgentAvailable("No host can queue the assignment: none has an agent that could ever take it.",
                           hint="See each host's reasons: a skill no host's agents have, or hosts "
                                "that cannot be reached.", reasons=reasons[:50])


def _lost(svc: Service, exc: FleetError, host: str, base: str, *, queue: bool = False) -> dict[str, Any]:
    """A host's answer was lost even after the channel's own retry: it may have made the assignment.
    Found in the shared ledger under the attempt's request id, it is the answer; not found (yet: that
    host may still be making it), the work is not passed on to another host, which could make a
    second one: the caller retries with the same request id, which finds whatever that host made."""
    prior = svc.ledger.find_request("assign", _attempt_id(base, f"host.{host}.queue" if queue else f"host.{host}"))
    if prior is not None and prior.result and prior.result.get("assignment"):
        return created(svc.ledger.get(str(prior.result["assignment"])), True)
    with contextlib.suppress(FleetError):  # remembered, so a retry asks that host again and no other
        svc.ledger.begin_request(_LOST_SCOPE, base, {"host": host, "queue": queue})
        svc.ledger.finish_request(_LOST_SCOPE, base, {"host": host, "queue": queue})
    raise HostLost(f"Host {host!r} was asked to take the assignment and its answer was lost: it may have made it.",
                   hint=f"Retry with --request-id {base}: the retry finds it if {host} made it, and routes it "
                        "once if not.", host=host, request_id=base) from exc


def _ask_again(svc: Service, base: str, host: str, queue: bool,
               there: Callable[[str, bool], dict[str, Any]]) -> dict[str, Any]:
    """A retry of a call whose answer from `host` was lost: that host alone is asked again, with the
    same attempt id (its ledger makes the create idempotent: it answers with what it made, or makes it
    now); routing afresh could make a second assignment elsewhere while the first is still being made
    there. Lost again: `host_lost` again."""
    try:
        return there(host, queue)
    except FleetError as exc:
        if exc.code == "host_lost":
            return _lost(svc, exc, host, base, queue=queue)
        raise


def _attempt_id(base: str, target: str) -> str:
    """The request id of one routing attempt (`base` on `target`: `local`, `host.NAME`, each with `.queue`
    for the queueing attempt; host names have no `.`), within the registry's 128 characters."""
    out = f"{base}:{target}"
    return out if len(out) <= 128 else f"{hashlib.sha256(base.encode()).hexdigest()[:64]}:{target}"[:128]

