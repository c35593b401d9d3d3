"""`fleet_usage`: the tokens each agent and each assignment used, from what fleet already records.

Per agent, the turns its journal still holds (this generation and the one before the last
compaction: `fleet.agents.journal`), each turn's latest `usage` (the Stop hook's, or the rollout's for
a turn that failed); per assignment, the sum reconcile stored in the ledger (`assignments.usage`).
Nothing reads a whole rollout. A turn's time is when its usage was recorded (its end).
"""

from __future__ import annotations

import time
from typing import Any

from fleet.agents.journal import PREVIOUS, READ_MAX, turn_usages
from fleet.durations import parse_duration
from fleet.fsutil import read_jsonl_tail
from fleet.tokens import budget_use
from fleet.vocab import USAGE_KEYS, add_usage
from fleet.work.ledger import MAX_LIST

from .core import Service
from .tracking import reconcile


def _with_turns(usages: list[dict[str, Any]]) -> dict[str, int]:
    total = add_usage(usages)
    return {**{k: total[k] for k in USAGE_KEYS}, "turns": sum(int(u.get("turns", 1)) for u in usages)}


def fleet_usage(svc: Service, *, agent: str | None = None, since: str | None = None) -> dict[str, Any]:
    """Tokens per agent (turns ended since `since`, a duration back from now, or all the journal
    holds) and per assignment (those created since then), and their total over the agents."""
    now = time.time()
    start = now - parse_duration(since, what="since") if since else None
    specs = svc.specs([agent] if agent else None)
    reconcile(svc, [s.name for s in specs])
    agents: list[dict[str, Any]] = []
    for spec in specs:
        events = svc.runtime.events(spec.name)
        older = read_jsonl_tail(svc.runtime.agent_dir(spec.name) / PREVIOUS, READ_MAX)
        turns = {**turn_usages(older), **turn_usages(events)}
        mine = [dict(u) for at, u in turns.values() if start is None or (at is not None and at >= start)]
        agents.append({"name": spec.name, "usage": _with_turns(mine)})
    rows = []
    for a in svc.ledger.assignments(agent=agent, limit=MAX_LIST):
        if a.usage is not None and (start is None or a.created_at >= start) and (agent or a.agent in svc.config.agents):
            rows.append({"id": a.id, "agent": a.agent, "state": a.state, "usage": a.usage, "budget": a.budget,
                         "budget_use": budget_use(a.budget, a.usage)})
    return {"since": start, "agents": agents, "assignments": rows,
            "total": _with_turns([a["usage"] for a in agents])}
