"""The tick's folds (journal -> facts), fleet's approval hold, and the watchdog's own tables."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet.agents import approvals
from fleet.agents.state import Observation, PaneFacts, classify, read_journal
from fleet.hooks.hold import hold
from fleet.watchdog.decide import Ladder
from fleet.watchdog.facts import FLEET_EVENTS, agent_state, build_facts, fold_journal
from fleet.watchdog.store import MAX_OWN_TURNS, MAX_TICKS, AgentRecord, LadderRecord, WatchdogStore
from fleet.work.ledger import Ledger

T0 = 1_800_000_000.0
PANE = PaneFacts("a", "%1", 123, False, None, None, None)


def ev(kind: str, at: float, turn: str | None = None, **kw: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"time": at, "event": kind, **kw}
    if turn is not None:
        out["turn_id"] = turn
    if kind not in FLEET_EVENTS:
        out.setdefault("source", "hook")
    return out


TURN = [ev("launched", T0), ev("ready", T0 + 1), ev("send", T0 + 2),
        ev("turn_started", T0 + 3, "t1", session_id="s-1", transcript_path="/r.jsonl"), ev("receipt", T0 + 3.1),
        ev("tool_started", T0 + 4, "t1"), ev("tool_completed", T0 + 5, "t1"), ev("turn_completed", T0 + 6, "t1")]


# -- journal fold -----------------------------------------------------------------------------------

def test_a_finished_turn_is_work_and_progress_and_names_the_session() -> None:
    j = fold_journal(TURN)
    assert (j.last_progress_at, j.last_work_at, j.open_turn, j.command_running) == (T0 + 6, T0 + 6, None, False)
    assert (j.session_id, j.transcript, j.launched_at) == ("s-1", "/r.jsonl", T0)


def test_fleet_s_own_records_are_neither_progress_nor_work() -> None:
    j = fold_journal([*TURN, ev("send", T0 + 20), ev("receipt", T0 + 21), ev("stopped", T0 + 22)])
    assert (j.last_progress_at, j.last_work_at) == (T0 + 6, T0 + 6)


def test_the_watchdog_s_own_turns_are_progress_but_not_work() -> None:
    own = [ev("turn_started", T0 + 30, "w1"), ev("tool_started", T0 + 31, "w1"), ev("turn_completed", T0 + 32, "w1")]
    j = fold_journal([*TURN, *own], own_turns={"w1"})
    assert (j.last_progress_at, j.last_work_at) == (T0 + 32, T0 + 6)


def test_an_interrupt_or_a_failure_is_not_work() -> None:
    j = fold_journal([*TURN[:-1], ev("turn_aborted", T0 + 40, "t1"), ev("turn_failed", T0 + 41, "t1")])
    assert (j.last_progress_at, j.last_work_at, j.open_turn) == (T0 + 41, T0 + 5, None)


def test_a_tool_without_its_post_hook_is_a_running_command() -> None:
    j = fold_journal(TURN[:6])
    assert (j.open_turn, j.command_running) == ("t1", True)
    j = fold_journal([*TURN[:6], ev("launched", T0 + 50)])  # the pane was relaunched: that turn is gone
    assert (j.open_turn, j.command_running) == (None, False)


@settings(deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["turn_started", "tool_started", "tool_completed", "turn_completed",
                                           "turn_aborted", "send", "receipt", "session_started"]),
                          st.sampled_from(["t1", "w1", "w2"]), st.floats(0, 1000)), max_size=30))
def test_events_of_the_watchdog_s_turns_never_move_work(raw: list[tuple[str, str, float]]) -> None:
    events = [ev(kind, T0 + at, turn) for kind, turn, at in sorted(raw, key=lambda r: r[2])]
    theirs = [e for e in events if e.get("turn_id") not in {"w1", "w2"}]
    assert fold_journal(events, {"w1", "w2"}).last_work_at == fold_journal(theirs).last_work_at


# -- approvals --------------------------------------------------------------------------------------

PAYLOAD = {"hook_event_name": "PermissionRequest", "session_id": "s-1", "turn_id": "t1", "tool_name": "Bash",
           "tool_input": {"command": "rm -rf build", "description": "clean the build"}}


def test_the_hook_holds_until_an_answer_to_its_own_request_and_prints_the_decision(tmp_path: Path) -> None:
    journal: list[dict[str, Any]] = []
    out: dict[str, Any] = {}

    def run() -> None:
        out["result"] = hold(str(tmp_path), PAYLOAD, 30, journal.append)

    thread = threading.Thread(target=run)
    thread.start()
    request = _wait(lambda: journal and journal[0]["request"])
    approvals.write_answer(tmp_path, "ap-someone-else", "allow", by="x")  # not this request: ignored
    assert approvals.pending(journal)["command"] == "rm -rf build"
    approvals.write_answer(tmp_path, request, "deny", by="cli:ada", message="not now")
    thread.join(10)
    assert out["result"] == {"hookSpecificOutput": {"hookEventName": "PermissionRequest",
                                                    "decision": {"behavior": "deny", "message": "not now"}}}
    assert [e["event"] for e in journal] == ["approval_requested", "approval_answered"]
    assert journal[0]["justification"] == "clean the build"
    assert journal[1]["by"] == "cli:ada"
    assert not (tmp_path / approvals.ANSWER_FILE).exists()
    assert approvals.pending(journal) is None


def test_without_an_answer_the_hook_lets_go_in_time_and_the_approval_is_no_longer_held(tmp_path: Path) -> None:
    clock = iter(range(1000))
    journal: list[dict[str, Any]] = []
    result = hold(str(tmp_path), PAYLOAD, 5, journal.append, clock=lambda: float(next(clock)),
                            sleep=lambda s: None)
    assert result is None
    assert [e["event"] for e in journal] == ["approval_requested", "approval_released"]
    waiting = approvals.pending(journal)
    assert waiting is not None
    assert waiting["held"] is False


@pytest.mark.parametrize("after", ["tool_started", "tool_completed", "turn_completed", "turn_aborted", "launched"])
def test_a_pending_approval_ends_when_its_turn_goes_on(after: str) -> None:
    asked = approvals.request_record(PAYLOAD, "ap-1", T0, 60)
    assert approvals.pending([asked]) is not None
    assert approvals.pending([asked, ev(after, T0 + 1, "t1")]) is None


def test_waiting_approval_comes_from_the_hook_record_with_the_command() -> None:
    events = [*TURN[:4], approvals.request_record(PAYLOAD, "ap-1", T0 + 10, 60)]
    verdict = classify(Observation(PANE, read_journal(events)))
    assert verdict.state == "waiting_approval"
    assert verdict.detail == "approval of Bash `rm -rf build`"
    j = fold_journal(events)
    assert agent_state({"state": "working"}, j) == "waiting_approval"
    facts = build_facts(status={"name": "a", "state": "waiting_approval", "since": T0 + 10}, journal=j,
                        now=T0 + 20, role="worker")
    assert facts.approval is not None
    assert (facts.approval.command, facts.approval.held, facts.approval.since) == ("rm -rf build", True, T0 + 10)
    late = build_facts(status={"name": "a", "state": "working"}, journal=j, now=T0 + 71, role="worker")
    assert late.approval is not None
    assert late.approval.held is False  # past hold_until: the hook is gone even if it wrote nothing


def test_a_screen_only_approval_menu_is_not_trusted_as_waiting_approval() -> None:
    assert agent_state({"state": "waiting_approval"}, fold_journal(TURN[:6])) == "working"


# -- facts ------------------------------------------------------------------------------------------

def test_an_agent_marked_fatal_stays_fatal_until_someone_launches_it_again() -> None:
    record = {"fatal_at": T0 + 100, "restarts": 3, "last_restart_at": T0 + 90}
    dead = {"name": "a", "state": "exited", "since": T0 + 95}
    f = build_facts(status=dead, journal=fold_journal(TURN), now=T0 + 200, role="worker", record=record)
    assert (f.fatal, f.restarts) == (True, 3)
    again = fold_journal([*TURN, ev("launched", T0 + 300)])
    g = build_facts(status=dead, journal=again, now=T0 + 400, role="worker", record=record)
    assert (g.fatal, g.restarts, g.last_restart_at) == (False, 0, None)


def test_a_crash_with_a_turn_open_lost_that_turn() -> None:
    dead = {"name": "a", "state": "exited", "since": T0 + 5}
    assert build_facts(status=dead, journal=fold_journal(TURN[:6]), now=T0 + 9, role="worker").lost_turn
    assert not build_facts(status=dead, journal=fold_journal(TURN), now=T0 + 9, role="worker").lost_turn


def test_the_rollout_s_mtime_is_progress_only_while_a_turn_is_open() -> None:
    working = {"name": "a", "state": "working", "since": T0 + 3}
    f = build_facts(status=working, journal=fold_journal(TURN[:4]), now=T0 + 99, role="worker",
                    transcript_mtime=T0 + 50)
    assert f.last_progress_at == T0 + 50
    idle = {"name": "a", "state": "idle", "since": T0 + 6}
    g = build_facts(status=idle, journal=fold_journal(TURN), now=T0 + 99, role="worker", transcript_mtime=T0 + 50)
    assert (g.last_progress_at, g.idle_since) == (T0 + 6, T0 + 6)


def test_an_assignment_row_becomes_the_open_assignment_with_its_report_flag() -> None:
    row = {"id": "as-1", "state": "working", "sent_at": T0, "deadline": T0 + 60, "report": {"status": "done"}}
    f = build_facts(status={"name": "a", "state": "idle", "since": T0}, journal=fold_journal(TURN), now=T0,
                    role="worker", assignment=row)
    assert f.assignment is not None
    assert (f.assignment.id, f.assignment.state, f.assignment.has_valid_report, f.assignment.deadline) == (
        "as-1", "working", True, T0 + 60)


# -- the watchdog's tables --------------------------------------------------------------------------

@pytest.fixture
def store(tmp_path: Path) -> Any:
    with Ledger(tmp_path) as ledger, WatchdogStore(ledger.path) as s:
        yield s


@settings(deadline=None, max_examples=30)
@given(rung=st.none() | st.integers(0, 6), step=st.none() | st.floats(0, 2e9), asked=st.none() | st.floats(0, 2e9),
       requests=st.integers(0, 50), turns=st.lists(st.text("abcdef0123456789-", min_size=1, max_size=36),
                                                     max_size=40, unique=True))
def test_a_ladder_comes_back_as_it_was_saved(tmp_path_factory: pytest.TempPathFactory, rung: int | None,
                                             step: float | None, asked: float | None, requests: int,
                                             turns: list[str]) -> None:
    with Ledger(tmp_path_factory.mktemp("db")) as ledger, WatchdogStore(ledger.path) as s:
        rec = LadderRecord("as-1", "ada", Ladder(rung, step, asked, requests))
        for turn in turns:
            rec = rec.with_turn(turn)
        s.save_ladder(rec, T0)
        assert s.ladders(["as-1", "as-2"]) == {"as-1": rec}
        assert rec.own_turns == tuple(turns[-MAX_OWN_TURNS:])


def test_agent_records_replace_and_ended_ladders_are_forgotten(store: WatchdogStore) -> None:
    store.save_agent(AgentRecord("ada", restarts=1), T0)
    store.save_agent(AgentRecord("ada", restarts=2, fatal_at=T0, fatal_reason="crash loop"), T0 + 1)
    assert store.agents() == {"ada": AgentRecord("ada", restarts=2, fatal_at=T0, fatal_reason="crash loop")}
    for aid in ("as-1", "as-2", "as-3"):
        store.save_ladder(LadderRecord(aid, "ada"), T0)
    assert store.forget_ladders(["as-2"]) == 2
    assert set(store.ladders(["as-1", "as-2", "as-3"])) == {"as-2"}


def test_ticks_are_kept_newest_first_and_bounded(store: WatchdogStore) -> None:
    for i in range(MAX_TICKS + 5):
        store.add_tick(T0 + i, dry_run=False, ms=1, skipped=None,
                       actions=[{"action": "remind"}] if i % 100 == 0 else [])
    last = store.ticks(3)
    assert [t.at for t in last] == [T0 + MAX_TICKS + 4, T0 + MAX_TICKS + 3, T0 + MAX_TICKS + 2]
    acted = store.ticks(100, acted_only=True)
    assert [t.at for t in acted][:2] == [T0 + 1500, T0 + 1400]
    assert all(t.actions == [{"action": "remind"}] for t in acted)
    rows = store._db.execute("SELECT COUNT(*) FROM watchdog_ticks").fetchone()[0]
    assert rows == MAX_TICKS
    assert json.loads(store._db.execute("SELECT actions FROM watchdog_ticks ORDER BY id LIMIT 1").fetchone()[0]) == []


def test_the_work_layer_leaves_a_crash_to_a_running_watchdog_unless_it_gave_up_on_the_agent(
        tmp_path: Path) -> None:
    from fleet.watchdog.store import ACTIVE_PERIODS, will_restart

    path = tmp_path / "fleet.db"
    assert not will_restart(path, "ada", 60, T0)  # no ledger: no watchdog
    assert not path.exists()
    with Ledger(tmp_path) as ledger:
        assert not will_restart(path, "ada", 60, T0)  # a ledger, but the watchdog never ran
        with WatchdogStore(ledger.path) as s:
            assert not will_restart(path, "ada", 60, T0)
            s.add_tick(T0, dry_run=False, ms=1, skipped=None, actions=[])
            assert will_restart(path, "ada", 60, T0 + ACTIVE_PERIODS * 60)
            assert not will_restart(path, "ada", 60, T0 + ACTIVE_PERIODS * 60 + 1)  # it stopped ticking
            s.save_agent(AgentRecord("ada", restarts=3, fatal_at=T0), T0)
            assert not will_restart(path, "ada", 60, T0 + 1)
            assert will_restart(path, "bob", 60, T0 + 1)


def _wait(predicate: Any, timeout: float = 10.0) -> Any:
    from conftest import wait_until

    return wait_until(predicate, timeout=timeout, interval=0.02)


@settings(deadline=None)
@given(st.lists(st.sampled_from(["ask", "answer", "release", "tool_started", "tool_completed", "turn_completed",
                                 "send", "receipt", "turn_notified"]), max_size=20))
def test_pending_is_the_latest_request_with_nothing_after_it_but_its_release(steps: list[str]) -> None:
    events: list[dict[str, Any]] = []
    n = 0
    for i, step in enumerate(steps):
        if step == "ask":
            n += 1
            events.append(approvals.request_record(PAYLOAD, f"ap-{n}", T0 + i, 60))
        elif step in ("answer", "release"):
            events.append({"time": T0 + i, "event": f"approval_{'answered' if step == 'answer' else 'released'}",
                           "request": f"ap-{n}"})
        else:
            events.append(ev(step, T0 + i, "t1"))
    got = approvals.pending(events)
    last_ask = max((i for i, s in enumerate(steps) if s == "ask"), default=None)
    if last_ask is None:
        assert got is None
        return
    after = steps[last_ask + 1:]
    moved = {"answer", "tool_started", "tool_completed", "turn_completed"}
    if moved & set(after):
        assert got is None
    else:
        assert got is not None
        assert got["request"] == f"ap-{n}"
        assert got["held"] is ("release" not in after)


@given(st.text("0123456789ABCDEFGHJKMNPQRSTVWXYZ", min_size=26, max_size=26), st.booleans())
def test_every_report_request_names_its_assignment_and_carries_the_contract(suffix: str, firm: bool) -> None:
    from fleet.watchdog.messages import report_request
    from fleet.work.prompt import REPORT_CONTRACT

    text = report_request(f"as-{suffix}", firm=firm)
    assert f"as-{suffix}" in text
    assert text.endswith(REPORT_CONTRACT)


def test_a_limited_agent_is_parked_until_its_window_resets_then_resumed() -> None:
    """The status shape of a usage limit (state `limited`, `resets_at`, the failed last turn) becomes
    the facts `decide` parks and resumes on."""
    from fleet.config.watchdog import Policy
    from fleet.watchdog.decide import decide

    last = {"turn_id": "t1", "started_at": T0 + 3, "ended_at": T0 + 10, "outcome": "failed", "prompt_chars": 9,
            "last_message": None, "error": {"code": "usage_limit_exceeded", "message": "limit", "http_status": 429,
                                            "resets_at": T0 + 600}}
    status = {"name": "a", "state": "limited", "since": T0 + 10, "resets_at": T0 + 600, "last_turn": last}
    row = {"id": "as-1", "state": "working", "sent_at": T0, "deadline": None, "report": None}
    f = build_facts(status=status, journal=fold_journal(TURN[:4]), now=T0 + 599, role="worker", assignment=row)
    assert (f.state, f.limited_since, f.resets_at) == ("limited", T0 + 10, T0 + 600)
    policy = Policy(idle_after=1, report_grace=1, stall_after=1)
    assert decide(f, policy, T0 + 599) == []  # parked: never asked or escalated for its silence
    [resume] = decide(f, policy, T0 + 600)
    assert (resume.action, resume.assignment) == ("resume_after_limit", "as-1")
    unknown = {**status, "resets_at": None, "last_turn": {**last, "error": {**last["error"], "resets_at": None}}}
    g = build_facts(status=unknown, journal=fold_journal(TURN[:4]), now=T0, role="worker")
    assert decide(g, Policy(limit_retry=3600), T0 + 10 + 3599) == []
    assert [a.action for a in decide(g, Policy(limit_retry=3600), T0 + 10 + 3600)] == ["resume_after_limit"]


def test_a_tool_left_open_by_a_turn_that_failed_is_not_a_running_command_once_the_agent_is_idle() -> None:
    """A failed turn fires no PostToolUse or Stop: the journal still shows the tool in flight, but the
    runtime (which reads the rollout's turn end) says idle, and an idle agent runs nothing."""
    j = fold_journal(TURN[:6])
    assert j.command_running
    f = build_facts(status={"name": "a", "state": "idle", "since": T0 + 9}, journal=j, now=T0 + 99, role="worker",
                    transcript_mtime=T0 + 98)
    assert (f.command_running, f.last_progress_at) == (False, T0 + 4)


def test_an_agent_idle_again_after_its_reset_time_is_still_limited_until_resumed() -> None:
    """Past `resets_at` the runtime says idle, but the last turn is still the one the limit failed:
    the watchdog resumes it rather than asking it for a report."""
    from fleet.config.watchdog import Policy
    from fleet.watchdog.decide import decide

    last = {"turn_id": "t1", "started_at": T0 + 3, "ended_at": T0 + 10, "outcome": "failed", "prompt_chars": 9,
            "last_message": None, "error": {"code": "usage_limit_exceeded", "message": "limit", "http_status": 429,
                                            "resets_at": T0 + 600}}
    row = {"id": "as-1", "state": "working", "sent_at": T0, "deadline": None, "report": None}
    f = build_facts(status={"name": "a", "state": "idle", "since": T0 + 10, "resets_at": None, "last_turn": last},
                    journal=fold_journal(TURN[:4]), now=T0 + 700, role="worker", assignment=row)
    assert (f.state, f.resets_at) == ("limited", T0 + 600)
    assert [a.action for a in decide(f, Policy(idle_after=1), T0 + 700)] == ["resume_after_limit"]
    other = {**last, "error": {**last["error"], "code": "internal_server_error"}}
    g = build_facts(status={"name": "a", "state": "idle", "since": T0 + 10, "last_turn": other},
                    journal=fold_journal(TURN[:4]), now=T0 + 700, role="worker", assignment=row)
    assert g.state == "idle"
