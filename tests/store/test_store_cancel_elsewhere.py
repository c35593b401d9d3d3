"""An assignment cancelled from a host that does not know its agent (shared ledger): that host can only
end the ledger row; the agent's own host frees the agent (hook context and lease) at its next tick,
and leaves alone an agent whose assignment is still open."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from conftest import Fleet
from pgcluster import PgCluster

from fleet import ops
from fleet.hooks.gates import HookContext, read_context, write_context
from fleet.service import Service
from fleet.service.delivery import end_stale_contexts
from fleet.vocab import assignment_holder


def test_the_agents_host_frees_it_at_the_next_tick(fleet_factory: Callable[..., Fleet], pg_cluster: PgCluster,
                                                    tmp_path: Path) -> None:
    store = f'[store]\nurl = "{pg_cluster.url()}"\nnamespace = "c{tmp_path.name[-10:].replace("_", "")}"\n'
    here = fleet_factory(2, extra=store)  # the agents' host
    elsewhere = fleet_factory(1, extra=store)  # another host: its own agents (none of these names)
    text = elsewhere.path.read_text().replace("agents.agent-1", "agents.other-1")
    elsewhere.path.write_text(text)
    svc = Service(config_path=str(here.path), surface="test")
    other = Service(config_path=str(elsewhere.path), surface="test")
    made = {}
    for agent in ("agent-1", "agent-2"):
        a, _ = svc.ledger.create(task="work", holder="lead", actor="lead", agent=agent)
        svc.ledger.transition(a.id, "sent", actor="lead", expect="queued")
        agent_dir = svc.runtime.agent_dir(agent)
        agent_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_context(agent_dir, HookContext(assignment=a.id, role="worker", cwd=str(here.root), write_paths=()))
        svc.leases.claim(agent, assignment_holder(a.id), ttl=3600)
        made[agent] = a.id
    # cancelled on the other host, which has no agent-1 in its config: only the ledger row ends there
    cancelled = ops.invoke(other, "assignment_cancel", {"assignment": made["agent-1"]})
    assert cancelled["cancelled"] is True
    dir1 = svc.runtime.agent_dir("agent-1")
    assert read_context(dir1) is not None
    assert svc.leases.info("agent-1")["holder"] == assignment_holder(made["agent-1"])
    assert end_stale_contexts(svc) == [{"agent": "agent-1", "assignment": made["agent-1"], "state": "cancelled"}]
    assert read_context(dir1) is None
    assert svc.leases.info("agent-1")["state"] == "free"
    ctx = read_context(svc.runtime.agent_dir("agent-2"))  # still open: untouched
    assert ctx is not None
    assert ctx.assignment == made["agent-2"]
    assert svc.leases.info("agent-2")["holder"] == assignment_holder(made["agent-2"])
    # the watchdog's tick does it (reconcile alone looks only at open assignments)
    write_context(dir1, HookContext(assignment=made["agent-1"], role="worker", cwd=str(here.root), write_paths=()))
    svc.leases.claim("agent-1", assignment_holder(made["agent-1"]), ttl=3600)
    assert here.json("watchdog", "tick")["errors"] == []
    assert read_context(dir1) is None
    assert svc.leases.info("agent-1")["state"] == "free"
    svc.close()
    other.close()


def test_one_agents_trouble_never_stops_the_others(fleet_factory: Callable[..., Fleet], tmp_path: Path) -> None:
    """A context naming an assignment the ledger does not have (a repaired or replaced ledger) is freed;
    an agent whose operation lock is held (a send writing its new context) waits for the next tick;
    and neither keeps the next agent from being freed."""
    import fcntl
    import os

    f = fleet_factory(3)
    svc = Service(config_path=str(f.path), surface="test")
    ghost = "as-01JABCDEFGHJKMNPQRSTVWXYZ0"
    made = {}
    for agent in ("agent-1", "agent-2", "agent-3"):
        agent_dir = svc.runtime.agent_dir(agent)
        agent_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if agent == "agent-1":
            made[agent] = ghost
        else:
            a, _ = svc.ledger.create(task="work", holder="lead", actor="lead", agent=agent)
            svc.ledger.transition(a.id, "cancelled", actor="lead", expect="queued")
            made[agent] = a.id
        write_context(agent_dir, HookContext(assignment=made[agent], role="worker", cwd=str(f.root), write_paths=()))
    lock = os.open(svc.runtime.agent_dir("agent-2") / "op.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(lock, fcntl.LOCK_EX)  # agent-2 is in the middle of an operation
    try:
        freed = end_stale_contexts(svc)
    finally:
        os.close(lock)
    assert freed == [{"agent": "agent-1", "assignment": ghost, "state": "unknown"},
                     {"agent": "agent-3", "assignment": made["agent-3"], "state": "cancelled"}]
    assert read_context(svc.runtime.agent_dir("agent-2")) is not None  # next time
    assert [x["agent"] for x in end_stale_contexts(svc)] == ["agent-2"]
    svc.close()
