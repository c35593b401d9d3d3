"""Leases: the pure claim rules with an injected clock, then the store on real files in tmp_path."""

from __future__ import annotations

import json
import math
import os
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from fleet import fsutil
from fleet.errors import (
    EXIT_LEASE,
    InvalidInput,
    LeaseCorrupt,
    LeaseHeld,
    LeaseLost,
    NotLeaseHolder,
    StateDirError,
)
from fleet.leases import TRANSIENT_TTL, LeaseStore
from fleet.leases.records import encode_record
from fleet.leases.rules import (
    Lease,
    check_fence,
    decide_claim,
    lease_state,
    validate_holder,
    validate_token,
    validate_ttl,
    validate_wait,
)
from fleet.leases.store import TOKEN_BLOCK

T0 = 1_000_000.0


class FakeClock:
    """Lease times come from this; the store never sleeps on it (waiting uses the monotonic clock)."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def _private_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEET_HOME", str(tmp_path / "home" / ".fleet"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(state_dir: Path, clock: FakeClock) -> LeaseStore:
    return LeaseStore(state_dir, clock=clock, surface="test")


def lease(holder: str = "alice", token: int = 7, *, at: float = T0, ttl: float = 60.0) -> Lease:
    return Lease("a1", holder, token, at, at, at + ttl, ttl)


def audit_events(state_dir: Path) -> list[dict[str, Any]]:
    return fsutil.read_jsonl_tail(state_dir / "audit.jsonl")


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every file under `directory` with its bytes (symlinks by their target), to prove nothing changed."""
    out: dict[str, bytes] = {}
    if not directory.exists():
        return out
    for path in sorted(directory.rglob("*")):
        if path.is_symlink():
            out[str(path)] = b"->" + os.readlink(path).encode()
        elif path.is_file():
            out[str(path)] = path.read_bytes()
    return out


# --- pure rules -------------------------------------------------------------------------------


def test_lease_state_is_free_without_a_lease_held_before_expiry_and_expired_from_it() -> None:
    assert lease_state(None, T0) == "free"
    assert lease_state(lease(), T0 + 59.9) == "held"
    assert lease_state(lease(), T0 + 60.0) == "expired"


def test_a_free_agent_is_granted_the_token_after_the_last_one() -> None:
    grant = decide_claim(None, 41, agent="a1", holder="bob", ttl=30.0, now=T0)
    assert grant.status == "claimed"
    assert grant.lease == Lease("a1", "bob", 42, T0, T0, T0 + 30.0, 30.0)
    assert grant.previous is None


def test_renewal_keeps_the_token_and_takes_the_newly_asked_ttl() -> None:
    current = lease(ttl=60.0)
    grant = decide_claim(current, 7, agent="a1", holder="alice", ttl=10.0, now=T0 + 50)
    assert grant.status == "renewed"
    assert (grant.lease.token, grant.lease.ttl, grant.lease.expires_at) == (7, 10.0, T0 + 60.0)
    assert (grant.lease.acquired_at, grant.lease.renewed_at) == (T0, T0 + 50)


def test_renewing_a_transient_lease_makes_it_a_real_one() -> None:
    current = Lease("a1", "alice", 7, T0, T0, T0 + 120, 120.0, transient=True)
    grant = decide_claim(current, 7, agent="a1", holder="alice", ttl=600.0, now=T0 + 1)
    assert not grant.lease.transient


def test_an_expired_lease_is_taken_over_with_the_next_token() -> None:
    current = lease("alice", 7)
    grant = decide_claim(current, 7, agent="a1", holder="bob", ttl=30.0, now=T0 + 60.0)
    assert (grant.status, grant.lease.holder, grant.lease.token) == ("claimed", "bob", 8)
    assert grant.previous == current


def test_an_expired_lease_is_not_renewed_even_for_its_own_holder() -> None:
    grant = decide_claim(lease("alice", 7), 7, agent="a1", holder="alice", ttl=30.0, now=T0 + 61)
    assert (grant.status, grant.lease.token) == ("claimed", 8)


