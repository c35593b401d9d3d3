"""The pure progress fold and the one next-step decision of an open assignment."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from fleet.work.progress import Decision, Progress, next_step, read_progress
from fleet.work.report import REPORT_SCHEMA

VALID = '```fleet-report\n{"status":"done","summary":"s","changed":[],"tests":"","risks":""}\n```'
GRACE = 120.0


def ev(kind: str, turn: str, message: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"event": kind, "turn_id": turn, "time": 1.0}
    if message is not None:
        out["last_message"] = message
    return out


def test_a_report_counts_only_from_the_assignments_turns() -> None:
    journal = [ev("turn_started", "other"), ev("turn_completed", "other", VALID),
               ev("turn_started", "t1"), ev("turn_completed", "t1", "no block")]
    progress = read_progress(journal, {"t1"})
    assert progress.report is None
    assert [u.turn_id for u in progress.unreported] == ["t1"]
    assert progress.started
    assert not progress.running


def test_the_last_valid_report_wins_and_a_reported_turn_is_not_unreported() -> None:
    later = VALID.replace('"s"', '"second"')
    journal = [ev("turn_started", "t1"), ev("turn_completed", "t1", VALID), ev("turn_notified", "t1", VALID),
               ev("turn_started", "t2"), ev("turn_completed", "t2", later)]
    progress = read_progress(journal, {"t1", "t2"})
    assert progress.report is not None
    assert (progress.report.summary, progress.report_turn, progress.unreported) == ("second", "t2", ())


def test_a_running_turn_and_an_aborted_one() -> None:
    assert read_progress([ev("turn_started", "t1")], {"t1"}).running
    assert not read_progress([ev("turn_started", "t1"), ev("turn_aborted", "t1")], {"t1"}).running
    assert not read_progress([ev("turn_started", "t1"), ev("turn_failed", "t1")], {"t1"}).running


def test_next_step_examples() -> None:
    started = Progress(started=True, running=True)
    assert next_step("sent", started, "running", None, 0, GRACE) == Decision("working")
    assert next_step("working", started, "running", None, 0, GRACE) is None
    assert next_step("working", started, "exited", None, 0, GRACE) == Decision(
        "failed", "its agent exited before a report came")
    assert next_step("working", started, "running", 100.0, 150.0, GRACE) is None  # running: grace
    assert next_step("working", started, "running", 100.0, 221.0, GRACE) == Decision(
        "failed", "the deadline passed with no report")
    idle = Progress(started=True, running=False)
    assert next_step("working", idle, "running", 100.0, 101.0, GRACE) == Decision(
        "failed", "the deadline passed with no report")
    assert next_step("reported", idle, "exited", 100.0, 1e9, GRACE) is None


reports = st.fixed_dictionaries({
    "status": st.sampled_from(REPORT_SCHEMA["properties"]["status"]["enum"]),
    "summary": st.text(min_size=1, max_size=20).filter(str.strip),
    "changed": st.just([]), "tests": st.just(""), "risks": st.just(""),
})
events = st.lists(st.tuples(
    st.sampled_from(["turn_started", "turn_completed", "turn_notified", "turn_aborted", "tool_started"]),
    st.sampled_from(["t1", "t2", "x"]),
    st.one_of(st.none(), st.just("no block"), reports.map(lambda r: f"```fleet-report\n{json.dumps(r)}\n```")),
), max_size=12)


@given(events, st.sets(st.sampled_from(["t1", "t2", "x"])))
def test_only_named_turns_ever_report_and_the_report_is_the_last_valid_one(
        raw: list[tuple[str, str, str | None]], turns: set[str]) -> None:
    journal = [ev(kind, turn, msg if kind in ("turn_completed", "turn_notified") else None)
               for kind, turn, msg in raw]
    progress = read_progress(journal, turns)
    valid = [(e["turn_id"], e["last_message"]) for e in journal
             if e["turn_id"] in turns and e["event"] in ("turn_completed", "turn_notified")
             and (e.get("last_message") or "").startswith("```fleet-report")]
    if not valid:
        assert progress.report is None
    else:
        assert progress.report_turn == valid[-1][0]
        assert progress.report is not None
        assert json.loads(valid[-1][1].split("\n")[1])["summary"] == progress.report.summary
    assert {u.turn_id for u in progress.unreported} <= turns


@given(st.sampled_from(["sent", "working"]), st.booleans(), st.booleans(), st.booleans(),
       st.sampled_from(["running", "exited", "stopped"]), st.one_of(st.none(), st.floats(0, 1000)),
       st.floats(0, 2000))
def test_nothing_fails_before_its_deadline_while_the_agent_runs(state: str, started: bool, running: bool,
                                                               reported: bool, agent: str, deadline: float | None,
                                                               now: float) -> None:
    from fleet.work.report import Report

    report = Report("done", "s", (), "", "") if reported else None
    progress = Progress(started=started, running=running and started, report=report)
    decision = next_step(state, progress, agent, deadline, now, GRACE)
    if reported:
        assert decision is not None
        assert decision.to in ("working", "reported")
    elif decision is not None and decision.to == "failed":
        assert agent != "running" or (deadline is not None and now > deadline)
        assert not (agent == "running" and progress.running and deadline is not None and now <= deadline + GRACE)
