"""The lease commands of the `fleet` CLI: claim, release, leases, lease-repair.

Each is one registry operation with the same argument names; the conventions are `fleet.cli.base`'s.
A lease conflict exits 3.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from .agents import agent_label
from .base import AgentArg, HolderOpt, JsonOpt, TokenOpt, run


def claim_cmd(agent: AgentArg, holder: HolderOpt = None, token: TokenOpt = None,
              ttl: Annotated[float | None, typer.Option(
                  help="Lease length in seconds (1..86400, default 1800).")] = None,
              wait: Annotated[float | None, typer.Option(
                  help="Wait up to this many seconds for a held lease (<= 600).")] = None,
              as_json: JsonOpt = False) -> None:
    """Claim (or renew) an agent's lease. Others are refused (exit 3) until it is released or expires.

    With --token, only renew that lease: a stale token is refused (lease_lost) instead of claiming anew."""
    run("agent_claim", {"agent": agent, "holder": holder, "token": token, "ttl": ttl, "wait": wait}, as_json,
        lambda r: print(f"{r['agent']}: {r['status']} by {r['holder']}, token {r['token']}, ttl {r['ttl']:.0f}s"))


def release_cmd(agent: AgentArg, holder: HolderOpt = None, token: TokenOpt = None,
                force: Annotated[bool | None, typer.Option("--force", help="Break anyone's lease (audited).")] = None,
                as_json: JsonOpt = False) -> None:
    """Release an agent's lease. With --token, only that lease: a stale token is refused (lease_lost)."""
    run("agent_release", {"agent": agent, "holder": holder, "token": token, "force": force}, as_json,
        lambda r: print(f"{r['agent']}: " + ("released" if r["released"] else "was not held")))


def leases_cmd(as_json: JsonOpt = False) -> None:
    """List every agent's lease: free, held (holder, token, expires in) or expired."""
    run("fleet_leases", {}, as_json, _render_leases)


def _render_leases(r: dict[str, Any]) -> None:
    for lease in r["leases"]:
        agent = agent_label(lease["agent"], lease.get("host"))
        if lease["state"] == "corrupt":
            print(f"{agent}: CORRUPT ({lease['error']['message']})")
        elif lease["state"] == "unknown":  # its host gave no answer
            print(f"{agent}: unknown ({lease['error']['message']})")
        elif lease["state"] == "free":
            print(f"{agent}: free")
        else:
            print(f"{agent}: {lease['state']} by {lease['holder']}, token {lease['token']}, "
                  f"expires in {lease['expires_in']:.0f}s")


def lease_repair_cmd(agent: AgentArg, holder: HolderOpt = None, as_json: JsonOpt = False) -> None:
    """Move a corrupt lease record aside (kept and audited) so the agent can be claimed again."""
    run("lease_repair", {"agent": agent, "holder": holder}, as_json)
