"""The ledger on real SQLite files: lifecycle CAS, idempotency, events as a cursor, files, and many
processes writing at once."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleet.work.ledger import (
    DB_NAME,
    REQUEST_TTL,
    Ledger,
    LedgerBusy,
    LedgerError,
    RequestIdConflict,
    new_assignment_id,
)
from fleet.work.lifecycle import (
    ASSIGNMENT_ID_RE,
    STATES,
    AssignmentNotFound,
    InvalidTransition,
    StateConflict,
    can_transition,
)


class Clock:
    def __init__(self, now: float = 1_750_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        self.now += 0.001
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ledger(tmp_path: Path, clock: Clock) -> Iterator[Ledger]:
    with Ledger(tmp_path / "state", clock=clock) as led:
        yield led


def make(ledger: Ledger, task: str = "do it", **kw: object) -> str:
    a, dup = ledger.create(task=task, holder="lead", actor="test", **kw)  # type: ignore[arg-type]
    assert not dup
    return a.id


# -- ids -------------------------------------------------------------------------------------------

def test_ids_are_ulids_that_sort_by_time() -> None:
    a = new_assignment_id(1000.0, bytes(10))
    b = new_assignment_id(1000.001, bytes(10))
    assert ASSIGNMENT_ID_RE.match(a)
    assert a < b
    assert new_assignment_id(0, bytes(10)) == "as-" + "0" * 26
    assert new_assignment_id(0, b"\xff" * 10) == "as-" + "0" * 10 + "Z" * 16


@given(st.floats(min_value=0, max_value=2**47 / 1000), st.floats(min_value=0.001, max_value=1e6),
       st.binary(min_size=10, max_size=10), st.binary(min_size=10, max_size=10))
def test_a_later_millisecond_always_sorts_after(t: float, dt: float, r1: bytes, r2: bytes) -> None:
    later = t + dt
    if int(later * 1000) == int(t * 1000) or later >= 2**48 / 1000:
        return
    a, b = new_assignment_id(t, r1), new_assignment_id(later, r2)
    assert ASSIGNMENT_ID_RE.match(a)
    assert a < b


def test_ids_keep_creation_order_when_the_clock_stalls_or_steps_back(tmp_path: Path) -> None:
    times = iter([2000.0, 2000.0, 1000.0, 2000.0005, 3000.0])
    with Ledger(tmp_path, clock=lambda: next(times)) as led:
        ids = [led.create(task="t", holder="h", actor="a")[0].id for _ in range(5)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 5
    assert all(ASSIGNMENT_ID_RE.match(i) for i in ids)


# -- rows and transitions --------------------------------------------------------------------------

def test_create_stores_every_field_and_a_created_event(ledger: Ledger) -> None:
    a, dup = ledger.create(task="write docs", holder="lead", actor="cli", agent="mila", prompt="P",
                           skills=["pdf"], read_paths=["src/"], write_paths=["docs/"], checks=["pytest -q"],
                           deadline=123.0, details={"routed": True})
    assert not dup
    got = ledger.get(a.id)
    assert got == a
    assert (got.state, got.agent, got.skills, got.write_paths, got.checks, got.deadline) == (
        "queued", "mila", ("pdf",), ("docs/",), ("pytest -q",), 123.0)
    [ev] = ledger.events_for(a.id)
    assert (ev.kind, ev.from_state, ev.to_state, ev.actor, ev.agent, ev.details) == (
        "created", None, "queued", "cli", "mila", {"routed": True})


def test_a_full_lifecycle_stamps_times_and_records_each_step(ledger: Ledger, clock: Clock) -> None:
    aid = make(ledger, agent="mila")
    a = ledger.transition(aid, "sent", actor="svc", expect="queued", receipt={"turn_id": "t1"}, turn_id="t1")
    assert a.sent_at is not None
    assert a.receipt == {"turn_id": "t1"}
    ledger.transition(aid, "working", actor="hook")
    ledger.transition(aid, "reported", actor="hook", report={"status": "done"})
    a = ledger.transition(aid, "verified", actor="svc", verification={"verdict": "verified"})
    assert a.ended_at is not None
    assert a.ended_at > a.sent_at
    assert not a.open
    steps = [(e.from_state, e.to_state) for e in ledger.events_for(aid)]
    assert steps == [(None, "queued"), ("queued", "sent"), ("sent", "working"), ("working", "reported"),
                     ("reported", "verified")]


def test_the_lifecycle_table_is_enforced(ledger: Ledger) -> None:
    aid = make(ledger)
    with pytest.raises(InvalidTransition, match="from queued to verified: it can go to cancelled, failed, sent"):
        ledger.transition(aid, "verified", actor="x")
    ledger.transition(aid, "cancelled", actor="x")
    with pytest.raises(InvalidTransition, match="cancelled is an end state"):
        ledger.transition(aid, "sent", actor="x")


def test_compare_and_set_refuses_a_stale_expectation(ledger: Ledger) -> None:
    aid = make(ledger)
    ledger.transition(aid, "sent", actor="a", expect="queued")
    with pytest.raises(StateConflict) as info:
        ledger.transition(aid, "sent", actor="b", expect="queued")
    assert info.value.data["state"] == "sent"
    assert ledger.transition(aid, "cancelled", actor="c", expect=["sent", "working"]).state == "cancelled"


def test_unknown_ids_and_fields_are_refused(ledger: Ledger) -> None:
    with pytest.raises(AssignmentNotFound):
        ledger.get("as-01JAAAAAAAAAAAAAAAAAAAAAAA")
    with pytest.raises(AssignmentNotFound):
        ledger.transition("as-01JAAAAAAAAAAAAAAAAAAAAAAA", "sent", actor="x")
    aid = make(ledger)
    with pytest.raises(Exception, match="Cannot set state"):
        ledger.transition(aid, "sent", actor="x", state="verified")
    assert ledger.get(aid).state == "queued"  # nothing half-applied


def test_annotate_and_agent_events_append_without_changing_state(ledger: Ledger) -> None:
    aid = make(ledger, agent="mila")
    ev = ledger.annotate(aid, "scope_denied", actor="hook", details={"paths": ["../x"]}, turn_id="t9")
    assert (ev.kind, ev.agent, ev.details) == ("scope_denied", "mila", {"paths": ["../x"]})
    assert ledger.get(aid).turn_id == "t9"
    assert ledger.get(aid).state == "queued"
    other = ledger.record_event("agent_limited", actor="watchdog", agent="noor", details={"resets_at": 5})
    assert other.assignment is None
    assert other.cursor > ev.cursor


def test_lists_filter_page_and_order_newest_first(ledger: Ledger) -> None:
    ids = [make(ledger, agent="mila" if i % 2 else "noor", task=f"t{i}") for i in range(6)]
    ledger.transition(ids[0], "cancelled", actor="x")
    assert [a.id for a in ledger.assignments()] == ids[::-1]
    assert [a.id for a in ledger.assignments(open_only=True)] == ids[:0:-1]
    assert [a.id for a in ledger.assignments(agent="mila")] == [ids[5], ids[3], ids[1]]
    assert [a.id for a in ledger.assignments(states=["cancelled"])] == [ids[0]]
    page = ledger.assignments(limit=2)
    assert [a.id for a in ledger.assignments(limit=2, before=page[-1].id)] == [ids[3], ids[2]]
    assert [a.id for a in ledger.queued()] == ids[1:]


def test_agent_load_counts_open_work_and_the_last_send(ledger: Ledger) -> None:
    a, b, _queued = (make(ledger, agent="mila") for _ in range(3))
    make(ledger)  # queued for whoever frees up: nobody's load
    ledger.transition(a, "sent", actor="x")
    sent_b = ledger.transition(b, "sent", actor="x")
    ledger.transition(b, "failed", actor="x")
    assert ledger.agent_load() == {"mila": (2, sent_b.sent_at)}


def test_summaries_are_compact_rows_with_the_report_status_and_verdict(ledger: Ledger) -> None:
    aid = make(ledger, task="x" * 500, agent="mila", skills=["pdf"], write_paths=["docs/"])
    ledger.transition(aid, "sent", actor="x")
    ledger.transition(aid, "reported", actor="x", report={"status": "partial", "summary": "s"})
    ledger.transition(aid, "rejected", actor="x", verification={"verdict": "rejected"}, reason="check failed")
    [s] = ledger.summaries()
    assert (s.id, s.task, s.task_chars, s.skills, s.write_paths) == (aid, "x" * 200, 500, ("pdf",), ("docs/",))
    assert (s.state, s.report_status, s.verdict, s.reason) == ("rejected", "partial", "rejected", "check failed")
    assert ledger.summaries(open_only=True) == []
    assert s.to_dict()["skills"] == ["pdf"]


# -- idempotency -----------------------------------------------------------------------------------

def test_a_retried_create_returns_the_same_assignment_and_creates_nothing(ledger: Ledger) -> None:
    req = {"task": "x", "to": "mila"}
    first, dup1 = ledger.create(task="x", holder="lead", actor="a", request_id="r1", request=req)
    same = dict(reversed(req.items()))  # key order does not matter
    again, dup2 = ledger.create(task="x", holder="lead", actor="a", request_id="r1", request=same)
    assert (dup1, dup2) == (False, True)
    assert again == first
    assert len(ledger.assignments()) == 1
    assert len(ledger.events_since(0)[0]) == 1
    with pytest.raises(RequestIdConflict) as info:
        ledger.create(task="y", holder="lead", actor="a", request_id="r1", request={"task": "y"})
    assert info.value.code == "request_id_conflict"


def test_request_ids_expire_by_age(ledger: Ledger, clock: Clock) -> None:
    ledger.create(task="x", holder="lead", actor="a", request_id="r1")
    clock.now += REQUEST_TTL + 1
    _, dup = ledger.create(task="other", holder="lead", actor="a", request_id="r1")
    assert not dup


def test_send_requests_are_claimed_finished_or_forgotten(ledger: Ledger, clock: Clock) -> None:
    rec = ledger.begin_request("send", "s1", {"agent": "mila", "text": "hi"})
    assert rec.fresh
    assert rec.result is None
    pending = ledger.begin_request("send", "s1", {"agent": "mila", "text": "hi"})
    assert (pending.fresh, pending.result) == (False, None)
    ledger.finish_request("send", "s1", {"turn_id": "t1"})
    done = ledger.begin_request("send", "s1", {"agent": "mila", "text": "hi"})
    assert (done.fresh, done.result) == (False, {"turn_id": "t1"})
    with pytest.raises(RequestIdConflict):
        ledger.begin_request("send", "s1", {"agent": "mila", "text": "other"})
    ledger.begin_request("send", "s2", {"x": 1})
    ledger.forget_request("send", "s2")
    assert ledger.begin_request("send", "s2", {"x": 2}).fresh
    clock.now += 100
    assert ledger.prune_requests(max_age=50) == 2
    assert ledger.begin_request("send", "s1", {"anything": True}).fresh


# -- events ----------------------------------------------------------------------------------------

def test_events_since_pages_with_a_cursor(ledger: Ledger) -> None:
    for i in range(5):
        make(ledger, task=f"t{i}")
    page, cursor = ledger.events_since(0, limit=2)
    assert len(page) == 2
    assert cursor == page[-1].cursor
    rest, cursor2 = ledger.events_since(cursor, limit=100)
    assert len(rest) == 3
    assert [e.cursor for e in page + rest] == sorted({e.cursor for e in page + rest})
    assert ledger.events_since(cursor2) == ([], cursor2)
    assert ledger.latest_cursor() == cursor2
    assert page[0].to_dict()["from"] is None


def test_events_are_append_only(ledger: Ledger) -> None:
    make(ledger)
    db = sqlite3.connect(ledger.path)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute("UPDATE events SET kind = 'x'")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute("DELETE FROM events")
    finally:
        db.close()


def test_data_version_moves_when_another_connection_commits(tmp_path: Path) -> None:
    with Ledger(tmp_path) as reader, Ledger(tmp_path) as writer:
        before = reader.data_version()
        assert reader.data_version() == before
        make(writer)
        assert reader.data_version() != before


def test_a_lock_held_past_the_busy_timeout_is_ledger_busy_not_a_raw_sqlite_error(tmp_path: Path) -> None:
    with Ledger(tmp_path) as first:
        make(first)
    holder = sqlite3.connect(tmp_path / DB_NAME, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process mid-transaction, and stuck there
    try:
        with Ledger(tmp_path, busy_timeout=0.1) as led:
            with pytest.raises(LedgerBusy) as info:
                make(led)
            assert info.value.retryable
            assert led.assignments()  # readers are not blocked by a writer in WAL mode
    finally:
        holder.execute("ROLLBACK")
        holder.close()


# -- files -----------------------------------------------------------------------------------------

def test_files_are_private_even_under_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        with Ledger(tmp_path / "state") as led:
            make(led)
            names = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "state").iterdir()}
    finally:
        os.umask(old)
    assert (tmp_path / "state").stat().st_mode & 0o777 == 0o700
    assert names[DB_NAME] == 0o600
    assert names[DB_NAME + "-wal"] == 0o600
    assert names[DB_NAME + "-shm"] == 0o600


def test_a_symlink_in_place_of_the_db_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    (state / DB_NAME).symlink_to(tmp_path / "elsewhere.db")
    with pytest.raises(LedgerError, match="Cannot open the ledger"):
        Ledger(state)
    assert not (tmp_path / "elsewhere.db").exists()


def test_a_newer_schema_and_a_corrupt_file_are_refused_clearly(tmp_path: Path) -> None:
    with Ledger(tmp_path / "a"):
        pass
    db = sqlite3.connect(tmp_path / "a" / DB_NAME)
    db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(LedgerError, match="schema version 99"):
        Ledger(tmp_path / "a")
    (tmp_path / "b").mkdir(mode=0o700)
    (tmp_path / "b" / DB_NAME).write_bytes(b"not a database at all" * 100)
    with pytest.raises(LedgerError, match="unusable"):
        Ledger(tmp_path / "b")


# -- the lifecycle through the ledger, as a property -----------------------------------------------

@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(STATES), st.booleans()), max_size=12))
def test_the_ledger_accepts_exactly_the_moves_the_table_allows(tmp_path: Path, moves: list[tuple[str, bool]]) -> None:
    with Ledger(tmp_path / "prop", clock=Clock()) as led:
        aid = make(led)
        state = "queued"
        accepted = 0
        for to, with_expect in moves:
            try:
                led.transition(aid, to, actor="p", expect=state if with_expect else None)  # type: ignore[arg-type]
            except InvalidTransition:
                assert not can_transition(state, to)
            else:
                assert can_transition(state, to)
                state, accepted = to, accepted + 1
        assert led.get(aid).state == state
        assert len(led.events_for(aid)) == 1 + accepted


# -- many processes --------------------------------------------------------------------------------

WRITER = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from fleet.work.ledger import Ledger
    state, worker, rounds = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    made = []
    with Ledger(state) as led:
        for i in range(rounds):
            a, _ = led.create(task=f"w{worker}-{i}", holder=f"w{worker}", actor=f"w{worker}", agent=f"a{worker}")
            led.transition(a.id, "sent", actor=f"w{worker}", expect="queued")
            led.transition(a.id, "working", actor=f"w{worker}", expect="sent")
            led.annotate(a.id, "note", actor=f"w{worker}", details={"i": i})
            led.transition(a.id, "reported", actor=f"w{worker}", expect="working", report={"i": i})
            made.append(a.id)
    print(json.dumps(made))
""")

