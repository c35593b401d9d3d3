"""Which host to ask first to take an assignment routed across hosts (`assign` without `to`, remote
hosts and a shared store; `fleet.service.assigncreate`).

This host and every remote host are asked at once which of its agents it would pick
(`assignment_route`, an internal operation: read-only, nothing created), all within the bound
`fleet status` uses; the answers are merged by the pure `fleet.work.hostrank`. What comes back is a
ranking at one moment, not a reservation: a host's pick may be taken before the create reaches it.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Final

from fleet.errors import FleetError
from fleet.work.hostrank import HostPick, key_from_json
from fleet.work.hostrank import order_hosts as order_picks

from .hosts import STATUS_BOUND
from .routing import assignment_route, lexical_scope

if TYPE_CHECKING:
    from .core import Service

#: The `assignment_create` arguments routing depends on: what each host is asked with.
ROUTE_ARGS: Final = ("skills", "write_paths", "read_paths", "repo")


def order_hosts(svc: Service, hosts: list[str], args: dict[str, Any],
                reasons: list[dict[str, Any]]) -> list[str | None]:
    """The hosts to ask to create, best pick first (None: this host, asked only when it has agents;
    `hosts` in config order). Each host left out adds to `reasons` why (`host`: None for this one):
    its agents' refusals, or the error it answered with (a skill or repository it lacks, say), or that
    it did not answer in time. Paths that are absolute or leave the cwd are refused first, as by
    `assign` on one host."""
    ask = {k: args[k] for k in ROUTE_ARGS if args.get(k) is not None}
    lexical_scope(ask.get("write_paths") or (), "write")  # paths no host could take: said once, here
    lexical_scope(ask.get("read_paths") or (), "read")
    answers: dict[str | None, dict[str, Any] | FleetError] = {}
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="fleet-route") as pool:
        remote = pool.submit(svc.hosts.ask, dict.fromkeys(hosts, ("assignment_route", ask)), STATUS_BOUND)
        if svc.config.agents:  # this host's own answer, while the hosts work on theirs
            try:
                answers[None] = assignment_route(svc, **ask)
            except FleetError as exc:  # a skill or repository only other hosts have, say
                answers[None] = exc
        answers.update(remote.result())
    picks = []
    for host, answer in answers.items():
        if isinstance(answer, FleetError):
            reasons.append({"host": host, "why": answer.code, "detail": answer.message})
            picks.append(HostPick(host, None))
            continue
        if answer.get("agent") is not None:
            key = key_from_json(answer.get("rank"))
            if key is None:
                reasons.append({"host": host, "why": "host_protocol_error",
                                "detail": "its routing answer named an agent without a valid rank"})
            picks.append(HostPick(host, key))
            continue
        got = answer.get("reasons")
        refusals = [{**r, "host": host} for r in got if isinstance(r, dict)] if isinstance(got, list) else []
        reasons += refusals or [{"host": host, "why": "no_agent_available", "detail": "no agent there can take it"}]
        picks.append(HostPick(host, None))
    return [p.host for p in order_picks(picks)]
