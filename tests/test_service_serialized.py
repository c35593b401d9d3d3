"""Mutating operations on one agent run one at a time, whoever the holder (item 1 of the hardening)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import Fleet, wait_until
from faketui import fake_codex

from fleet import ops
from fleet.agents.oplock import op_lock
from fleet.errors import AgentBusy, FleetError, LeaseHeld
from fleet.leases import LeaseStore
from fleet.service import Service


def test_a_transient_lease_is_held_for_every_operation_of_its_holder(fleet_factory: Callable[..., Fleet],
                                                                    tmp_path: Path) -> None:
    f = fleet_factory(1, codex=fake_codex(tmp_path))
    f.json("up")
    store = LeaseStore(f.state_dir)
    samples: list[tuple[float, str]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append((time.time(), store.info("agent-1")["state"]))
            time.sleep(0.01)

    def send(text: str, timeout: float) -> Any:
        try:
            return ops.invoke(Service(str(f.path), surface="mcp", holder="mcp:lead:1"), "agent_send",
                              {"agent": "agent-1", "text": text, "timeout": timeout})
        except FleetError as exc:
            return exc

    sampler = threading.Thread(target=sample)
    sampler.start()
    first = threading.Thread(target=send, args=("first", 2))
    first.start()
    wait_until(lambda: any(e["event"] == "send" for e in f.journal("agent-1")))
    second = send("second", 1)  # the same holder, while the first operation still runs
    first.join()
    done.set()
    sampler.join()
    assert isinstance(second, FleetError)
    assert second.code == "not_delivered"
    events = f.journal("agent-1")
    sends = [e["time"] for e in events if e["event"] == "send"]
    ends = [e["time"] for e in events if e["event"] == "not_delivered"]
    assert len(sends) == len(ends) == 2
    assert sends[1] >= ends[0]  # the second operation began only after the first had ended
    for start, end in zip(sends, ends, strict=True):
        inside = [state for at, state in samples if start < at < end]
        assert inside, "the sampler saw nothing of this operation"
        assert set(inside) == {"held"}, (start, end, inside)
    assert store.info("agent-1")["state"] == "free"


def test_the_busy_error_says_what_runs_and_whether_it_waited(tmp_path: Path) -> None:
    agent_dir = tmp_path / "agent"
    agent_dir.mkdir()
    with op_lock(agent_dir, "a1", operation="send", holder="mcp:lead:1", wait=0):
        for wait, said in ((0.0, "did not wait"), (0.2, "waited 0.2 s")):
            with pytest.raises(AgentBusy) as info, op_lock(agent_dir, "a1", operation="up", holder="cli:u", wait=wait):
                pytest.fail("two operations held the agent at once")
            assert said in info.value.message
            assert "`send` by mcp:lead:1" in info.value.message
            assert info.value.data["busy_with"]["operation"] == "send"
            assert info.value.retryable
    with op_lock(agent_dir, "a1", operation="up", holder="cli:u", wait=0) as waited:
        assert waited >= 0  # free again once the holder let go


def test_another_holders_lease_is_refused_at_once_even_while_an_operation_runs(
        fleet_factory: Callable[..., Fleet]) -> None:
    f = fleet_factory(1, codex=sys.executable)
    spec = Service(str(f.path)).config.agent("agent-1")
    inside, leave = threading.Event(), threading.Event()

    def hold() -> None:
        with Service(str(f.path)).agent_guard(spec, "alice", None, operation="send"):
            inside.set()
            leave.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    assert inside.wait(30)
    try:
        with pytest.raises(LeaseHeld) as info, Service(str(f.path)).agent_guard(
                spec, "bob", None, operation="send", wait=60):
            pytest.fail("bob got in while alice's operation ran")
        assert info.value.data["holder"] == "alice"
        with pytest.raises(AgentBusy), Service(str(f.path)).agent_guard(spec, "alice", None, operation="up",
                                                                          wait=0.1):
            pytest.fail("a second operation of the same holder got in")
    finally:
        leave.set()
        holder.join()


def test_concurrent_ups_start_an_agent_once_and_never_kill_it(fleet_factory: Callable[..., Fleet],
                                                             tmp_path: Path) -> None:
    f = fleet_factory(1, codex=fake_codex(tmp_path))
    procs = [subprocess.Popen([sys.executable, "-m", "fleet", "--config", str(f.path), "up", "--json"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outs = [json.loads(p.communicate(timeout=60)[0])["agents"][0] for p in procs]
    assert sorted(o["result"] for o in outs) == ["running", "running", "started"]
    assert len({o["pid"] for o in outs}) == 1
    assert f.status("agent-1")["pid"] == outs[0]["pid"]
    assert [e["event"] for e in f.journal("agent-1")].count("launched") == 1
    svc = Service(str(f.path))
    spec = svc.config.agent("agent-1")
    with pytest.raises(AgentBusy):  # the runtime itself refuses to replace a live session
        svc.runtime.launch(spec, svc.runtime.prepare(spec))
    assert f.status("agent-1")["pid"] == outs[0]["pid"]