def test_another_holder_is_refused_with_holder_expiry_retry_and_token() -> None:
    with pytest.raises(LeaseHeld) as info:
        decide_claim(lease("alice", 7), 7, agent="a1", holder="bob", ttl=30.0, now=T0 + 20.12345)
    err = info.value
    assert err.data == {
        "agent": "a1",
        "holder": "alice",
        "token": 7,
        "expires_in": 39.877,
        "retry_after": 39.877,
    }
    assert err.exit_status == EXIT_LEASE
    assert "alice" in err.message
    assert "fleet leases" in err.hint
    assert "--wait" in err.hint


def test_a_current_token_passes_the_fence_and_a_stale_one_is_lost() -> None:
    current = lease("alice", 7)
    assert check_fence(current, "alice", 7, T0 + 1) is None
    assert check_fence(current, "alice", None, T0 + 1) is None
    stale = check_fence(current, "alice", 6, T0 + 1)
    assert isinstance(stale, LeaseLost)
    assert stale.data["token"] == 7
    assert stale.data["holder"] == "alice"
    assert stale.data["your_token"] == 6


def test_an_expired_lease_fences_its_own_token() -> None:
    lost = check_fence(lease("alice", 7), "alice", 7, T0 + 60)
    assert isinstance(lost, LeaseLost)
    assert lost.data["token"] is None
    assert lost.data["holder"] is None


@pytest.mark.parametrize("ttl", [1, 1.0, 1800, 86400])
def test_ttl_within_one_second_to_one_day_is_accepted(ttl: float) -> None:
    assert validate_ttl(ttl) == float(ttl)


@pytest.mark.parametrize("ttl", [0, 0.999, 86400.5, -5, "30", True, None, math.nan, math.inf])
def test_ttl_outside_the_range_or_not_a_number_is_invalid_input(ttl: object) -> None:
    with pytest.raises(InvalidInput) as info:
        validate_ttl(ttl)
    assert info.value.hint
    assert info.value.data["field"] == "ttl"


@pytest.mark.parametrize("wait", [0, 0.0, 2.5, 600])
def test_wait_from_zero_to_ten_minutes_is_accepted(wait: float) -> None:
    assert validate_wait(wait) == float(wait)


@pytest.mark.parametrize("wait", [-0.001, -1, 600.5, "1", False, math.nan])
def test_a_negative_or_too_long_wait_is_invalid_input(wait: object) -> None:
    with pytest.raises(InvalidInput, match="wait"):
        validate_wait(wait)


@pytest.mark.parametrize("holder", ["a", "alice", "ci:job-42", "me@host", "x/y+z_1.2", "9" + "x" * 63])
def test_holder_names_of_letters_digits_and_punctuation_are_accepted(holder: str) -> None:
    assert validate_holder(holder) == holder


@pytest.mark.parametrize(
    "holder", ["", " alice", "al ice", "alice\n", "-alice", ".x", "x" * 65, "é", None, 5]
)
def test_empty_spaced_long_or_non_string_holders_are_invalid_input(holder: object) -> None:
    with pytest.raises(InvalidInput, match="holder"):
        validate_holder(holder)


@pytest.mark.parametrize("token", ["1", 1.0, True, 0, -3])
def test_a_token_that_is_not_a_positive_int_is_invalid_input(token: object) -> None:
    with pytest.raises(InvalidInput, match="token"):
        validate_token(token)


@pytest.mark.parametrize(
    ("call", "kwargs"),
    [
        ("claim", {"agent": "a1", "holder": "alice", "ttl": 0}),
        ("claim", {"agent": "a1", "holder": "alice", "wait": -1}),
        ("claim", {"agent": "a1", "holder": "al ice"}),
        ("claim", {"agent": "../etc", "holder": "alice"}),
        ("claim", {"agent": "A1", "holder": "alice"}),
        ("release", {"agent": "a1", "holder": ""}),
        ("info", {"agent": "a1/../x"}),
    ],
)
def test_bad_input_is_refused_before_anything_is_written(
    store: LeaseStore, state_dir: Path, call: str, kwargs: dict[str, Any]
) -> None:
    with pytest.raises(InvalidInput):
        getattr(store, call)(**kwargs)
    assert snapshot(state_dir) == {}
    assert not state_dir.exists()