READER = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    from fleet.work.ledger import Ledger
    state, expected = Path(sys.argv[1]), int(sys.argv[2])
    seen, cursor = [], 0
    deadline = time.monotonic() + 120
    with Ledger(state) as led:
        while len(seen) < expected and time.monotonic() < deadline:
            events, cursor = led.events_since(cursor, limit=300)
            seen += [e.cursor for e in events]
            if not events:
                time.sleep(0.01)
    print(json.dumps(seen))
""")

CLAIMER = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from fleet.work.ledger import Ledger
    from fleet.work.lifecycle import StateConflict
    state, ids = Path(sys.argv[1]), json.loads(sys.argv[2])
    won, lost = [], 0
    with Ledger(state) as led:
        for aid in ids:
            try:
                led.transition(aid, "sent", actor=sys.argv[3], expect="queued")
                won.append(aid)
            except StateConflict:
                lost += 1
    print(json.dumps({"won": won, "lost": lost}))
""")


def run_all(scripts: list[list[str]]) -> list[str]:
    procs = [subprocess.Popen([sys.executable, "-c", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for args in scripts]
    outs = []
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
        assert "locked" not in err
        outs.append(out)
    return outs


def test_eight_processes_writing_at_once_lose_nothing_and_the_cursor_only_grows(tmp_path: Path) -> None:
    """8 writers x 40 assignments x 5 writes = 1600 events; a concurrent reader pages through them."""
    state = tmp_path / "state"
    with Ledger(state):
        pass  # create the schema once, so the reader can start polling at once
    writers, rounds = 8, 40
    total = writers * rounds * 5
    outs = run_all([[READER, str(state), str(total)],
                    *([WRITER, str(state), str(w), str(rounds)] for w in range(writers))])
    seen = json.loads(outs[0])
    made = [aid for out in outs[1:] for aid in json.loads(out)]
    assert len(made) == len(set(made)) == writers * rounds
    assert seen == sorted(set(seen))  # strictly increasing, nothing twice
    with Ledger(state) as led:
        events, _ = led.events_since(0, limit=5000)
        assert len(events) == total
        assert [e.cursor for e in events] == seen  # the reader saw every event, in order
        assert {a.state for a in led.assignments(limit=10_000)} == {"reported"}
        created = [e.assignment for e in events if e.kind == "created"]
        assert created == sorted(created)  # ids sort in creation order across processes
        for w in range(writers):  # each writer's own events are in its program order
            kinds = [(e.kind, e.to_state) for e in events if e.actor == f"w{w}"]
            assert kinds == [("created", "queued"), ("transition", "sent"), ("transition", "working"),
                             ("note", None), ("transition", "reported")] * rounds


def test_concurrent_compare_and_set_has_exactly_one_winner_per_assignment(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with Ledger(state) as led:
        ids = [make(led, task=f"t{i}") for i in range(50)]
    outs = [json.loads(o) for o in run_all([[CLAIMER, str(state), json.dumps(ids), f"c{c}"] for c in range(8)])]
    won = [aid for o in outs for aid in o["won"]]
    assert sorted(won) == sorted(ids)
    assert sum(o["lost"] for o in outs) == 7 * len(ids)
    with Ledger(state) as led:
        for aid in ids:
            assert [e.to_state for e in led.events_for(aid)] == ["queued", "sent"]


def test_annotate_once_records_a_fact_once(tmp_path: Path) -> None:
    with Ledger(tmp_path) as ledger:
        aid = ledger.create(task="t", holder="lead", actor="lead", agent="mila")[0].id
        first = ledger.annotate_once(aid, "scope_denied", "turn-1:1.5", actor="hook", details={"paths": ["x"]})
        assert first is not None
        assert first.details == {"paths": ["x"], "key": "turn-1:1.5"}
        assert ledger.annotate_once(aid, "scope_denied", "turn-1:1.5", actor="hook") is None
        assert ledger.annotate_once(aid, "report_asked", "turn-1:1.5", actor="hook") is not None
        assert [e.kind for e in ledger.events_for(aid)] == ["created", "scope_denied", "report_asked"]


def test_a_ledger_locked_by_another_process_is_busy_not_damaged(tmp_path: Path) -> None:
    """A lock is not damage: opening a ledger another connection holds exclusively must say
    `ledger_busy` (retryable), never `ledger_unusable`, whose hint is to move the file aside."""
    import threading

    from fleet.errors import LedgerBusy

    state = tmp_path / "state"
    Ledger(state).close()
    other = sqlite3.connect(state / "fleet.db", isolation_level=None, check_same_thread=False)
    other.execute("PRAGMA locking_mode = EXCLUSIVE")
    other.execute("BEGIN EXCLUSIVE")
    with pytest.raises(LedgerBusy):
        Ledger(state, busy_timeout=0.3)
    timer = threading.Timer(0.3, lambda: (other.execute("COMMIT"), other.execute("PRAGMA locking_mode = NORMAL"),
                                          other.execute("SELECT 1"), other.close()))
    timer.start()
    try:
        Ledger(state, busy_timeout=10).close()  # opens once the other side lets go
    finally:
        timer.join()


# -- reassignment ----------------------------------------------------------------------------------

def test_reassigning_moves_the_agent_by_compare_and_set_and_records_from_and_to(ledger: Ledger) -> None:
    aid = make(ledger)
    ledger.transition(aid, "sent", actor="t", expect="queued", agent="ada", turn_id="t-1")
    moved = ledger.reassign(aid, from_agent="ada", to_agent="bob", actor="watchdog", prompt="new prompt",
                            details={"reason": "ada is parked"})
    assert (moved.agent, moved.state, moved.turn_id, moved.prompt) == ("bob", "sent", None, "new prompt")
    [event] = [e for e in ledger.events_for(aid) if e.kind == "reassigned"]
    assert (event.agent, event.actor, event.details) == ("bob", "watchdog",
                                                         {"from": "ada", "to": "bob", "reason": "ada is parked"})
    assert ledger.handed_over("ada", since=0.0) == aid
    assert ledger.handed_over("bob", since=0.0) is None
    assert ledger.handed_over("ada", since=event.time + 1) is None
    with pytest.raises(StateConflict):  # it is bob's now: a second move from ada loses
        ledger.reassign(aid, from_agent="ada", to_agent="cy", actor="watchdog")
    ledger.transition(aid, "cancelled", actor="t")
    with pytest.raises(StateConflict):  # ended: nothing moves
        ledger.reassign(aid, from_agent="bob", to_agent="cy", actor="watchdog")
    assert ledger.get(aid).agent == "bob"
