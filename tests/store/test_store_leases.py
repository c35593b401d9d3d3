"""The lease contract (`fleet.leases.backend`), one suite run against both backends: lock files and
PostgreSQL. Expiry uses the backend's real clock (the database's cannot be injected), so those tests
take the shortest TTL and wait until the lease reads expired; nothing asserts a duration."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from fleet import fsutil
from fleet.errors import InvalidInput, LeaseHeld, LeaseLost, NotLeaseHolder
from fleet.leases import LeaseStore
from fleet.leases.backend import LeaseBackend

Make = Callable[..., LeaseBackend]


def wait_until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < end, "condition not reached"
        time.sleep(0.02)


def expire(store: LeaseBackend, agent: str) -> None:
    wait_until(lambda: store.info(agent)["state"] == "expired")


def test_the_file_store_satisfies_the_interface(tmp_path: Any) -> None:
    store: LeaseBackend = LeaseStore(tmp_path)  # mypy checks the assignment; this checks the methods
    for name in ("claim", "release", "guard", "get", "info", "known_agents", "repair", "refresh_mirror"):
        assert callable(getattr(store, name))


def test_a_free_agent_is_granted_with_a_first_token_and_renewed_for_its_holder(lease_backend: Make) -> None:
    store = lease_backend()
    first = store.claim("a1", "alice", ttl=60)
    assert first["status"] == "claimed"
    assert first["token"] >= 1
    assert first["holder"] == "alice"
    again = store.claim("a1", "alice", ttl=120)
    assert again["status"] == "renewed"
    assert again["token"] == first["token"]
    assert again["ttl"] == 120
    info = store.info("a1")
    assert info["state"] == "held"
    assert info["holder"] == "alice"
    assert info["token"] == first["token"]
    assert store.known_agents() == ["a1"]


def test_another_holder_is_refused_with_who_holds_it(lease_backend: Make) -> None:
    a, b = lease_backend("a"), lease_backend("b")
    got = a.claim("a1", "alice", ttl=60)
    with pytest.raises(LeaseHeld) as refused:
        b.claim("a1", "bob")
    assert refused.value.data["holder"] == "alice"
    assert refused.value.data["token"] == got["token"]
    assert 0 < refused.value.data["retry_after"] <= 60


def test_release_frees_the_agent_and_the_next_grant_has_a_larger_token(lease_backend: Make) -> None:
    a, b = lease_backend("a"), lease_backend("b")
    first = a.claim("a1", "alice")
    with pytest.raises(NotLeaseHolder):
        b.release("a1", "bob")
    released = a.release("a1", "alice")
    assert released["released"]
    assert released["token"] == first["token"]
    assert not released["forced"]
    assert a.info("a1")["state"] == "free"
    assert a.get("a1") is None
    assert not a.release("a1", "alice")["released"]  # free: nothing to release
    second = b.claim("a1", "bob")
    assert second["token"] > first["token"]
    forced = a.release("a1", "alice", force=True)
    assert forced["forced"]
    assert forced["previous_holder"] == "bob"


def test_a_stale_token_is_fenced_at_renewal_release_and_guard(lease_backend: Make) -> None:
    a, b = lease_backend("a"), lease_backend("b")
    old = a.claim("a1", "alice")["token"]
    a.release("a1", "alice")
    new = b.claim("a1", "alice")["token"]  # the same holder name, a new lease
    assert new > old
    with pytest.raises(LeaseLost) as lost:
        a.claim("a1", "alice", token=old)
    assert lost.value.data["token"] == new
    assert lost.value.data["your_token"] == old
    with pytest.raises(LeaseLost):
        a.release("a1", "alice", token=old)
    with pytest.raises(LeaseLost), a.guard("a1", "alice", old):
        pytest.fail("the body must not run under a stale token")
    assert b.info("a1")["token"] == new
    assert b.info("a1")["holder"] == "alice"
    assert b.release("a1", "alice", token=new)["released"]


def test_an_expired_lease_is_taken_over_and_fences_its_old_holder(lease_backend: Make) -> None:
    a, b = lease_backend("a"), lease_backend("b")
    old = a.claim("a1", "alice", ttl=1)["token"]
    expire(b, "a1")
    with pytest.raises(LeaseLost):  # expired: its own holder is fenced too
        a.claim("a1", "alice", token=old)
    taken = b.claim("a1", "bob", ttl=60)
    assert taken["status"] == "claimed"
    assert taken["token"] == old + 1
    again = a.claim("a1", "bob", ttl=60)
    assert again["status"] == "renewed"
    assert again["token"] == taken["token"]


def test_guard_takes_a_transient_lease_on_a_free_agent_and_gives_it_back(lease_backend: Make) -> None:
    a, b = lease_backend("a"), lease_backend("b")
    with a.guard("a1", "alice") as lease:
        assert lease.transient
        assert lease.holder == "alice"
        with pytest.raises(LeaseHeld):
            b.claim("a1", "bob")
        with pytest.raises(LeaseHeld), b.guard("a1", "bob"):
            pytest.fail("a second holder must not run")
    assert b.info("a1")["state"] == "free"
    assert b.claim("a1", "bob")["token"] == lease.token + 1


def test_guard_under_the_holders_own_lease_keeps_it(lease_backend: Make) -> None:
    store = lease_backend()
    got = store.claim("a1", "alice", ttl=300)
    with store.guard("a1", "alice", got["token"]) as lease:
        assert not lease.transient
        assert lease.token == got["token"]
    assert store.info("a1")["holder"] == "alice"
    assert store.info("a1")["ttl"] == 300


def test_a_claim_inside_guard_turns_the_transient_lease_into_a_real_one(lease_backend: Make) -> None:
    store = lease_backend()
    with store.guard("a1", "alice") as lease:
        renewed = store.claim("a1", "alice", ttl=300)
        assert renewed["status"] == "renewed"
        assert renewed["token"] == lease.token
    info = store.info("a1")
    assert info["state"] == "held"
    assert not info["transient"]


def test_a_failing_body_still_ends_the_transient_lease(lease_backend: Make) -> None:
    store = lease_backend()
    with pytest.raises(RuntimeError), store.guard("a1", "alice"):
        raise RuntimeError("boom")
    assert store.info("a1")["state"] == "free"


def test_a_waiter_gets_the_lease_when_it_is_released(lease_backend: Make) -> None:
    a, b = lease_backend("a"), lease_backend("b")
    a.claim("a1", "alice")
    got: dict[str, Any] = {}
    waiter = threading.Thread(target=lambda: got.update(b.claim("a1", "bob", wait=30)))
    waiter.start()
    time.sleep(0.1)  # let it wait; it must not have the lease yet
    assert not got
    a.release("a1", "alice")
    waiter.join(30)
    assert got["holder"] == "bob"
    assert got["status"] == "claimed"


def test_a_wait_that_runs_out_is_refused(lease_backend: Make) -> None:
    a, b = lease_backend("a"), lease_backend("b")
    a.claim("a1", "alice", ttl=60)
    with pytest.raises(LeaseHeld):
        b.claim("a1", "bob", wait=0.2)


def test_bad_input_is_refused_before_anything_is_written(lease_backend: Make) -> None:
    store = lease_backend()
    for kwargs in ({"ttl": 0}, {"ttl": float("nan")}, {"wait": -1}, {"token": 0}, {"holder": "has space"}):
        args: dict[str, Any] = {"agent": "a1", "holder": "alice", **kwargs}
        with pytest.raises(InvalidInput):
            store.claim(**args)
    with pytest.raises(InvalidInput):
        store.claim("../etc", "alice")
    assert store.known_agents() == []


def test_repair_of_a_sound_record_changes_nothing(lease_backend: Make) -> None:
    store = lease_backend()
    token = store.claim("a1", "alice")["token"]
    result = store.repair("a1", "ops")
    assert not result["repaired"]
    assert result["moved"] == []
    assert store.info("a1")["token"] == token
    assert store.info("a1")["holder"] == "alice"


def test_every_grant_release_and_refusal_is_audited_on_the_acting_host(lease_backend: Make, tmp_path: Any) -> None:
    a = lease_backend("a")
    a.claim("a1", "alice")
    with pytest.raises(NotLeaseHolder):
        a.release("a1", "bob")
    a.release("a1", "alice")
    state = a.state_dir  # type: ignore[attr-defined]
    events = [e["event"] for e in fsutil.read_jsonl_tail(state / "audit.jsonl")]
    assert events == ["lease.grant", "lease.refuse", "lease.release"]