def test_guard_with_a_non_int_token_is_refused_before_anything_is_written(
    store: LeaseStore, state_dir: Path
) -> None:
    store.claim("a1", "alice")
    before = snapshot(state_dir)
    with pytest.raises(InvalidInput), store.guard("a1", "alice", "1"):  # type: ignore[arg-type]
        pass
    assert snapshot(state_dir) == before


# --- the store ---------------------------------------------------------------------------------


def test_a_claim_is_granted_stored_privately_and_shown_by_info(
    store: LeaseStore, state_dir: Path, clock: FakeClock
) -> None:
    got = store.claim("a1", "alice", ttl=60)
    assert got == {
        "agent": "a1",
        "holder": "alice",
        "token": 1,
        "acquired_at": T0,
        "renewed_at": T0,
        "expires_at": T0 + 60,
        "ttl": 60.0,
        "status": "claimed",
    }
    clock.now += 10
    info = store.info("a1")
    assert (info["state"], info["holder"], info["token"], info["expires_in"]) == ("held", "alice", 1, 50.0)
    assert info["transient"] is False
    leases = state_dir / "leases"
    assert stat.S_IMODE(leases.stat().st_mode) == 0o700
    for name in ("a1.json", "a1.lock", "a1.seq"):
        assert stat.S_IMODE((leases / name).stat().st_mode) == 0o600, name
    assert [e["event"] for e in audit_events(state_dir)] == ["lease.grant"]


def test_renewal_through_the_store_keeps_the_token(store: LeaseStore, clock: FakeClock) -> None:
    first = store.claim("a1", "alice", ttl=60)
    clock.now += 30
    again = store.claim("a1", "alice", ttl=5)
    assert (again["status"], again["token"], again["expires_at"]) == ("renewed", first["token"], T0 + 35)


def test_info_of_an_expired_lease_still_names_its_last_holder(store: LeaseStore, clock: FakeClock) -> None:
    store.claim("a1", "alice", ttl=60)
    clock.now += 61
    info = store.info("a1")
    assert (info["state"], info["holder"], info["token"], info["expires_in"]) == ("expired", "alice", 1, 0.0)


def test_a_never_claimed_agent_is_free(store: LeaseStore) -> None:
    assert store.get("a1") is None
    assert store.info("a1")["state"] == "free"
    assert store.info("a1")["holder"] is None


def test_a_claim_on_a_held_agent_is_refused_and_audited(store: LeaseStore, state_dir: Path) -> None:
    store.claim("a1", "alice", ttl=60)
    with pytest.raises(LeaseHeld) as info:
        store.claim("a1", "bob")
    assert info.value.data["holder"] == "alice"
    assert info.value.data["retry_after"] == 60.0
    refusal = audit_events(state_dir)[-1]
    assert (refusal["event"], refusal["holder"], refusal["current_holder"]) == (
        "lease.refuse",
        "bob",
        "alice",
    )


def test_release_by_another_holder_is_refused(store: LeaseStore) -> None:
    store.claim("a1", "alice")
    with pytest.raises(NotLeaseHolder) as info:
        store.release("a1", "bob")
    assert info.value.exit_status == EXIT_LEASE
    assert "--force" in info.value.hint
    assert store.info("a1")["holder"] == "alice"


def test_force_release_breaks_the_lease_and_audits_who_forced_what(
    store: LeaseStore, state_dir: Path
) -> None:
    store.claim("a1", "alice")
    got = store.release("a1", "operator", force=True)
    assert got == {"agent": "a1", "released": True, "previous_holder": "alice", "token": 1, "forced": True}
    assert store.info("a1")["state"] == "free"
    forced = audit_events(state_dir)[-1]
    assert forced["event"] == "lease.force_release"
    assert (forced["holder"], forced["previous_holder"], forced["token"]) == ("operator", "alice", 1)


