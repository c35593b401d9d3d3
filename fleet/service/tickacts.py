"""What a watchdog tick does for each action `decide` chose (`fleet.service.tick` gathers, decides
and records around it): dispatch, report requests and reminders, interrupts, restarts, resends,
resumes after a usage limit, failover of a parked agent's assignment (`fleet.service.failover`),
approval answers, fatal marks and telling people.

Every action on an agent runs as holder `watchdog`, or under the agent's open assignment's lease
(`assignment:<id>`) when that is who holds it. An action raises `FleetError` for what went wrong;
the tick records it and carries on with the next.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from typing import Any, Final, Literal

from fleet.agents.approvals import write_answer
from fleet.config import AgentSpec
from fleet.errors import FleetError, InternalError
from fleet.vocab import WATCHDOG_HOLDER, WATCHDOG_POLICY_HOLDER
from fleet.watchdog.decide import Action, AgentFacts
from fleet.watchdog.facts import JournalFacts
from fleet.watchdog.messages import handed_over_text, lead_prompt, notify_payload, report_request, resume_text
from fleet.watchdog.store import AgentRecord, LadderRecord

from .agents import restart_agent
from .assign import deliver, dispatch
from .budgets import fail_over_budget, interrupt_for_budget, interrupt_turn
from .core import Service
from .delivery import fail
from .failover import reassign

#: A notify command gets this long; a hung one must not hold the tick (or the timer) hostage.
NOTIFY_TIMEOUT: Final = 10.0


@dataclass(frozen=True)
class Seen:
    """One agent as this tick saw it: the facts `decide` got, and what the actions need besides."""

    spec: AgentSpec
    facts: AgentFacts
    journal: JournalFacts
    ladder: LadderRecord | None
    record: AgentRecord


def act(svc: Service, action: Action, seen: dict[str, Seen], now: float) -> dict[str, Any] | None:
    """Carry out one action; its result (receipts, answers, what was told) goes into the tick's record."""
    kind = action.action
    if kind == "dispatch":
        return dispatch(svc)
    assert action.agent is not None
    agent = seen[action.agent]
    aid = action.assignment
    if kind in ("request_report", "remind"):
        assert aid is not None
        text = report_request(aid, firm=kind == "remind")
        return deliver(svc, aid, actor=WATCHDOG_HOLDER, text=text)
    if kind == "interrupt_and_reprompt":
        assert aid is not None
        interrupted = interrupt_turn(svc, agent.spec, _holder(agent))
        return {"interrupt": interrupted, **deliver(svc, aid, actor=WATCHDOG_HOLDER)}
    if kind == "restart_resume":
        with svc.leased([agent.spec], _holder(agent), None):
            return restart_agent(svc, agent.spec, agent.journal.session_id)  # a lead's restart ensures its plugin
    if kind == "resend" or (kind == "resume_after_limit" and aid is not None):
        assert aid is not None
        return deliver(svc, aid, actor=WATCHDOG_HOLDER)
    if kind == "resume_after_limit":  # no assignment: a `continue`, or, when its work moved, a note saying so
        moved = agent.facts.handed_over
        with svc.leased([agent.spec], _holder(agent), None):
            return dict(svc.runtime.send(agent.spec, handed_over_text(moved) if moved else resume_text(None),
                                         holder=WATCHDOG_HOLDER))
    if kind == "reassign":
        assert aid is not None
        return reassign(svc, aid, agent.spec.name, actor=WATCHDOG_HOLDER)
    if kind in ("approve", "deny"):
        return _answer(svc, agent, action)
    if kind == "mark_fatal":
        return _give_up(svc, agent, action)
    if kind in ("notify", "escalate", "notify_only"):
        return _tell(svc, action, seen, now)
    if kind in ("budget_interrupt", "fail_over_budget"):  # `fleet.watchdog.budget`
        assert aid is not None
        if kind == "budget_interrupt":
            assert agent.facts.budget is not None  # `decide` interrupts for a budget only with its facts
            return interrupt_for_budget(svc, agent.spec, _holder(agent), aid, agent.facts.budget)
        return fail_over_budget(svc, agent.spec, _holder(agent), aid, action.reason)
    raise InternalError(f"The watchdog has no way to carry out {kind!r}.", hint="This is a bug in fleet.")


def _give_up(svc: Service, agent: Seen, action: Action) -> dict[str, Any]:
    """Marked fatal: the open assignment the watchdog kept open for a restart fails now."""
    out: dict[str, Any] = {"fatal": True}
    if action.assignment is not None:
        done = fail(svc, action.assignment, agent.spec.name, "its agent kept crashing; the watchdog stopped "
                    "restarting it", actor=WATCHDOG_HOLDER, expect=("sent", "working"))
        out["failed"] = done is not None
    return out


def _holder(agent: Seen) -> str:
    """Whose lease an action on this agent runs under: its assignment's, else the watchdog's."""
    f = agent.facts
    return f.lease_holder if f.lease == "assignment" and f.lease_holder else WATCHDOG_HOLDER


def _answer(svc: Service, agent: Seen, action: Action) -> dict[str, Any]:
    raw = agent.journal.approval
    if raw is None or not raw.get("request"):
        raise InternalError("The approval to answer has no request id.", hint="This is a bug in fleet.")
    decision: Literal["allow", "deny"] = "allow" if action.action == "approve" else "deny"
    write_answer(svc.runtime.agent_dir(agent.spec.name), str(raw["request"]), decision,
                 by=WATCHDOG_POLICY_HOLDER, message=action.reason if decision == "deny" else "")
    return {"request": raw["request"], "decision": decision}


def _tell(svc: Service, action: Action, seen: dict[str, Seen], now: float) -> dict[str, Any]:
    """Run `notify_command` with the action as JSON on stdin, and prompt the lead if `decide`
    named one (it does only when the lead is idle). Each half fails on its own."""
    out: dict[str, Any] = {}
    command = svc.config.watchdog.notify_command
    if command:
        try:
            proc = subprocess.run(list(command), input=json.dumps(notify_payload(svc.config.name, action, now)),
                                  text=True, capture_output=True, timeout=NOTIFY_TIMEOUT, check=False)
            out["notify"] = {"returncode": proc.returncode, "output": (proc.stdout + proc.stderr)[-500:]}
        except (OSError, subprocess.TimeoutExpired) as exc:
            out["notify"] = {"returncode": None, "output": str(exc)[-500:]}
    if action.lead:
        try:
            spec = svc.config.agent(action.lead)
            with svc.leased([spec], WATCHDOG_HOLDER, None):
                receipt = svc.runtime.send(spec, lead_prompt(svc.config.name, action,
                                                             approval_request=_waiting(action, seen)),
                                           holder=WATCHDOG_HOLDER)
            out["lead"] = {"agent": action.lead, "turn_id": receipt["turn_id"]}
        except FleetError as exc:
            out["lead"] = {"agent": action.lead, "error": exc.to_dict()}
    return out


def _waiting(action: Action, seen: dict[str, Seen]) -> str | None:
    """The request id of the approval an escalation is about (None for other actions)."""
    agent = seen.get(action.agent) if action.agent else None
    if action.action != "escalate" or agent is None or agent.facts.state != "waiting_approval":
        return None
    return str((agent.journal.approval or {}).get("request") or "")
