"""Failover on real Codex against the scripted model: with `on_limit = "reassign"`, the open
assignment of an agent parked at its usage limit moves to an idle agent on another account, ends
`verified` there, and the parked agent never gets its prompt again (after its reset it is told the
work moved)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from conftest import Fleet, wait_until
from mockmodel import MockServer
from mocksteps import Step, rate_limit_headers
from test_watchdog_tick import REPORT, assign, policy, tick

from fleet.work.ledger import Ledger

TASK = "Count the moons of Jupiter."


def on_accounts(f: Fleet, accounts: dict[str, str]) -> None:
    """Give each agent its `account` in the fleet's config."""
    text = f.path.read_text()
    for agent, account in accounts.items():
        text = re.sub(rf"(\[agents\.{agent}\]\n(?:.*\n)*?cwd = .*\n)", rf'\1account = "{account}"\n', text, count=1)
    f.path.write_text(text)


def test_a_parked_agents_assignment_moves_to_an_agent_on_another_account_and_is_verified_there(
        fleet_factory: Callable[..., Fleet], mock_model: MockServer) -> None:
    f = fleet_factory(2, model=mock_model, extra=policy(on_limit="reassign", idle_after="1h", limit_retry="1h"))
    on_accounts(f, {"agent-1": "team-a", "agent-2": "team-b"})
    f.json("up")
    assert [a["account"] for a in f.json("status")["agents"]] == ["team-a", "team-b"]
    reset = int(time.time()) + 12
    mock_model.model.script(Step.usage_limit(headers=rate_limit_headers(100, reset)), Step(text=REPORT))
    mock_model.model.default_text = "Stopped."
    aid = assign(f, "agent-1", TASK)
    wait_until(lambda: f.status("agent-1")["state"] == "limited", timeout=30)

    first = tick(f)
    moved = [a for a in first["actions"] if a["action"] == "reassign"]
    assert [(a["agent"], a["assignment"], a["outcome"]) for a in moved] == [("agent-1", aid, "done")], first
    assert moved[0]["detail"]["to"] == "agent-2"
    with Ledger(f.state_dir) as ledger:
        events = ledger.events_for(aid)
        row = ledger.get(aid)
    assert row.agent == "agent-2"
    hops = [e for e in events if e.kind == "reassigned"]
    assert [(e.details["from"], e.details["to"]) for e in hops] == [("agent-1", "agent-2")]
    # the parked agent's claim ended before the new send: its lease is free
    leases = {lease["agent"]: lease for lease in f.json("leases")["leases"]}
    assert leases["agent-1"]["holder"] != f"assignment:{aid}"
    assert leases["agent-2"]["holder"] == f"assignment:{aid}"

    def verified() -> bool:
        tick(f)
        with Ledger(f.state_dir) as ledger:
            return ledger.get(aid).state == "verified"

    wait_until(verified, timeout=60, interval=0.3)
    prompts = [p for p in mock_model.model.user_prompts() if TASK in p]
    assert len(prompts) == 2  # the first send to agent-1, then the handover to agent-2
    assert "continues the work of agent agent-1" in prompts[1]
    assert "The first attempt changed no file." in prompts[1]

    # After its reset the parked agent is told the work moved, never sent the task or a bare "continue".
    resumed: list[dict[str, Any]] = []
    wait_until(lambda: resumed.extend(a for a in tick(f)["actions"] if a["agent"] == "agent-1") or resumed,
               timeout=60, interval=0.3)
    assert [(a["action"], a["outcome"], a["assignment"]) for a in resumed] == [("resume_after_limit", "done", None)]
    wait_until(lambda: any(aid in p and "given to another agent" in p for p in mock_model.model.user_prompts()),
               timeout=20)
    assert [p for p in mock_model.model.user_prompts() if TASK in p] == prompts
    assert not any(p.strip() == "continue" for p in mock_model.model.user_prompts())
