"""Each host's copy of its agents' lease rows (`fleet.leases.mirror`), which Codex's approval hook reads
because it cannot reach the shared store: written after every committed change on the host, never
for a refused or failed one, repaired by `refresh_mirror` (every tick), which also picks up a change
another host made; and the hook's decision follows it on a real PostgreSQL."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from fleet.config.store import StoreSettings
from fleet.config.watchdog import ApprovalPolicy
from fleet.errors import LeaseHeld
from fleet.hooks.approve import decide
from fleet.hooks.gates import HookContext, write_context
from fleet.leases import mirror
from fleet.leases.files import SHARED_STORE_MARKER
from fleet.leases.pg import PgLeaseStore
from fleet.store.db import Database
from fleet.vocab import WATCHDOG_HOLDER
from fleet.watchdog.policyfile import sync

AS_ID = "as-01JABCDEFGHJKMNPQRSTVWXYZ0"


def holder_of(state: Path, agent: str = "a1") -> str | None:
    copy = mirror.read(state, agent)
    assert copy is not None
    return copy.lease.holder if copy.lease else None


def test_every_committed_change_is_copied_and_a_refusal_changes_nothing(pg_db: Database, tmp_path: Path) -> None:
    store = PgLeaseStore(pg_db, tmp_path / "state")
    state = tmp_path / "state"
    assert mirror.read(state, "a1") is None
    token = store.claim("a1", "alice", ttl=60)["token"]
    copy = mirror.read(state, "a1")
    assert copy is not None
    assert copy.lease is not None
    assert (copy.lease.holder, copy.lease.token) == ("alice", token)
    assert copy.lease.expires_at == pytest.approx(store.get("a1").expires_at)  # type: ignore[union-attr]
    with pytest.raises(LeaseHeld):
        store.claim("a1", "bob")
    assert holder_of(state) == "alice"
    store.release("a1", "alice")
    assert holder_of(state) is None
    with store.guard("a1", WATCHDOG_HOLDER):
        assert holder_of(state) == WATCHDOG_HOLDER
    assert holder_of(state) is None


def test_refresh_repairs_a_lost_copy_and_sees_another_hosts_change(pg_settings: StoreSettings,
                                                                    tmp_path: Path) -> None:
    here_db, there_db = Database(pg_settings), Database(pg_settings)
    try:
        here = PgLeaseStore(here_db, tmp_path / "here")
        there = PgLeaseStore(there_db, tmp_path / "there")
        here.claim("a1", WATCHDOG_HOLDER, ttl=60)
        here.release("a1", WATCHDOG_HOLDER)
        there.claim("a1", "alice", ttl=60)  # made elsewhere: this host's copy still says free
        assert holder_of(tmp_path / "here") is None
        (mirror.mirror_dir(tmp_path / "here") / "a1.json").unlink()
        assert here.refresh_mirror(["a1", "a2"]) == 2
        assert holder_of(tmp_path / "here") == "alice"
        assert holder_of(tmp_path / "here", "a2") is None  # never leased: free, copied all the same
        assert here.refresh_mirror([]) == 0
    finally:
        here_db.close()
        there_db.close()


def test_racing_writers_leave_the_newest_state(pg_settings: StoreSettings, tmp_path: Path) -> None:
    """Threads claiming and releasing one agent: whatever order their copies land in, the copy at the
    end is the row's state (free), as after the last commit."""
    dbs = [Database(pg_settings) for _ in range(4)]
    try:
        stores = [PgLeaseStore(db, tmp_path / "state") for db in dbs]

        def churn(i: int) -> None:
            for _ in range(25):
                try:
                    stores[i].claim("a1", f"h{i}", ttl=60)
                except LeaseHeld:
                    continue
                stores[i].release("a1", f"h{i}")

        threads = [threading.Thread(target=churn, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert stores[0].get("a1") is None
        assert holder_of(tmp_path / "state") is None
    finally:
        for db in dbs:
            db.close()


def test_the_hooks_decision_follows_the_shared_store(pg_db: Database, tmp_path: Path) -> None:
    state, work = tmp_path / "state", tmp_path / "work"
    agent = state / "agents" / "a1"
    agent.mkdir(parents=True, mode=0o700)
    work.mkdir()
    write_context(agent, HookContext(assignment=AS_ID, role="worker", cwd=str(work), write_paths=()))
    sync(agent, ApprovalPolicy(allow=frozenset({"read-only"}), otherwise="ask"), work, [str(work)])
    (state / "leases").mkdir(mode=0o700)
    (state / "leases" / SHARED_STORE_MARKER).touch()
    store = PgLeaseStore(pg_db, state)

    def answer() -> object:
        return decide(agent, "Bash", "cat README.md", cwd=str(work))

    assert answer() is None  # no copy yet: cannot tell who holds it
    store.refresh_mirror(["a1"])
    assert answer() is not None
    store.claim("a1", "alice", ttl=60)
    assert answer() is None  # a person holds it: the person decides
    store.release("a1", "alice")
    assert answer() is not None
