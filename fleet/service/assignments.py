"""Assignment reads: skills, list, show, events, and waiting for assignments to end.

Every read first reconciles (`fleet.service.tracking.reconcile`), so what it returns is as far as
Codex's signals allow; a wait also dispatches queued work it waits on (`fleet.service.assign`).
The write side (assign, dispatch, deliver, cancel) is `fleet.service.assign`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from typing import Any, Final

from fleet.tokens import budget_use
from fleet.work.records import Assignment

from .assign import compact, dispatch
from .core import Service
from .routing import inventory
from .tracking import reconcile

#: What the MCP surface lets one `assignment_wait` call block for (clients time tool calls out).
MCP_MAX_WAIT: Final = 50.0
#: A waiter re-reads everything this often even when no file moved (a dead pane, a deadline).
FULL_CHECK_EVERY: Final = 1.0
#: How often a waiter looks at the journals' and the ledger's change markers (cheap stat calls).
WAIT_POLL: Final = 0.1


def skill_list(svc: Service, *, agents: list[str] | None = None) -> dict[str, Any]:
    out = []
    for spec in svc.specs(agents):
        inv = inventory(spec)
        entry: dict[str, Any] = {"name": spec.name, "skills": [s.to_dict() for s in inv.skills]}
        if inv.warnings:
            entry["warnings"] = list(inv.warnings)
        out.append(entry)
    return {"agents": out}


def assignment_list(svc: Service, *, open_only: bool, limit: int, agent: str | None = None) -> dict[str, Any]:
    if agent is not None:
        svc.config.agent(agent)
    reconcile(svc)
    rows = svc.ledger.summaries(open_only=open_only, agent=agent, limit=limit)
    return {"assignments": [r.to_dict() for r in rows]}


def assignment_get(svc: Service, *, assignment: str) -> dict[str, Any]:
    a = svc.ledger.get(assignment)
    if a.open and a.agent:
        reconcile(svc, [a.agent])
        a = svc.ledger.get(assignment)
    out = a.to_dict()
    out["budget_use"] = budget_use(a.budget, a.usage)
    out["events"] = [e.to_dict() for e in svc.ledger.events_for(assignment)]
    return out


def fleet_events(svc: Service, *, since: int, limit: int, assignment: str | None = None) -> dict[str, Any]:
    reconcile(svc)
    events, cursor = svc.ledger.events_since(since, limit, assignment=assignment)
    return {"events": [e.to_dict() for e in events], "cursor": cursor}


def assignment_wait(svc: Service, *, assignments: list[str], timeout: float) -> dict[str, Any]:
    limit = timeout
    if svc.surface == "mcp":
        limit = min(timeout, MCP_MAX_WAIT)
    done, pending = wait_for(svc, assignments, limit)
    return {"done": [compact(a) for a in done], "pending": [compact(a) for a in pending], "waited_max": limit}


def _signature(svc: Service, agents: Iterable[str]) -> tuple[Any, ...]:
    """What changes when anything an assignment depends on may have moved: the ledger's
    data_version (another process committed) and each journal's size and mtime."""
    marks: list[Any] = [svc.ledger.data_version()]
    for agent in sorted(agents):
        try:
            st = os.stat(svc.runtime.journal_path(agent))
            marks.append((st.st_size, st.st_mtime_ns))
        except OSError:
            marks.append(None)
    return tuple(marks)


def wait_for(svc: Service, ids: list[str], timeout: float) -> tuple[list[Assignment], list[Assignment]]:
    """Block until every assignment in `ids` has ended or `timeout` seconds pass; returns (ended,
    pending). Between checks it only stats the agents' journals and reads the ledger's
    data_version every `WAIT_POLL` s, and reconciles when one moved (or every `FULL_CHECK_EVERY`)."""
    ledger = svc.ledger
    rows = [ledger.get(i) for i in ids]
    end = time.monotonic() + timeout
    while True:
        if any(r.state == "queued" for r in rows):
            dispatch(svc)
        agents = sorted({r.agent for r in rows if r.agent and r.open})
        if agents:
            reconcile(svc, agents)
        rows = [ledger.get(i) for i in ids]
        pending = [r for r in rows if r.open]
        if not pending or time.monotonic() >= end:
            return [r for r in rows if not r.open], pending
        agents = sorted({r.agent for r in pending if r.agent})
        mark = _signature(svc, agents)
        full = time.monotonic() + FULL_CHECK_EVERY
        while (now := time.monotonic()) < min(end, full):
            time.sleep(min(WAIT_POLL, max(0.0, min(end, full) - now)))
            if _signature(svc, agents) != mark:
                break
