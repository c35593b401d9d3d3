"""Watchdog operations: one tick, the watchdog's status, and answering an agent's held approval.

The tick itself lives in `fleet.service.tick`; these handlers only call it and shape results.
`agent_approve` / `agent_deny` answer the approval fleet's PermissionRequest hook is holding (see
`fleet.agents.approvals`): an exact answer through a file the hook polls, never keystrokes.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from fleet.agents.approvals import pending, write_answer
from fleet.agents.observe import wait_until
from fleet.errors import FleetError
from fleet.service.tick import run_tick
from fleet.watchdog import systemd

from .core import Service
from .hosts import forward_if_remote
from .watchdogstore import open_watchdog_store

#: How long approve/deny wait to see the hook take the answer (it polls every 0.2 s).
ANSWER_WAIT: Final = 5.0


class NoPendingApproval(FleetError):
    code = "no_pending_approval"


class ApprovalChanged(FleetError):
    """The agent now waits on another request than the one the caller looked at (answered, timed out
    or replaced meanwhile): answering would allow or deny a command nobody has seen."""

    code = "approval_changed"


class ApprovalNotHeld(FleetError):
    """The hook stopped holding the call: Codex's own dialog is open and only the pane can answer."""

    code = "approval_not_held"


def watchdog_tick(svc: Service, *, dry_run: bool) -> dict[str, Any]:
    return dict(run_tick(svc, dry_run=dry_run))


def watchdog_status(svc: Service, *, ticks: int) -> dict[str, Any]:
    timer = systemd.status(fleet=svc.config.name)
    with open_watchdog_store(svc) as store:
        last = store.ticks(1)
        recent = store.ticks(ticks, acted_only=True)
        agents = store.agents()
    policy = svc.config.watchdog
    return {
        "fleet": svc.config.name,
        "timer": dict(timer),
        "policy": {"every": policy.every, "idle_after": policy.idle_after, "report_grace": policy.report_grace,
                   "stall_after": policy.stall_after, "ladder": list(policy.ladder), "lead": policy.lead},
        "last_tick": last[0].to_dict() if last else None,
        "recent": [t.to_dict() for t in recent],
        "agents": [{"agent": r.agent, "restarts": r.restarts, "last_restart_at": r.last_restart_at,
                    "fatal_at": r.fatal_at, "fatal_reason": r.fatal_reason} for r in agents.values()
                   if r.restarts or r.fatal_at],
    }


def agent_approve(svc: Service, *, agent: str, request: str | None = None, holder: str | None = None,
                  token: int | None = None) -> dict[str, Any]:
    if (there := forward_if_remote(svc, "agent_approve", {"agent": agent, "request": request, "holder": holder,
                                                          "token": token}, agent=agent)) is not None:
        return there  # its hook holds the call on its host
    return _answer(svc, agent, "allow", "", request, holder, token)


def agent_deny(svc: Service, *, agent: str, message: str, request: str | None = None, holder: str | None = None,
               token: int | None = None) -> dict[str, Any]:
    if (there := forward_if_remote(svc, "agent_deny", {"agent": agent, "message": message, "request": request,
                                                       "holder": holder, "token": token}, agent=agent)) is not None:
        return there
    return _answer(svc, agent, "deny", message, request, holder, token)


def _answer(svc: Service, agent: str, decision: Literal["allow", "deny"], message: str, expected: str | None,
            holder: str | None, token: int | None) -> dict[str, Any]:
    """Answer the approval `agent` waits on; `expected` (the request id the caller saw, in `fleet_status`)
    makes it refuse with `approval_changed` when the agent now waits on another one."""
    spec = svc.config.agent(agent)
    rt = svc.runtime
    who = svc.holder_for(holder)
    with svc.leased([spec], holder, token):
        waiting = pending(rt.events(agent))  # only what follows the latest `launched` counts
        if waiting is None:
            raise NoPendingApproval(f"Agent {agent!r} is not waiting on an approval fleet's hook recorded.",
                                    hint=f"See `fleet status {agent}`; a dialog opened before fleet's hook was "
                                    f"wired can only be answered at the pane (`fleet attach {agent}`).",
                                    agent=agent)
        request = str(waiting["request"])
        if expected is not None and expected != request:
            raise ApprovalChanged(
                f"Agent {agent!r} no longer waits on approval request {expected}; it waits on {request} now.",
                hint=f"See its command with `fleet status {agent}`, then answer that one (--request {request}).",
                agent=agent, request=request, expected=expected)
        if not waiting.get("held"):
            raise ApprovalNotHeld(
                f"Fleet's hook stopped holding {agent}'s approval request {request} (it waited its time out), "
                "so Codex's own dialog is open.",  # no command here: an error is not marked as agent text
                hint=f"Answer it at the pane: `fleet attach {agent}`.", agent=agent, request=request)
        write_answer(rt.agent_dir(agent), request, decision, by=who, message=message)

        def taken() -> dict[str, Any] | None:
            return next((ev for ev in reversed(rt.events(agent)) if ev.get("request") == request
                         and ev.get("event") in ("approval_answered", "approval_released")), None)

        seen = wait_until(taken, ANSWER_WAIT, interval=0.05)
    return {"agent": agent, "request": request, "decision": decision, "tool": waiting.get("tool"),
            "command": waiting.get("command"),
            "applied": bool(seen and seen.get("event") == "approval_answered" and seen.get("decision") == decision)}
