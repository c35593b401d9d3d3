"""Lease operations: claim, release, list, repair. The rules live in `fleet.leases`."""

from __future__ import annotations

from typing import Any

from fleet.errors import FleetError, StoreUnavailable

from .core import Service
from .hosts import forward_if_remote


def agent_claim(svc: Service, *, agent: str, ttl: float, wait: float, holder: str | None = None,
                token: int | None = None) -> dict[str, Any]:
    if (there := forward_if_remote(svc, "agent_claim", {"agent": agent, "ttl": ttl, "wait": wait, "holder": holder,
                                                        "token": token}, agent=agent, timeout=30.0 + wait)) is not None:
        return there  # its lease lives on its host
    spec = svc.config.agent(agent)
    return dict(svc.leases.claim(spec.name, svc.holder_for(holder), ttl=ttl, wait=wait, token=token))


def agent_release(svc: Service, *, agent: str, force: bool, holder: str | None = None,
                  token: int | None = None) -> dict[str, Any]:
    if (there := forward_if_remote(svc, "agent_release", {"agent": agent, "force": force, "holder": holder,
                                                          "token": token}, agent=agent)) is not None:
        return there
    spec = svc.config.agent(agent)
    return dict(svc.leases.release(spec.name, svc.holder_for(holder), force=force, token=token))


def fleet_leases(svc: Service) -> dict[str, Any]:
    out = []
    for name in svc.config.agents:
        try:
            out.append(dict(svc.leases.info(name)))
        except StoreUnavailable:  # the shared store is down: no agent's lease is known, none is corrupt
            raise
        except FleetError as exc:
            out.append({"agent": name, "state": "corrupt", "error": exc.to_dict()})
    if svc.config.remote_agents:  # each host's own leases (`fleet.service.hosts`)
        from .hosts import remote_leases  # noqa: PLC0415 (only a config with hosts needs it)

        out += remote_leases(svc)
    return {"leases": out}


def lease_repair(svc: Service, *, agent: str, holder: str | None = None) -> dict[str, Any]:
    spec = svc.config.agent(agent)
    return dict(svc.leases.repair(spec.name, svc.holder_for(holder)))
