"""Codex's approval hook with the leases in the shared store: it cannot reach the database, so it reads
this host's copy of the agent's row (`fleet.leases.mirror`), judged on the database's clock. A copy
that is missing, stale, torn or foreign means it cannot tell who holds the agent: it makes no decision
of its own, and a person (or the watchdog) decides. The copy itself keeps the newest state whatever
order its writers land in."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleet.config.watchdog import ApprovalPolicy
from fleet.hooks.approve import decide
from fleet.hooks.gates import HookContext, write_context
from fleet.leases import mirror
from fleet.leases.files import SHARED_STORE_MARKER
from fleet.leases.rules import Lease
from fleet.vocab import WATCHDOG_HOLDER, assignment_holder
from fleet.watchdog.policyfile import sync

AS_ID = "as-01JABCDEFGHJKMNPQRSTVWXYZ0"


def agent_dir(tmp_path: Path, *, shared: bool = True) -> Path:
    state, work = tmp_path / "state", tmp_path / "work"
    agent = state / "agents" / "a"
    agent.mkdir(parents=True, mode=0o700)
    work.mkdir()
    (work / "README.md").write_text("hello\n")
    write_context(agent, HookContext(assignment=AS_ID, role="worker", cwd=str(work), write_paths=("docs/",)))
    sync(agent, ApprovalPolicy(allow=frozenset({"read-only"}), otherwise="ask"), work, [str(work)])
    if shared:
        marker = state / "leases" / SHARED_STORE_MARKER
        marker.parent.mkdir(mode=0o700)
        marker.touch()
    return agent


def held(holder: str, expires_at: float, token: int = 3) -> Lease:
    return Lease("a", holder, token, expires_at - 600, expires_at - 600, expires_at, 600.0, False)


def put(state: Path, lease: Lease | None, as_of: float, *, token: int | None = None, now: float | None = None) -> bool:
    """A copy of the row after a change at database time `as_of` (its clock read then, too)."""
    return mirror.write(state, "a", lease, token=lease.token if lease and token is None else (token or 0),
                        as_of=as_of, db_now=as_of, now=now)


def ask(agent: Path, now: float | None = None) -> object:
    return decide(agent, "Bash", "cat README.md", now, cwd=str(agent.parent.parent.parent / "work"))


def test_the_hook_decides_on_a_free_agent_of_an_embedded_fleet(tmp_path: Path) -> None:
    assert ask(agent_dir(tmp_path, shared=False)) is not None


def test_without_a_copy_of_the_leases_a_person_decides(tmp_path: Path) -> None:
    assert ask(agent_dir(tmp_path)) is None


def test_a_fresh_copy_of_a_free_agent_lets_the_policy_decide(tmp_path: Path) -> None:
    agent = agent_dir(tmp_path)
    put(agent.parent.parent, None, time.time())
    answer = ask(agent)
    assert isinstance(answer, tuple)
    assert answer[0] == "allow"
    assert "`cat README.md` is read-only" in answer[1]


def test_a_person_holding_the_agent_decides_and_fleets_own_holders_do_not(tmp_path: Path) -> None:
    agent = agent_dir(tmp_path)
    state = agent.parent.parent
    now = time.time()
    for at, (holder, policy_decides) in enumerate(
            [("alice", False), ("agent:boss", False), (WATCHDOG_HOLDER, True), (assignment_holder(AS_ID), True)]):
        put(state, held(holder, now + 300, token=at + 1), now + at)
        assert (ask(agent) is not None) is policy_decides, holder


def test_expiry_is_judged_on_the_databases_clock(tmp_path: Path) -> None:
    agent = agent_dir(tmp_path)
    state = agent.parent.parent
    now = time.time()
    # the database's clock runs 100 s behind this host's: the lease still has 50 s there
    put(state, held("alice", now - 50), now - 100, now=now)
    assert ask(agent, now) is None
    # ... and 100 s ahead: a lease this host would still call held has expired there
    put(state, held("alice", now + 50, token=4), now + 100, now=now)
    assert ask(agent, now) is not None


def test_a_stale_torn_or_foreign_copy_means_a_person_decides(tmp_path: Path) -> None:
    agent = agent_dir(tmp_path)
    state = agent.parent.parent
    now = time.time()
    put(state, None, now, now=now - mirror.MAX_AGE - 1)
    assert ask(agent, now) is None  # nothing wrote it for too long: no tick, no change
    path = mirror.mirror_dir(state) / "a.json"
    put(state, None, now + 1, now=now, token=5)
    assert ask(agent, now) is not None
    good = path.read_text()
    for bad in (good[: len(good) // 2], json.dumps({**json.loads(good), "agent": "b"}),
                json.dumps({**json.loads(good), "lease": {"agent": "b"}}), "[]", "\x00"):
        path.write_text(bad)
        assert ask(agent, now) is None, bad
    path.unlink()
    path.symlink_to(tmp_path / "elsewhere.json")
    (tmp_path / "elsewhere.json").write_text(good)
    assert ask(agent, now) is None  # never followed


@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5), st.booleans()), min_size=1, max_size=12))
def test_the_copy_keeps_the_newest_row_whatever_order_writers_land_in(writes: list[tuple[int, int, bool]]) -> None:
    """Each write is a row state (token, change time, held or freed); the copy ends at the greatest
    (token, change time), whatever order the writes came in (the token first: clocks may step back)."""
    with tempfile.TemporaryDirectory() as root:
        state = Path(root)
        for token, as_of, free in writes:
            put(state, None if free else held("alice", 1e9, token=token), float(as_of), token=token, now=1.0)
        copy = mirror.read(state, "a")
        assert copy is not None
        assert (copy.token, copy.as_of) == max((token, as_of) for token, as_of, _ in writes)


def test_a_lock_held_by_someone_else_is_never_waited_on(tmp_path: Path) -> None:
    """Anyone who can read the copy can lock it (an agent too): a writer replaces the file instead of
    waiting, and a reader facing a held lock cannot tell (a person decides)."""
    import fcntl
    import os

    state = tmp_path / "state"
    put(state, None, 1.0, token=1)
    path = mirror.mirror_dir(state) / "a.json"
    squatter = os.open(path, os.O_RDONLY)
    fcntl.flock(squatter, fcntl.LOCK_EX)
    try:
        with pytest.raises(OSError, match="locked"):
            mirror.read(state, "a")
        assert mirror.fresh(state, "a", time.time()) is None
        assert put(state, held("alice", 1e9, token=2), 2.0, token=2)  # a new file, not the locked one
        copy = mirror.read(state, "a")
        assert copy is not None
        assert copy.lease is not None
        assert copy.lease.holder == "alice"
    finally:
        os.close(squatter)


def test_a_copy_whose_change_may_be_lost_is_forgotten(tmp_path: Path) -> None:
    put(tmp_path, None, 1.0)
    mirror.forget(tmp_path, "a")
    mirror.forget(tmp_path, "a")  # twice: nothing to do
    assert mirror.read(tmp_path, "a") is None
