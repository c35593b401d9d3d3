"""Fencing of release and renewal by token, and transient leases that outlive their operation."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import Fleet, read_audit
from hypothesis import given
from hypothesis import strategies as st

from fleet.errors import LeaseLost
from fleet.leases import TRANSIENT_TTL, LeaseStore, transient_ttl
from fleet.leases.rules import MAX_TTL, TRANSIENT_SLACK
from fleet.service import Service
from fleet.service import agents as agent_ops

T0 = 1_000_000.0


class FakeClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock) -> LeaseStore:
    return LeaseStore(tmp_path / "state", clock=clock)


# --- release and renewal with a token ---------------------------------------------------------


def test_an_old_process_cannot_release_its_successors_lease_with_the_same_holder_name(
        store: LeaseStore, clock: FakeClock) -> None:
    old = store.claim("a1", "cli:bob", ttl=10)
    clock.now += 11  # the old lease expired; a new process of the same user claims again
    new = store.claim("a1", "cli:bob", ttl=600)
    assert new["token"] > old["token"]
    with pytest.raises(LeaseLost) as info:
        store.release("a1", "cli:bob", token=old["token"])
    assert info.value.data["token"] == new["token"]
    assert info.value.data["your_token"] == old["token"]
    assert store.info("a1")["token"] == new["token"]  # still held by the successor
    assert store.info("a1")["state"] == "held"
    assert read_audit(store.state_dir)[-1]["event"] == "lease.fenced"


def test_release_with_the_current_token_releases(store: LeaseStore) -> None:
    got = store.claim("a1", "alice")
    assert store.release("a1", "alice", token=got["token"])["released"] is True
    assert store.info("a1")["state"] == "free"


def test_release_with_a_token_after_the_lease_ended_is_lost_not_a_quiet_no_op(
        store: LeaseStore, clock: FakeClock) -> None:
    got = store.claim("a1", "alice", ttl=5)
    clock.now += 6
    with pytest.raises(LeaseLost, match="has ended"):
        store.release("a1", "alice", token=got["token"])
    store.release("a1", "alice", token=None)  # without a token it stays the old, unfenced no-op


def test_a_forced_release_with_a_stale_token_is_fenced_too(store: LeaseStore, clock: FakeClock) -> None:
    got = store.claim("a1", "alice", ttl=5)
    clock.now += 6
    store.claim("a1", "bob")
    with pytest.raises(LeaseLost):
        store.release("a1", "alice", force=True, token=got["token"])
    assert store.info("a1")["holder"] == "bob"


def test_renewal_with_the_current_token_keeps_it_and_extends_the_lease(store: LeaseStore, clock: FakeClock) -> None:
    got = store.claim("a1", "alice", ttl=60)
    clock.now += 30
    renewed = store.claim("a1", "alice", ttl=600, token=got["token"])
    assert (renewed["status"], renewed["token"]) == ("renewed", got["token"])
    assert renewed["expires_at"] == clock.now + 600


def test_renewal_with_a_stale_token_is_lost_and_never_becomes_a_fresh_grant(
        store: LeaseStore, clock: FakeClock) -> None:
    got = store.claim("a1", "alice", ttl=5)
    clock.now += 6  # expired, nobody else took it
    with pytest.raises(LeaseLost):
        store.claim("a1", "alice", token=got["token"])
    assert store.info("a1")["state"] == "expired"
    assert store.info("a1")["token"] == got["token"]  # nothing was granted


def test_renewal_with_the_token_of_a_released_lease_is_lost(store: LeaseStore) -> None:
    got = store.claim("a1", "alice")
    store.release("a1", "alice")
    with pytest.raises(LeaseLost):
        store.claim("a1", "alice", token=got["token"])
    assert store.info("a1")["state"] == "free"


def test_renewal_with_a_token_on_a_never_claimed_agent_is_lost(store: LeaseStore) -> None:
    with pytest.raises(LeaseLost) as info:
        store.claim("a1", "alice", token=1)
    assert info.value.data["agent"] == "a1"
    assert "a1" in info.value.message


# --- transient leases outlive their operation -------------------------------------------------


@given(bound=st.floats(0, 10 * MAX_TTL))
def test_a_transient_lease_always_outlasts_the_bound_it_is_given(bound: float) -> None:
    ttl = transient_ttl(bound)
    assert TRANSIENT_TTL <= ttl <= MAX_TTL
    assert ttl >= min(bound + TRANSIENT_SLACK, MAX_TTL)


def test_guard_gives_the_transient_lease_the_operations_bound(store: LeaseStore, clock: FakeClock) -> None:
    with store.guard("a1", "alice", ttl=transient_ttl(300)) as held:
        assert held.transient
        assert held.expires_at >= T0 + 300 + TRANSIENT_SLACK
        clock.now += 299  # the longest the operation may run: the lease is still live
        assert store.info("a1")["state"] == "held"
    assert store.info("a1")["state"] == "free"


@pytest.fixture
def service(fleet_factory: Callable[..., Fleet]) -> Service:
    f = fleet_factory(2)
    return Service(config_path=str(f.path), surface="cli", holder="lead")


@pytest.mark.parametrize(("handler", "kwargs", "bound"), [
    pytest.param(agent_ops.agent_send, {"agent": "agent-1", "text": "hi", "timeout": 120.0}, 120.0, id="send"),
    # the timeout bounds the whole call, readiness of every agent included
    pytest.param(agent_ops.agent_start, {"agents": ["agent-1", "agent-2"], "timeout": 200.0}, 200.0, id="up"),
])
def test_mutating_operations_hold_a_transient_lease_that_outlives_their_bound(
        service: Service, monkeypatch: pytest.MonkeyPatch, handler: Any, kwargs: dict[str, Any],
        bound: float) -> None:
    """The runtime is replaced by a probe that reads the lease while the operation would run: the
    condition under test is the lease's length, not what the runtime does."""
    seen: list[float] = []

    def probe(*_: Any, **__: Any) -> Any:
        info = service.leases.info("agent-1")
        seen.append(info["expires_in"] or 0.0)
        raise LeaseLost("stop here", hint="")

    class Tmux:  # the pre-flight check that tmux answers, before any lease is taken
        def panes(self) -> dict[str, Any]:
            return {}

    class Probe:
        tmux = Tmux()

        def __getattr__(self, name: str) -> Any:
            return probe

    monkeypatch.setattr(Service, "runtime", property(lambda self: Probe()))
    with pytest.raises(LeaseLost, match="stop here"):
        handler(service, **kwargs)
    assert seen
    assert seen[0] > bound
    assert service.leases.info("agent-1")["state"] == "free"  # released when the operation ended


