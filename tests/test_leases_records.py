"""Lease records read without the lock: a checksum tells a whole record from one caught mid-write."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fleet.errors import LeaseCorrupt
from fleet.leases import LeaseStore
from fleet.leases.records import encode_record

REPO = Path(__file__).resolve().parents[1]

HOLD_THE_LOCK = textwrap.dedent("""
    import sys, time
    from filelock import FileLock
    lock = FileLock(sys.argv[1])
    lock.acquire()
    print("locked", flush=True)
    time.sleep(60)
""")

RENEW_FOREVER = textwrap.dedent("""
    import sys
    from fleet.leases import LeaseStore
    store = LeaseStore(sys.argv[1])
    token = store.claim("a1", "writer", ttl=100)["token"]
    print("ready", flush=True)
    n = 0
    while True:
        n += 1
        # alternate short and long holder-chosen TTLs so successive records differ in length
        store.claim("a1", "writer", ttl=100 + (n % 2) * 86000.123456, token=token)
""")


def child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


@pytest.fixture
def store(tmp_path: Path) -> LeaseStore:
    return LeaseStore(tmp_path / "state")


def record_of(store: LeaseStore, agent: str = "a1") -> Path:
    return store.lease_dir / f"{agent}.json"


def test_a_lease_is_read_while_another_process_holds_the_agents_lock(store: LeaseStore) -> None:
    """Without lock-free reads, `status` would wait out the lock timeout behind a wedged writer."""
    store.claim("a1", "alice")
    with subprocess.Popen([sys.executable, "-c", HOLD_THE_LOCK, str(store.lease_dir / "a1.lock")],
                          env=child_env(), stdout=subprocess.PIPE, text=True) as holder:
        try:
            assert holder.stdout is not None
            assert holder.stdout.readline().strip() == "locked"
            info = store.info("a1")
            assert (info["state"], info["holder"]) == ("held", "alice")
        finally:
            holder.kill()


def test_reads_racing_a_writer_only_ever_see_whole_records(store: LeaseStore) -> None:
    with subprocess.Popen([sys.executable, "-c", RENEW_FOREVER, str(store.state_dir)], env=child_env(),
                          stdout=subprocess.PIPE, text=True) as writer:
        try:
            assert writer.stdout is not None
            assert writer.stdout.readline().strip() == "ready"
            seen = set()
            for _ in range(3000):
                lease = store.get("a1")
                assert lease is not None
                assert lease.holder == "writer"
                assert lease.expires_at == pytest.approx(lease.renewed_at + lease.ttl)
                seen.add(lease.ttl)
            assert len(seen) == 2  # both kinds of record were read, while being rewritten
        finally:
            writer.kill()


def test_a_record_whose_checksum_does_not_match_fails_closed(store: LeaseStore) -> None:
    store.claim("a1", "alice", ttl=60)
    path = record_of(store)
    obj = json.loads(path.read_bytes())
    obj["holder"] = "mallory"  # a change that still parses: only the checksum can tell
    path.write_text(json.dumps(obj))
    with pytest.raises(LeaseCorrupt, match="checksum"):
        store.info("a1")
    with pytest.raises(LeaseCorrupt, match="checksum"):
        store.claim("a1", "bob")


def test_a_record_written_before_checksums_is_still_read(store: LeaseStore) -> None:
    store.claim("a1", "alice", ttl=60)
    path = record_of(store)
    obj = json.loads(path.read_bytes())
    del obj["check"]
    path.write_text(json.dumps(obj))
    assert store.info("a1")["holder"] == "alice"
    assert store.claim("a1", "alice")["status"] == "renewed"
    assert "check" in json.loads(path.read_bytes())  # rewritten with one


def test_reading_a_never_claimed_agent_creates_nothing(store: LeaseStore) -> None:
    assert store.info("a1")["state"] == "free"
    assert not store.state_dir.exists()


def test_encoded_records_carry_a_check_over_everything_else() -> None:
    one = json.loads(encode_record({"a": 1, "b": "x"}))
    two = json.loads(encode_record({"a": 2, "b": "x"}))
    assert set(one) == {"a", "b", "check"}
    assert one["check"] != two["check"]