def test_releasing_a_free_agent_is_a_no_op_success(store: LeaseStore, state_dir: Path) -> None:
    got = store.release("a1", "alice")
    assert got == {"agent": "a1", "released": False, "previous_holder": None, "token": None, "forced": False}


def test_tokens_are_never_reused_after_release(store: LeaseStore) -> None:
    tokens = []
    for holder in ["alice", "bob", "alice", "carol"]:
        tokens.append(store.claim("a1", holder)["token"])
        store.release("a1", holder)
    assert tokens == [1, 2, 3, 4]


def test_tokens_keep_increasing_with_a_new_store_instance(state_dir: Path, clock: FakeClock) -> None:
    LeaseStore(state_dir, clock=clock).claim("a1", "alice")
    LeaseStore(state_dir, clock=clock).release("a1", "alice")
    assert LeaseStore(state_dir, clock=clock).claim("a1", "bob")["token"] == 2


def test_a_record_from_an_earlier_boot_resumes_above_the_durable_reservation(
    store: LeaseStore, state_dir: Path
) -> None:
    """Simulates the state after an OS crash rolled the record back: it carries another boot id."""
    store.claim("a1", "alice")
    store.release("a1", "alice")
    record = state_dir / "leases" / "a1.json"
    obj = json.loads(record.read_bytes())
    obj["boot_id"] = "an-earlier-boot"
    del obj["check"]
    record.write_bytes(encode_record(obj))
    assert store.claim("a1", "bob")["token"] == TOKEN_BLOCK + 1


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"\x00\xffnot json", id="garbage"),
        pytest.param(b"", id="empty"),
        pytest.param(b'{"version": 1, "agent": "a1", "holder": "alice", "tok', id="truncated"),
        pytest.param(b"[1, 2]", id="a list"),
        pytest.param(b'{"version": 1, "agent": "a1", "holder": "alice", "token": 3}', id="missing fields"),
        pytest.param(
            b'{"version": 1, "agent": "b2", "holder": null, "token": 3, "boot_id": ""}', id="other agent"
        ),
    ],
)
def test_a_corrupt_record_fails_closed_and_is_left_untouched(
    store: LeaseStore, state_dir: Path, content: bytes
) -> None:
    store.claim("a1", "alice")
    record = state_dir / "leases" / "a1.json"
    record.write_bytes(content)
    before = snapshot(state_dir / "leases")
    for attempt in (
        lambda: store.claim("a1", "bob"),
        lambda: store.claim("a1", "alice"),
        lambda: store.release("a1", "alice"),
        lambda: store.release("a1", "bob", force=True),
        lambda: store.info("a1"),
        lambda: store.guard("a1", "alice").__enter__(),
    ):
        with pytest.raises(LeaseCorrupt) as info:
            attempt()
        assert str(record) in info.value.message
        assert "fleet lease-repair a1" in info.value.hint
    assert snapshot(state_dir / "leases") == before


def test_a_symlinked_record_fails_closed_and_its_target_is_untouched(
    store: LeaseStore, state_dir: Path, tmp_path: Path
) -> None:
    store.claim("a1", "alice")
    target = tmp_path / "elsewhere.json"
    record = state_dir / "leases" / "a1.json"
    target.write_bytes(record.read_bytes())
    record.unlink()
    record.symlink_to(target)
    before = target.read_bytes()
    with pytest.raises(LeaseCorrupt, match="symlink"):
        store.claim("a1", "bob")
    with pytest.raises(LeaseCorrupt):
        store.release("a1", "alice")
    assert record.is_symlink()
    assert target.read_bytes() == before


def test_a_symlinked_lock_file_fails_closed(store: LeaseStore, state_dir: Path, tmp_path: Path) -> None:
    store.claim("a1", "alice")
    lock = state_dir / "leases" / "a2.lock"
    target = tmp_path / "victim"
    target.write_text("keep me")
    lock.symlink_to(target)
    with pytest.raises(LeaseCorrupt, match=r"a2\.lock"):
        store.claim("a2", "alice")
    assert target.read_text() == "keep me"