# --- the CLI and MCP surfaces take the token --------------------------------------------------


def test_cli_release_with_a_stale_token_is_lease_lost_with_exit_3(fleet_factory: Callable[..., Fleet]) -> None:
    f = fleet_factory(1)
    first = f.json("claim", "agent-1", "--holder", "bob")
    f.json("release", "agent-1", "--holder", "bob", "--token", str(first["token"]))
    second = f.json("claim", "agent-1", "--holder", "bob")
    proc = f.cli("release", "agent-1", "--holder", "bob", "--token", str(first["token"]), "--json")
    assert proc.returncode == 3
    assert json.loads(proc.stdout)["error"]["code"] == "lease_lost"
    assert f.json("leases")["leases"][0]["token"] == second["token"]
    renewed = f.json("claim", "agent-1", "--holder", "bob", "--token", str(second["token"]), "--ttl", "99")
    assert (renewed["status"], renewed["ttl"]) == ("renewed", 99)
    proc = f.cli("claim", "agent-1", "--holder", "bob", "--token", str(first["token"]), "--json")
    assert (proc.returncode, json.loads(proc.stdout)["error"]["code"]) == (3, "lease_lost")


def test_mcp_release_and_claim_accept_a_token(fleet_factory: Callable[..., Fleet]) -> None:
    import anyio
    from mcp import Client

    from fleet.mcp.server import build_server

    f = fleet_factory(1)

    async def run() -> tuple[Any, Any]:
        async with Client(build_server(str(f.path))) as client:
            got = await client.call_tool("agent_claim", {"agent": "agent-1", "holder": "lead"})
            token = got.structured_content["token"]
            stale = await client.call_tool("agent_release", {"agent": "agent-1", "holder": "lead",
                                                             "token": token + 1})
            ok = await client.call_tool("agent_release", {"agent": "agent-1", "holder": "lead", "token": token})
            return stale, ok

    stale, ok = anyio.run(run)
    assert stale.is_error
    assert json.loads(stale.content[0].text)["error"]["code"] == "lease_lost"
    assert not ok.is_error
    assert ok.structured_content["released"] is True
