"""The ledger contract (`fleet.work.ledgerbackend`), one suite run against both backends: SQLite and
PostgreSQL. The assertions are tests/test_work_ledger.py's, on the interface instead of the file;
what only one backend has (files and their modes, SQLite's locks; PostgreSQL's trigger and outage)
is tested next to it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleet.errors import InvalidInput
from fleet.work.ledger import REQUEST_TTL, Ledger, RequestIdConflict
from fleet.work.ledgerbackend import LedgerBackend
from fleet.work.lifecycle import STATES, AssignmentNotFound, InvalidTransition, StateConflict, can_transition
from fleet.work.pgledger import PgLedger

Make = Callable[..., LedgerBackend]


class Clock:
    def __init__(self, now: float = 1_750_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        self.now += 0.001
        return self.now


def make(ledger: LedgerBackend, task: str = "do it", **kw: Any) -> str:
    a, dup = ledger.create(task=task, holder="lead", actor="test", **kw)
    assert not dup
    return a.id


def test_both_backends_satisfy_the_interface(tmp_path: Any, pg_db: Any) -> None:
    sqlite: LedgerBackend = Ledger(tmp_path / "s")  # mypy checks the assignments; this checks the methods
    pg: LedgerBackend = PgLedger(pg_db, tmp_path / "p")
    for name in ("create", "transition", "reassign", "handed_over", "annotate", "annotate_once", "record_event",
                 "set_usage", "get", "baseline", "assignments", "summaries", "queued", "agent_load", "events_since",
                 "events_for", "latest_cursor", "data_version", "begin_request", "find_request", "finish_request",
                 "forget_request", "prune_requests", "close"):
        assert callable(getattr(sqlite, name))
        assert callable(getattr(pg, name))
    assert pg.path == tmp_path / "p" / "fleet.db"  # the watchdog's local file
    sqlite.close()


def test_create_stores_every_field_and_a_created_event(ledger_backend: Make) -> None:
    ledger = ledger_backend(clock=Clock())
    a, dup = ledger.create(task="write docs", holder="lead", actor="cli", agent="mila", prompt="P",
                           skills=["pdf"], read_paths=["src/"], write_paths=["docs/"], checks=["pytest -q"],
                           deadline=123.0, details={"routed": True}, repo="/r", budget=5000)
    assert not dup
    got = ledger.get(a.id)
    assert got == a
    assert (got.state, got.agent, got.skills, got.write_paths, got.checks, got.deadline, got.repo, got.budget) == (
        "queued", "mila", ("pdf",), ("docs/",), ("pytest -q",), 123.0, "/r", 5000)
    assert got.created_at == got.updated_at == 1_750_000_000.001
    [ev] = ledger.events_for(a.id)
    assert (ev.kind, ev.from_state, ev.to_state, ev.actor, ev.agent, ev.details) == (
        "created", None, "queued", "cli", "mila", {"routed": True})


def test_a_full_lifecycle_stamps_times_and_records_each_step(ledger_backend: Make) -> None:
    ledger = ledger_backend(clock=Clock())
    aid = make(ledger, agent="mila")
    a = ledger.transition(aid, "sent", actor="svc", expect="queued", receipt={"turn_id": "t1"}, turn_id="t1",
                          baseline={"files": 3})
    assert a.sent_at is not None
    assert a.receipt == {"turn_id": "t1"}
    assert ledger.baseline(aid) == {"files": 3}
    ledger.transition(aid, "working", actor="hook")
    ledger.transition(aid, "reported", actor="hook", report={"status": "done"})
    a = ledger.transition(aid, "verified", actor="svc", verification={"verdict": "verified"})
    assert a.ended_at is not None
    assert a.ended_at > a.sent_at
    assert not a.open
    steps = [(e.from_state, e.to_state) for e in ledger.events_for(aid)]
    assert steps == [(None, "queued"), ("queued", "sent"), ("sent", "working"), ("working", "reported"),
                     ("reported", "verified")]
    assert ledger.events_for(aid)[1].details == {"fields": ["baseline", "receipt", "turn_id"]}


def test_the_lifecycle_table_is_enforced(ledger_backend: Make) -> None:
    ledger = ledger_backend()
    aid = make(ledger)
    with pytest.raises(InvalidTransition, match="from queued to verified: it can go to cancelled, failed, sent"):
        ledger.transition(aid, "verified", actor="x")
    ledger.transition(aid, "cancelled", actor="x")
    with pytest.raises(InvalidTransition, match="cancelled is an end state"):
        ledger.transition(aid, "sent", actor="x")
    assert len(ledger.events_for(aid)) == 2  # a refused move writes nothing


def test_compare_and_set_refuses_a_stale_expectation_from_another_host(ledger_backend: Make) -> None:
    a, b = ledger_backend("a"), ledger_backend("b")
    aid = make(a)
    a.transition(aid, "sent", actor="a", expect="queued")
    with pytest.raises(StateConflict) as info:
        b.transition(aid, "sent", actor="b", expect="queued")
    assert info.value.data["state"] == "sent"
    assert b.transition(aid, "cancelled", actor="c", expect=["sent", "working"]).state == "cancelled"
    assert a.get(aid).state == "cancelled"


def test_unknown_ids_and_fields_are_refused(ledger_backend: Make) -> None:
    ledger = ledger_backend()
    missing = "as-01JAAAAAAAAAAAAAAAAAAAAAAA"
    for call in (lambda: ledger.get(missing), lambda: ledger.transition(missing, "sent", actor="x"),
                 lambda: ledger.annotate(missing, "note", actor="x"), lambda: ledger.baseline(missing),
                 lambda: ledger.annotate_once(missing, "note", "k", actor="x"),
                 lambda: ledger.reassign(missing, from_agent="a", to_agent="b", actor="x")):
        with pytest.raises(AssignmentNotFound):
            call()
    assert ledger.set_usage(missing, {"input": 1}) is False
    aid = make(ledger)
    with pytest.raises(InvalidInput, match="Cannot set state"):
        ledger.transition(aid, "sent", actor="x", state="verified")
    with pytest.raises(InvalidInput, match="Bad event kind"):
        ledger.annotate(aid, "Not A Kind", actor="x")
    with pytest.raises(InvalidInput, match="larger than"):
        ledger.annotate(aid, "note", actor="x", details={"blob": "x" * 70_000})
    assert ledger.get(aid).state == "queued"  # nothing half-applied
    assert len(ledger.events_for(aid)) == 1


def test_annotate_and_agent_events_append_without_changing_state(ledger_backend: Make) -> None:
    ledger = ledger_backend()
    aid = make(ledger, agent="mila")
    ev = ledger.annotate(aid, "scope_denied", actor="hook", details={"paths": ["../x"]}, turn_id="t9")
    assert (ev.kind, ev.agent, ev.details) == ("scope_denied", "mila", {"paths": ["../x"]})
    assert ledger.get(aid).turn_id == "t9"
    assert ledger.get(aid).state == "queued"
    other = ledger.record_event("agent_limited", actor="watchdog", agent="noor", details={"resets_at": 5})
    assert other.assignment is None
    assert other.cursor > ev.cursor
    assert ledger.events_since(ev.cursor)[0] == [other]


def test_lists_filter_page_and_order_newest_first(ledger_backend: Make) -> None:
    ledger = ledger_backend(clock=Clock())
    ids = [make(ledger, agent="mila" if i % 2 else "noor", task=f"t{i}") for i in range(6)]
    ledger.transition(ids[0], "cancelled", actor="x")
    assert [a.id for a in ledger.assignments()] == ids[::-1]
    assert [a.id for a in ledger.assignments(open_only=True)] == ids[:0:-1]
    assert [a.id for a in ledger.assignments(agent="mila")] == [ids[5], ids[3], ids[1]]
    assert [a.id for a in ledger.assignments(states=["cancelled"])] == [ids[0]]
    page = ledger.assignments(limit=2)
    assert [a.id for a in ledger.assignments(limit=2, before=page[-1].id)] == [ids[3], ids[2]]
    assert [a.id for a in ledger.queued()] == ids[1:]


def test_ids_keep_creation_order_when_the_clock_stalls_or_steps_back(ledger_backend: Make) -> None:
    times = iter([2000.0, 2000.0, 1000.0, 2000.0005, 3000.0])
    ledger = ledger_backend(clock=lambda: next(times))
    ids = [make(ledger) for _ in range(5)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 5


def test_agent_load_counts_open_work_and_the_last_send(ledger_backend: Make) -> None:
    ledger = ledger_backend(clock=Clock())
    a, b, _queued = (make(ledger, agent="mila") for _ in range(3))
    make(ledger)  # queued for whoever frees up: nobody's load
    ledger.transition(a, "sent", actor="x")
    sent_b = ledger.transition(b, "sent", actor="x")
    ledger.transition(b, "failed", actor="x")
    assert ledger.agent_load() == {"mila": (2, sent_b.sent_at)}


def test_summaries_are_compact_rows_with_the_report_status_and_verdict(ledger_backend: Make) -> None:
    ledger = ledger_backend()
    aid = make(ledger, task="x" * 500, agent="mila", skills=["pdf"], write_paths=["docs/"])
    ledger.transition(aid, "sent", actor="x")
    ledger.transition(aid, "reported", actor="x", report={"status": "partial", "summary": "s"})
    ledger.transition(aid, "rejected", actor="x", verification={"verdict": "rejected"}, reason="check failed")
    [s] = ledger.summaries()
    assert (s.id, s.task, s.task_chars, s.skills, s.write_paths) == (aid, "x" * 200, 500, ("pdf",), ("docs/",))
    assert (s.state, s.report_status, s.verdict, s.reason) == ("rejected", "partial", "rejected", "check failed")
    assert ledger.summaries(open_only=True) == []
    assert s.to_dict()["skills"] == ["pdf"]


def test_set_usage_stores_a_count_once_and_leaves_updated_at(ledger_backend: Make) -> None:
    ledger = ledger_backend(clock=Clock())
    aid = make(ledger)
    before = ledger.get(aid).updated_at
    assert ledger.set_usage(aid, {"input": 10, "output": 2, "turns": 1}) is True
    assert ledger.set_usage(aid, {"output": 2, "input": 10, "turns": 1}) is False  # the same count
    got = ledger.get(aid)
    assert got.usage == {"input": 10, "output": 2, "turns": 1}
    assert got.updated_at == before
    assert ledger.set_usage(aid, {"input": 11, "output": 2, "turns": 2}) is True


def test_text_with_nul_and_agent_controlled_json_are_stored_and_listed(ledger_backend: Make) -> None:
    """An agent writes the report: a NUL or an odd document must not break storing or listing."""
    ledger = ledger_backend()
    aid = make(ledger, agent="mila")
    ledger.transition(aid, "sent", actor="x")
    report = {"status": "do\u0000ne", "summary": "\u0000" * 3, "nested": {"status": ["x"]}}
    ledger.transition(aid, "reported", actor="x", report=report, reason="bad\u0000reason")
    got = ledger.get(aid)
    assert got.report == report  # JSON keeps the NUL escaped
    assert got.reason in {"bad\u0000reason", "bad\ufffdreason"}  # PostgreSQL text cannot hold NUL
    [s] = ledger.summaries()
    assert s.report_status in {"do\u0000ne", "do"}  # SQLite's json_extract stops at the NUL
    ev = ledger.annotate(aid, "note", actor="x", details={"text": "a\u0000b"})
    assert ledger.events_for(aid)[-1].details == ev.details == {"text": "a\u0000b"}


# -- idempotency -----------------------------------------------------------------------------------

def test_a_retried_create_returns_the_same_assignment_and_creates_nothing(ledger_backend: Make) -> None:
    a, b = ledger_backend("a"), ledger_backend("b")
    req = {"task": "x", "to": "mila"}
    first, dup1 = a.create(task="x", holder="lead", actor="a", request_id="r1", request=req)
    same = dict(reversed(req.items()))  # key order does not matter
    again, dup2 = b.create(task="x", holder="lead", actor="a", request_id="r1", request=same)  # another host
    assert (dup1, dup2) == (False, True)
    assert again == first
    assert len(a.assignments()) == 1
    assert len(a.events_since(0)[0]) == 1
    with pytest.raises(RequestIdConflict) as info:
        b.create(task="y", holder="lead", actor="a", request_id="r1", request={"task": "y"})
    assert info.value.code == "request_id_conflict"
    assert len(a.assignments()) == 1


def test_request_ids_expire_by_age(ledger_backend: Make) -> None:
    clock = Clock()
    ledger = ledger_backend(clock=clock)
    ledger.create(task="x", holder="lead", actor="a", request_id="r1")
    assert ledger.find_request("assign", "r1") is not None
    clock.now += REQUEST_TTL + 1
    assert ledger.find_request("assign", "r1") is None
    _, dup = ledger.create(task="other", holder="lead", actor="a", request_id="r1")
    assert not dup


def test_send_requests_are_claimed_finished_or_forgotten(ledger_backend: Make) -> None:
    clock = Clock()
    ledger = ledger_backend(clock=clock)
    rec = ledger.begin_request("send", "s1", {"agent": "mila", "text": "hi"})
    assert rec.fresh
    assert rec.result is None
    pending = ledger.begin_request("send", "s1", {"agent": "mila", "text": "hi"})
    assert (pending.fresh, pending.result) == (False, None)
    ledger.finish_request("send", "s1", {"turn_id": "t1"})
    done = ledger.begin_request("send", "s1", {"agent": "mila", "text": "hi"})
    assert (done.fresh, done.result) == (False, {"turn_id": "t1"})
    found = ledger.find_request("send", "s1")
    assert found is not None
    assert found.result == {"turn_id": "t1"}
    with pytest.raises(RequestIdConflict):
        ledger.begin_request("send", "s1", {"agent": "mila", "text": "other"})
    ledger.begin_request("send", "s2", {"x": 1})
    ledger.forget_request("send", "s2")
    assert ledger.begin_request("send", "s2", {"x": 2}).fresh
    ledger.forget_request("send", "s1")  # finished: a forget does not drop it
    assert ledger.begin_request("send", "s1", {"agent": "mila", "text": "hi"}).result == {"turn_id": "t1"}
    with pytest.raises(InvalidInput):
        ledger.begin_request("Bad Scope", "s3", {})
    clock.now += 100
    assert ledger.prune_requests(max_age=50) == 2
    assert ledger.begin_request("send", "s1", {"anything": True}).fresh


# -- events ----------------------------------------------------------------------------------------

def test_events_since_pages_with_a_cursor(ledger_backend: Make) -> None:
    ledger = ledger_backend()
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
    one = page[0].assignment
    assert one is not None
    assert [e.assignment for e in ledger.events_since(0, assignment=one)[0]] == [one]


def test_data_version_moves_when_another_host_commits(ledger_backend: Make) -> None:
    reader, writer = ledger_backend("a"), ledger_backend("b")
    before = reader.data_version()
    assert reader.data_version() == before
    make(writer)
    assert reader.data_version() != before


# -- reassignment and facts recorded once ----------------------------------------------------------

def test_reassigning_moves_the_agent_by_compare_and_set_and_records_from_and_to(ledger_backend: Make) -> None:
    ledger = ledger_backend(clock=Clock())
    aid = make(ledger)
    ledger.transition(aid, "sent", actor="t", expect="queued", agent="ada", turn_id="t-1")
    moved = ledger.reassign(aid, from_agent="ada", to_agent="bob", actor="watchdog", prompt="new prompt",
                            details={"reason": "ada is parked"})
    assert (moved.agent, moved.state, moved.turn_id, moved.prompt) == ("bob", "sent", None, "new prompt")
    [event] = [e for e in ledger.events_for(aid) if e.kind == "reassigned"]
    assert (event.agent, event.actor, event.details) == ("bob", "watchdog",
                                                         {"from": "ada", "to": "bob", "reason": "ada is parked"})
    assert moved.sent_at == event.time
    assert ledger.handed_over("ada", since=0.0) == aid
    assert ledger.handed_over("bob", since=0.0) is None
    assert ledger.handed_over("ada", since=event.time + 1) is None
    with pytest.raises(StateConflict):  # it is bob's now: a second move from ada loses
        ledger.reassign(aid, from_agent="ada", to_agent="cy", actor="watchdog")
    ledger.transition(aid, "cancelled", actor="t")
    with pytest.raises(StateConflict):  # ended: nothing moves
        ledger.reassign(aid, from_agent="bob", to_agent="cy", actor="watchdog")
    assert ledger.get(aid).agent == "bob"


def test_annotate_once_records_a_fact_once_across_hosts(ledger_backend: Make) -> None:
    a, b = ledger_backend("a"), ledger_backend("b")
    aid = a.create(task="t", holder="lead", actor="lead", agent="mila")[0].id
    first = a.annotate_once(aid, "scope_denied", "turn-1:1.5", actor="hook", details={"paths": ["x"]})
    assert first is not None
    assert first.details == {"paths": ["x"], "key": "turn-1:1.5"}
    assert b.annotate_once(aid, "scope_denied", "turn-1:1.5", actor="hook") is None
    assert b.annotate_once(aid, "report_asked", "turn-1:1.5", actor="hook") is not None
    assert [e.kind for e in a.events_for(aid)] == ["created", "scope_denied", "report_asked"]


# -- the lifecycle through either backend, as a property -------------------------------------------

@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(STATES), st.booleans()), max_size=10))
def test_the_ledger_accepts_exactly_the_moves_the_table_allows(ledger_backend: Make,
                                                               moves: list[tuple[str, bool]]) -> None:
    led = ledger_backend()
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


# -- the PostgreSQL ledger's pure helpers, as properties ---------------------------------------------

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                    max_leaves=8)


@given(st.lists(st.text() | st.integers() | st.none(), max_size=5))
def test_parameters_never_carry_a_nul_and_other_text_is_kept(params: list[Any]) -> None:
    from fleet.work.pgledger import _clean

    cleaned = _clean(params)
    assert not any(isinstance(p, str) and "\x00" in p for p in cleaned)
    assert [c for c, p in zip(cleaned, params, strict=True) if not (isinstance(p, str) and "\x00" in p)] == \
        [p for p in params if not (isinstance(p, str) and "\x00" in p)]


@given(JSON)
def test_a_summary_field_is_read_from_any_stored_document_without_raising(document: Any) -> None:
    from fleet.work.ledgersql import dumps
    from fleet.work.pgledger import _field

    expected = document.get("status") if isinstance(document, dict) else None
    assert _field(dumps(document), "status") == expected
    assert _field(None, "status") is None
