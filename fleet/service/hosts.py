"""Remote hosts in the service layer: `fleet hosts`, the remote half of `fleet status` and `fleet
leases`, and the operations forwarded to a remote agent's host (`send`, `tail`).

A remote agent's status and lease are asked from its host (`fleet.hosts`), every host at once, all
within one bound. A host that does not answer in time, or cannot be reached, shows its agents as
`unreachable` (their leases `unknown`) with the reason: never `stopped`, which would say something
nobody saw. A forwarded send always carries a request id, so the channel may ask again for a lost
answer without typing the prompt twice.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Final

from fleet.errors import FleetError

if TYPE_CHECKING:
    from fleet.config.hosts import RemoteAgent

    from .core import Service

#: How long `fleet status` waits for the hosts (seconds, connecting included): past it, a host's
#: agents are `unreachable`.
STATUS_BOUND: Final = 8.0
#: How long `fleet hosts` waits for each host (connecting and two round trips).
HOSTS_BOUND: Final = 10.0


def unreachable(agent: RemoteAgent, why: str) -> dict[str, Any]:
    """The status entry of a remote agent whose host gave no status: every fact unknown."""
    return {"name": agent.name, "state": "unreachable", "detail": why[:300], "role": agent.role,
            "sandbox": agent.sandbox, "pid": None, "home": agent.home, "cwd": agent.cwd or agent.repo or "",
            "since": None, "last_turn": None, "exit_status": None, "exit_signal": None, "resets_at": None,
            "rate_limits": None, "rate_limits_at": None, "approval": None, "usage": None,
            "lease": {"agent": agent.name, "state": "unknown"}, "host": agent.host}


def _by_host(agents: Iterable[RemoteAgent]) -> dict[str, list[RemoteAgent]]:
    """Host -> its agents among `agents`, hosts and agents in the order given."""
    out: dict[str, list[RemoteAgent]] = {}
    for agent in agents:
        out.setdefault(agent.host, []).append(agent)
    return out


def remote_status(svc: Service, names: list[str] | None) -> dict[str, dict[str, Any]]:
    """Name -> status entry of the remote agents among `names` (None: all), each with its `host`."""
    remote = svc.config.remote_agents
    by_host = _by_host([remote[n] for n in names if n in remote] if names is not None else remote.values())
    # all of a host's agents: one it does not define shows as such instead of failing the others
    answers = svc.hosts.ask({h: ("fleet_status", {}) for h in by_host}, STATUS_BOUND)
    out: dict[str, dict[str, Any]] = {}
    for host, agents in by_host.items():
        answer = answers[host]
        if isinstance(answer, FleetError):
            for agent in agents:
                out[agent.name] = unreachable(agent, f"host {host}: {answer.code}: {answer.message}")
            continue
        got = {e.get("name"): e for e in answer.get("agents", ()) if isinstance(e, dict)}
        for agent in agents:
            entry = got.get(agent.name)
            if entry is None or not isinstance(entry.get("state"), str):
                out[agent.name] = unreachable(agent, f"host {host}: its fleet config has no agent {agent.name!r}")
            else:
                out[agent.name] = {**entry, "name": agent.name, "host": host}
    return out


def remote_leases(svc: Service) -> list[dict[str, Any]]:
    """The leases of every remote agent, as its host's `fleet_leases` reports them (with `host`),
    every host at once within the status bound; a host that gave none: `unknown` with its error."""
    by_host = _by_host(svc.config.remote_agents.values())
    answers = svc.hosts.ask({h: ("fleet_leases", {}) for h in by_host}, STATUS_BOUND)
    out = []
    for host, agents in by_host.items():
        answer = answers[host]
        got = {} if isinstance(answer, FleetError) else {
            e.get("agent"): e for e in answer.get("leases", ()) if isinstance(e, dict)}
        for agent in agents:
            entry = got.get(agent.name)
            if entry is not None and isinstance(entry.get("state"), str):
                out.append({**entry, "agent": agent.name, "host": host})
                continue
            error = answer.to_dict() if isinstance(answer, FleetError) else {
                "code": "unknown_agent", "message": f"host {host}: its fleet config has no agent {agent.name!r}.",
                "hint": f"Define {agent.name} in the fleet.toml on {host}."}
            out.append({"agent": agent.name, "state": "unknown", "host": host, "error": error})
    return out


#: Added to a forwarded operation's own timeout for the channel (connecting, the remote's start-up).
_FORWARD_SLACK: Final = 20.0


def forward(svc: Service, host: str, op: str, args: dict[str, Any], *, timeout: float,
            mutating: bool = False) -> dict[str, Any]:
    """Run `op` on `host`; its result (with `host`), or its error, raised here with the remote's code
    (`fleet.hosts.channel.remote_error`)."""
    result = svc.hosts.channel(host).request(op, args, timeout=timeout + _FORWARD_SLACK, mutating=mutating)
    return {**result, "host": host}


#: Forwarded operations that only read: run under no holder, and asked again if an answer is lost.
_READS: Final = frozenset({"agent_tail"})
#: Forwarded operations that always carry a request id (one is made when the caller gave none), so the
#: channel asks again for a lost answer with it and is answered with the first receipt: a send is
#: never typed twice.
_WITH_REQUEST_ID: Final = frozenset({"agent_send"})


def forward_if_remote(svc: Service, op: str, args: dict[str, Any], *, agent: str,
                      timeout: float = 30.0) -> dict[str, Any] | None:
    """None when `agent` is not a remote agent (the caller runs `op` here); else `op` run on its host
    (`forward`, or `forward_agent_op` for an operation that changes something) and its result."""
    remote = svc.config.remote_agents.get(agent)
    if remote is None:
        return None
    if op in _READS:
        return forward(svc, remote.host, op, args, timeout=timeout)
    if op in _WITH_REQUEST_ID:
        args = {**args, "request_id": args.get("request_id") or remote_request_id()}
    return forward_agent_op(svc, op, args, timeout=timeout, host=remote.host)


def remote_request_id() -> str:
    """A request id for a forwarded request whose caller gave none: it makes a lost answer safe to ask
    for again (`fleet.hosts.channel`)."""
    import secrets  # noqa: PLC0415 (a forwarded request only)

    return f"fleet-remote:{secrets.token_hex(12)}"


def forward_agent_op(svc: Service, op: str, args: dict[str, Any], *, timeout: float = 30.0,
                     host: str | None = None) -> dict[str, Any]:
    """A mutating operation (`send`, `interrupt`, `approve`/`deny`, `claim`/`release`, an assignment's)
    run on `host` (default: that of the remote agent `args` names) under the caller's holder (the remote
    leases and audit name the same holder); arguments that are None are left out. Not asked again if
    the channel loses its answer: it fails `host_lost`, since it may have run there (an approval names
    its request, so a second answer would be refused anyway), unless it carries a `request_id`."""
    call = {k: v for k, v in args.items() if v is not None}
    call["holder"] = svc.holder_for(args.get("holder"))
    target = host if host is not None else svc.config.remote_agents[str(args["agent"])].host
    return forward(svc, target, op, call, timeout=timeout, mutating=True)


def forward_many(svc: Service, op: str, names: list[str], args: dict[str, Any], *,
                 timeout: float) -> list[dict[str, Any]]:
    """`up`/`down` (`op`) for remote agents: one request per host with its agents, hosts in parallel,
    under the caller's holder; one row per agent (with `host`). A host that fails gives each of its
    agents a `failed` row with that error (`host_unreachable`, or `host_lost` when the answer was lost:
    it may have run there)."""
    by_host = _by_host(svc.config.remote_agents[n] for n in names)

    def one(host: str) -> list[dict[str, Any]]:
        group = [a.name for a in by_host[host]]
        call = {k: v for k, v in args.items() if v is not None}
        call.update(agents=group, holder=svc.holder_for(args.get("holder")))
        try:
            result = svc.hosts.channel(host).request(op, call, timeout=timeout + _FORWARD_SLACK, mutating=True)
        except FleetError as exc:
            return [{"agent": n, "host": host, "result": "failed", "error": exc.to_dict()} for n in group]
        return [{**row, "host": host} for row in result.get("agents", [])]

    return [row for rows in svc.hosts.each(list(by_host), one).values() for row in rows]


def _probe(svc: Service, name: str) -> dict[str, Any]:
    spec = svc.config.hosts[name]
    agents = sorted(a.name for a in svc.config.remote_agents.values() if a.host == name)
    row: dict[str, Any] = {"name": name, "ssh": spec.ssh, "reachable": False, "connect_ms": None,
                           "latency_ms": None, "version": None, "agents": agents, "missing": [], "error": None}
    channel = svc.hosts.channel(name)
    try:
        started = time.monotonic()
        channel.request("ping", {}, timeout=HOSTS_BOUND)
        opened = time.monotonic()
        pong = channel.request("ping", {}, timeout=max(0.1, HOSTS_BOUND - (opened - started)))
        row.update(reachable=True, connect_ms=round((opened - started) * 1000, 1),
                   latency_ms=round((time.monotonic() - opened) * 1000, 1), version=pong.get("version"))
        theirs = pong.get("agents")
        row["missing"] = [a for a in agents if isinstance(theirs, list) and a not in theirs]
    except FleetError as exc:
        row["error"] = exc.to_dict()
        row["version"] = exc.data.get("remote_version")
    return row


def fleet_hosts(svc: Service) -> dict[str, Any]:
    """Each configured host: reachable, connect time and round-trip latency, its fleet version, the
    agents this config puts there (and any its own config lacks), or the error it failed with."""
    return {"hosts": list(svc.hosts.each(list(svc.config.hosts), lambda n: _probe(svc, n)).values())}
