"""Pure agent-state classification: facts in, one state out; no I/O, the clock passed in.

Trust order (DESIGN.md): Codex hooks and notify in the agent's journal, then the rollout file
(aborted turns), then process facts (pane dead, exit status), and screen text only for what Codex
signals nothing about: composer readiness, approval menus and first-run screens.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict

from .screen import APPROVAL_MARKERS, FIRST_RUN_MARKERS, READY_MARKERS


@dataclass(frozen=True)
class PaneFacts:
    """Process facts for one agent's pane, read in one `list-panes -a` call."""

    session: str
    pane_id: str
    pid: int | None
    dead: bool
    dead_status: int | None
    dead_signal: int | None
    activity: int | None



State = Literal["stopped", "starting", "idle", "working", "waiting_approval", "exited"]
STATES: tuple[State, ...] = ("stopped", "starting", "idle", "working", "waiting_approval", "exited")


class LastTurn(TypedDict):
    turn_id: str
    started_at: float | None
    ended_at: float | None
    outcome: Literal["running", "completed", "aborted"]
    prompt_chars: int
    last_message: str | None


@dataclass(frozen=True)
class Journal:
    """What the agent's journal says since its latest launch."""

    launched_at: float | None = None
    ready_at: float | None = None
    open_turn: str | None = None
    open_turn_at: float | None = None
    tool_in_flight: bool = False
    transcript: str | None = None
    last_turn: LastTurn | None = None
    last_event_at: float | None = None
    exit_status: int | None = None
    stopped_at: float | None = None


def read_journal(events: list[dict[str, Any]]) -> Journal:
    """Fold journal events (oldest first) into what matters for state; only the latest launch counts."""
    start = 0
    for i, ev in enumerate(events):
        if ev.get("event") == "launched":
            start = i
    j: dict[str, Any] = {}
    turns: dict[str, LastTurn] = {}
    last: LastTurn | None = None
    for ev in events[start:]:
        kind, at = ev.get("event"), ev.get("time")
        j["last_event_at"] = at
        turn = str(ev.get("turn_id") or "")
        if ev.get("transcript_path"):
            j["transcript"] = ev["transcript_path"]
        if kind == "launched":
            j = {"launched_at": at, "last_event_at": at}
            turns, last = {}, None
        elif kind == "ready":
            j["ready_at"] = at
        elif kind == "turn_started" and turn:
            last = turns[turn] = LastTurn(
                turn_id=turn, started_at=at, ended_at=None, outcome="running",
                prompt_chars=len(str(ev.get("prompt", ""))), last_message=None,
            )
            j.update(open_turn=turn, open_turn_at=at, tool_in_flight=False)
        elif kind in ("turn_completed", "turn_aborted") and turn:
            done = turns.get(turn)
            if done is not None and done["outcome"] == "running":
                done["ended_at"] = at
                done["outcome"] = "completed" if kind == "turn_completed" else "aborted"
                done["last_message"] = ev.get("last_message")
            if j.get("open_turn") == turn:
                j.update(open_turn=None, open_turn_at=None, tool_in_flight=False)
        elif kind == "tool_started" and turn == j.get("open_turn"):
            j["tool_in_flight"] = True
        elif kind == "tool_completed" and turn == j.get("open_turn"):
            j["tool_in_flight"] = False
        elif kind == "stopped":
            j["stopped_at"] = at
            j["exit_status"] = ev.get("exit_status")
    return Journal(last_turn=last, **j)


@dataclass(frozen=True)
class Observation:
    pane: PaneFacts | None
    journal: Journal
    aborted_turns: frozenset[str] = field(default_factory=frozenset)
    screen: str | None = None


@dataclass(frozen=True)
class Verdict:
    state: State
    since: float | None
    detail: str | None = None


def needs_screen(pane: PaneFacts | None, journal: Journal, aborted: frozenset[str]) -> bool:
    """Whether classification needs the screen: only before readiness, or with a tool call in flight."""
    if pane is None or pane.dead:
        return False
    if journal.open_turn and journal.open_turn not in aborted:
        return journal.tool_in_flight
    return journal.ready_at is None and journal.last_turn is None


def classify(obs: Observation) -> Verdict:
    j = obs.journal
    if obs.pane is None:
        return Verdict("stopped", j.stopped_at)
    if obs.pane.dead:
        status, sig = obs.pane.dead_status, obs.pane.dead_signal
        detail = f"killed by signal {sig}" if sig else f"exit status {status}" if status is not None else None
        return Verdict("exited", j.last_event_at, detail)
    screen = obs.screen or ""
    if j.open_turn and j.open_turn not in obs.aborted_turns:
        if j.tool_in_flight and any(m in screen for m in APPROVAL_MARKERS):
            return Verdict("waiting_approval", j.last_event_at, "an approval menu is open")
        return Verdict("working", j.open_turn_at)
    if j.ready_at is not None or j.last_turn is not None:
        since = j.last_turn["ended_at"] if j.last_turn and j.last_turn["ended_at"] else j.ready_at
        return Verdict("idle", since or j.last_event_at)
    for marker in FIRST_RUN_MARKERS:
        if marker in screen:
            return Verdict("starting", j.launched_at, f"a first-run screen is open: {marker!r}")
    if any(m in screen for m in READY_MARKERS):
        return Verdict("idle", j.launched_at)
    return Verdict("starting", j.launched_at)