def test_a_symlinked_leases_dir_fails_closed(state_dir: Path, tmp_path: Path) -> None:
    real = tmp_path / "real-leases"
    real.mkdir()
    state_dir.mkdir()
    (state_dir / "leases").symlink_to(real)
    with pytest.raises(StateDirError):
        LeaseStore(state_dir).claim("a1", "alice")
    assert list(real.iterdir()) == []


def test_repair_moves_the_corrupt_record_aside_and_the_next_grant_has_a_higher_token(
    store: LeaseStore, state_dir: Path
) -> None:
    for holder in ["alice", "bob", "carol"]:
        store.claim("a1", holder)
        store.release("a1", holder)
    store.claim("a1", "dave")  # token 4, then the record is mangled
    record = state_dir / "leases" / "a1.json"
    record.write_bytes(b'{"holder": "dave", "token": 4, "expi')
    got = store.repair("a1", "operator")
    assert got["repaired"] is True
    [moved] = got["moved"]
    assert Path(moved).name.startswith("a1.json.corrupt-")
    assert Path(moved).read_bytes() == b'{"holder": "dave", "token": 4, "expi'
    assert store.info("a1")["state"] == "free"
    assert store.claim("a1", "erin")["token"] > 4
    assert any(e["event"] == "lease.repair" and e["holder"] == "operator" for e in audit_events(state_dir))


def test_repair_after_losing_the_reservation_skips_past_every_audited_token(
    store: LeaseStore, state_dir: Path
) -> None:
    store.claim("a1", "alice")
    store.release("a1", "alice")
    store.claim("a1", "bob")  # token 2
    (state_dir / "leases" / "a1.json").write_bytes(b"garbage")
    (state_dir / "leases" / "a1.seq").write_bytes(b"garbage")
    with pytest.raises(LeaseCorrupt):
        store.claim("a1", "carol")
    got = store.repair("a1", "operator")
    assert len(got["moved"]) == 2
    assert got["token_high_water"] >= 2 + TOKEN_BLOCK
    assert store.claim("a1", "carol")["token"] > got["token_high_water"]


def test_repair_of_a_symlinked_record_moves_the_link_not_its_target(
    store: LeaseStore, state_dir: Path, tmp_path: Path
) -> None:
    target = tmp_path / "victim"
    target.write_text("keep me")
    store.claim("a1", "alice")
    record = state_dir / "leases" / "a1.json"
    record.unlink()
    record.symlink_to(target)
    got = store.repair("a1", "operator")
    assert Path(got["moved"][0]).is_symlink()
    assert target.read_text() == "keep me"
    # The unreadable record could have held any token up to the reservation, so the next starts past it.
    assert store.claim("a1", "bob")["token"] == TOKEN_BLOCK + 1


def test_repair_of_a_healthy_agent_changes_nothing(store: LeaseStore, state_dir: Path) -> None:
    store.claim("a1", "alice")
    before = snapshot(state_dir / "leases")
    got = store.repair("a1", "operator")
    assert got["repaired"] is False
    assert snapshot(state_dir / "leases") == before
    assert store.info("a1")["holder"] == "alice"


# --- guard -------------------------------------------------------------------------------------


def test_guard_lets_the_holder_operate_without_touching_its_ttl(store: LeaseStore) -> None:
    granted = store.claim("a1", "alice", ttl=60)
    with store.guard("a1", "alice", granted["token"]) as held:
        assert (held.holder, held.token, held.expires_at) == ("alice", 1, granted["expires_at"])
    assert store.info("a1")["expires_at"] == granted["expires_at"]
    assert store.info("a1")["holder"] == "alice"


def test_guard_refuses_another_holder(store: LeaseStore, state_dir: Path) -> None:
    store.claim("a1", "alice")
    with pytest.raises(LeaseHeld), store.guard("a1", "bob"):
        pytest.fail("bob must not operate on alice's agent")
    assert audit_events(state_dir)[-1]["event"] == "lease.refuse"


