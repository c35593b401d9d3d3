"""Pure state classification: journal events and process facts in, one state out."""

from __future__ import annotations

from typing import Any

import pytest

from fleet.agents.rollout import TurnEnd
from fleet.agents.state import Observation, PaneFacts, classify, needs_screen, read_journal, turn_end_event

ALIVE = PaneFacts(session="a", pane_id="%1", pid=42, dead=False, dead_status=None, dead_signal=None,
                  activity=None)
DEAD = PaneFacts(session="a", pane_id="%1", pid=None, dead=True, dead_status=3, dead_signal=None, activity=None)
KILLED = PaneFacts(session="a", pane_id="%1", pid=None, dead=True, dead_status=None, dead_signal=9, activity=None)


def ev(event: str, t: float, **kw: Any) -> dict[str, Any]:
    return {"event": event, "time": t, **kw}


LAUNCH = [ev("launched", 1.0)]
READY = [*LAUNCH, ev("ready", 2.0)]
TURN = [*READY, ev("turn_started", 3.0, turn_id="t1", prompt="hi", transcript_path="/r.jsonl")]
DONE = [*TURN, ev("turn_completed", 4.0, turn_id="t1", last_message="hello")]


@pytest.mark.parametrize(
    ("events", "pane", "screen", "state"),
    [
        ([], None, None, "stopped"),
        (DONE, None, None, "stopped"),
        (READY, DEAD, None, "exited"),
        (LAUNCH, ALIVE, "", "starting"),
        (LAUNCH, ALIVE, "› Ask Codex to do anything\n  ← for agents · ? for shortcuts", "idle"),
        (LAUNCH, ALIVE, "Do you trust the contents of this directory?", "starting"),
        (READY, ALIVE, None, "idle"),
        (TURN, ALIVE, None, "working"),
        (DONE, ALIVE, None, "idle"),
        ([*TURN, ev("tool_started", 3.5, turn_id="t1")], ALIVE, "Would you like to run the following command?",
         "waiting_approval"),
        ([*TURN, ev("tool_started", 3.5, turn_id="t1")], ALIVE, "running...", "working"),
        ([*TURN, ev("turn_aborted", 3.6, turn_id="t1")], ALIVE, None, "idle"),
    ],
)
def test_state_follows_codex_signals(events: list[dict[str, Any]], pane: PaneFacts | None, screen: str | None,
                                     state: str) -> None:
    assert classify(Observation(pane, read_journal(events), screen=screen)).state == state


def test_a_turn_the_rollout_records_as_aborted_is_not_working() -> None:
    end = TurnEnd("t1", "aborted", 3.6)
    obs = Observation(ALIVE, read_journal([*TURN, turn_end_event(end)]))
    assert classify(obs).state == "idle"


def test_only_the_latest_launch_counts() -> None:
    events = [*TURN, *LAUNCH]
    journal = read_journal(events)
    assert journal.open_turn is None
    assert journal.last_turn is None
    assert classify(Observation(ALIVE, journal, screen="")).state == "starting"


def test_last_turn_carries_the_final_assistant_message() -> None:
    last = read_journal(DONE).last_turn
    assert last is not None
    assert (last["turn_id"], last["outcome"], last["last_message"], last["prompt_chars"]) == (
        "t1", "completed", "hello", 2)


def test_side_thread_notifications_do_not_end_or_start_turns() -> None:
    events = [*TURN, ev("side_turn_completed", 3.2, turn_id="title-1"), ev("turn_notified", 3.3, turn_id="x")]
    assert classify(Observation(ALIVE, read_journal(events))).state == "working"


def test_the_screen_is_read_only_where_codex_gives_no_signal() -> None:
    assert needs_screen(ALIVE, read_journal(LAUNCH))  # readiness
    assert not needs_screen(ALIVE, read_journal(READY))
    assert not needs_screen(ALIVE, read_journal(TURN))
    tool = read_journal([*TURN, ev("tool_started", 3.5, turn_id="t1")])
    assert needs_screen(ALIVE, tool)  # approval menus
    assert not needs_screen(DEAD, read_journal(LAUNCH))


def test_exited_reports_the_exit_status() -> None:
    assert classify(Observation(DEAD, read_journal(READY))).detail == "exit status 3"
    assert classify(Observation(KILLED, read_journal(READY))).detail == "killed by signal 9"