def test_guard_refuses_a_stale_token_even_with_the_same_holder_name(store: LeaseStore) -> None:
    old = store.claim("a1", "alice")["token"]
    store.release("a1", "alice")
    new = store.claim("a1", "alice")["token"]
    with pytest.raises(LeaseLost) as info, store.guard("a1", "alice", old):
        pytest.fail("a stale token must be fenced")
    assert info.value.data == {
        "agent": "a1",
        "holder": "alice",
        "token": new,
        "your_token": old,
        "your_holder": "alice",
    }
    assert info.value.exit_status == EXIT_LEASE


def test_guard_with_a_token_on_a_free_agent_is_lost(store: LeaseStore) -> None:
    token = store.claim("a1", "alice")["token"]
    store.release("a1", "alice")
    with pytest.raises(LeaseLost), store.guard("a1", "alice", token):
        pytest.fail("a released token must be fenced")


def test_guard_on_a_free_agent_takes_a_transient_lease_and_releases_it(
    store: LeaseStore, state_dir: Path
) -> None:
    with store.guard("a1", "bob") as held:
        assert held.transient
        assert held.ttl == TRANSIENT_TTL
        assert store.info("a1")["holder"] == "bob"
        assert store.info("a1")["transient"] is True
        with pytest.raises(LeaseHeld):
            store.claim("a1", "carol")
    assert store.info("a1")["state"] == "free"
    events = [(e["event"], e.get("transient")) for e in audit_events(state_dir)]
    assert events[0] == ("lease.grant", True)
    assert events[-1] == ("lease.release", True)
    assert store.claim("a1", "carol")["token"] == held.token + 1


def test_a_transient_lease_is_released_when_the_operation_fails(store: LeaseStore) -> None:
    with pytest.raises(RuntimeError), store.guard("a1", "bob"):
        raise RuntimeError("tmux went away")
    assert store.info("a1")["state"] == "free"


def test_a_claim_inside_a_guarded_operation_keeps_the_lease(store: LeaseStore) -> None:
    with store.guard("a1", "bob") as held:
        assert store.claim("a1", "bob", ttl=300)["token"] == held.token
    assert store.info("a1")["holder"] == "bob"
    assert store.info("a1")["transient"] is False


def test_an_expired_transient_lease_does_not_release_the_next_holders_lease(
    store: LeaseStore, clock: FakeClock
) -> None:
    with store.guard("a1", "bob") as held:
        clock.now += TRANSIENT_TTL + 1
        taken = store.claim("a1", "carol")
        assert taken["token"] == held.token + 1
    assert store.info("a1")["holder"] == "carol"


def test_guard_after_expiry_and_takeover_fences_the_old_holder(store: LeaseStore, clock: FakeClock) -> None:
    old = store.claim("a1", "alice", ttl=5)["token"]
    clock.now += 6
    assert store.claim("a1", "bob")["token"] == old + 1
    with pytest.raises(LeaseLost), store.guard("a1", "alice", old):
        pytest.fail("alice's lease was taken over")


# --- waiting ------------------------------------------------------------------------------------


def test_a_waiting_claim_is_granted_once_the_lease_expires(state_dir: Path, tmp_path: Path) -> None:
    store = LeaseStore(state_dir)
    first = store.claim("a1", "alice", ttl=1)
    got = store.claim("a1", "bob", wait=5)
    assert got["token"] == first["token"] + 1
    assert got["acquired_at"] >= first["expires_at"]  # granted by the expiry, not before it
    assert audit_events(state_dir)[-1]["event"] == "lease.takeover"


def test_a_waiting_claim_gives_up_at_its_deadline_with_the_last_refusal(state_dir: Path) -> None:
    store = LeaseStore(state_dir)
    store.claim("a1", "alice", ttl=60)
    started = time.monotonic()
    with pytest.raises(LeaseHeld) as info:
        store.claim("a1", "bob", wait=0.3)
    assert time.monotonic() - started >= 0.3  # it did wait; how much longer is the bench's business
    assert info.value.data["holder"] == "alice"
    assert 0 < info.value.data["retry_after"] <= 60
