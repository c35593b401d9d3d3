"""From what the tick read to `decide.AgentFacts`: pure folds of an agent's journal, its status entry,
its open assignment and the watchdog's own records. No I/O, no clock (`now` is an argument).

Where each fact comes from is `decide`'s docstring; the choices made here:

- **Progress** is any event Codex itself wrote (hooks, notify, turn ends read from the rollout,
  fleet's approval hook), plus the rollout file's mtime while a turn is open (Codex writes it as
  items complete). Pane output is not used: Codex's TUI repaints its turn timer every second, so
  output cannot tell a stalled turn from a live one. fleet's own records (launched, send, receipt,
  stopped) are not progress.
- **Work** is a turn start, a tool call or a completed turn of a turn the watchdog did not start.
  Turn aborts and failures are not work (the watchdog's own interrupt causes one), nor is a session
  starting (a resume).
- A **lost turn**: the pane died while a turn was open.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from fleet.agents.approvals import pending
from fleet.agents.rollout import USAGE_LIMIT
from fleet.vocab import AGENT_STATES, FLEET_EVENTS, TURN_END_EVENTS, WORK_EVENTS, AgentState

from .decide import AgentFacts, Ladder, LeaseKind, OpenAssignment, PendingApproval


@dataclass(frozen=True)
class JournalFacts:
    """What the tick needs from one agent's journal (see the module docstring)."""

    last_progress_at: float | None = None
    last_work_at: float | None = None
    open_turn: str | None = None
    command_running: bool = False
    launched_at: float | None = None
    session_id: str | None = None
    transcript: str | None = None
    approval: dict[str, Any] | None = None


def fold_journal(events: list[dict[str, Any]], own_turns: Collection[str] = ()) -> JournalFacts:
    """Fold journal events (oldest first). `own_turns`: turn ids the watchdog's prompts started."""
    own = set(own_turns)
    progress = work = launched = None
    session = transcript = None
    start = 0
    for i, ev in enumerate(events):
        kind = ev.get("event")
        at = _num(ev.get("time"))
        if kind == "launched":
            start, launched = i, at
        if ev.get("transcript_path"):
            transcript = str(ev["transcript_path"])
        if kind in FLEET_EVENTS or at is None:
            continue
        progress = at if progress is None or at > progress else progress
        turn = ev.get("turn_id")
        if kind in WORK_EVENTS and turn and turn not in own:
            work = at if work is None or at > work else work
        if ev.get("session_id") and ev.get("source") == "hook":
            session = str(ev["session_id"])
    open_turn = None
    tools = 0
    for ev in events[start:]:
        kind, turn = ev.get("event"), ev.get("turn_id")
        if kind == "turn_started" and turn:
            open_turn, tools = str(turn), 0
        elif kind in TURN_END_EVENTS and turn and turn == open_turn:
            open_turn, tools = None, 0
        elif kind == "tool_started" and turn == open_turn:
            tools = 1
        elif kind == "tool_completed" and turn == open_turn:
            tools = 0
    return JournalFacts(last_progress_at=progress, last_work_at=work, open_turn=open_turn,
                        command_running=bool(open_turn and tools), launched_at=launched, session_id=session,
                        transcript=transcript, approval=pending(events[start:]))


def open_assignment(row: Mapping[str, Any] | None) -> OpenAssignment | None:
    """The ledger row (as `Assignment.to_dict`) as `decide` sees it."""
    if row is None:
        return None
    return OpenAssignment(id=str(row["id"]), state=str(row["state"]), sent_at=float(row.get("sent_at")
                          or row.get("created_at") or 0.0), has_valid_report=row.get("report") is not None,
                          deadline=row.get("deadline"))


def approval_facts(raw: Mapping[str, Any] | None, now: float, escalated: str | None,
                   escalated_at: float | None) -> PendingApproval | None:
    """`PendingApproval` from `approvals.pending`'s record: held while the hook has neither released it
    nor run past its `hold_until`."""
    if raw is None:
        return None
    until = _num(raw.get("hold_until"))
    held = bool(raw.get("held")) and (until is None or now < until)
    return PendingApproval(
        since=_num(raw.get("time")) or now, tool=str(raw.get("tool") or ""), command=str(raw.get("command") or ""),
        justification=str(raw.get("justification") or ""), held=held,
        escalated_at=escalated_at if escalated and escalated == raw.get("request") else None,
    )


def agent_state(status: Mapping[str, Any], journal: JournalFacts) -> AgentState:
    """The state `decide` works from: the runtime's, with an approval fleet's hook recorded, and
    `limited` kept after the reset time while the usage-limited turn is still the last one (the
    runtime calls that agent idle again, but its work waits to be resumed, not asked about)."""
    state = str(status.get("state"))
    if state == "idle" and _usage_limited(status.get("last_turn")):
        return "limited"
    if journal.approval is not None and state in ("working", "waiting_approval"):
        return "waiting_approval"
    if state == "waiting_approval":  # the screen shows a menu fleet's hook did not see: treat as working
        return "working"
    return state if state in AGENT_STATES else "starting"


def _usage_limited(last_turn: object) -> bool:
    if not isinstance(last_turn, Mapping) or last_turn.get("outcome") != "failed":
        return False
    error = last_turn.get("error")
    return isinstance(error, Mapping) and error.get("code") == USAGE_LIMIT


def build_facts(
    *,
    status: Mapping[str, Any],
    journal: JournalFacts,
    now: float,
    role: str,
    assignment: Mapping[str, Any] | None = None,
    ladder: Ladder | None = None,
    lease: LeaseKind = "free",
    lease_holder: str | None = None,
    record: Mapping[str, Any] | None = None,
    transcript_mtime: float | None = None,
    lead_state: AgentState | None = None,
) -> AgentFacts:
    """One agent's `AgentFacts`. `status` is its `fleet status` entry; `record` the watchdog's
    `AgentRecord` as a dict (empty for an agent it never acted on)."""
    rec = record or {}
    state = agent_state(status, journal)
    # The runtime's state is the authority on whether a turn is open (it also reads turn ends from
    # the rollout that the journal may not hold yet): a tool or a rollout write counts only then.
    turn_open = state in ("working", "waiting_approval")
    progress = journal.last_progress_at
    if turn_open and transcript_mtime is not None and (progress is None or transcript_mtime > progress):
        progress = transcript_mtime
    last_turn = status.get("last_turn") or {}
    since = _num(status.get("since"))
    error = last_turn.get("error") if isinstance(last_turn, Mapping) else None
    fatal_at = _num(rec.get("fatal_at"))
    fatal = fatal_at is not None and (journal.launched_at is None or journal.launched_at <= fatal_at)
    revived = fatal_at is not None and not fatal  # a person started it again: a new crash streak
    return AgentFacts(
        agent=str(status["name"]),
        role=role,
        state=state,
        last_progress_at=progress,
        last_work_at=journal.last_work_at,
        command_running=journal.command_running and turn_open,
        idle_since=since if state == "idle" else _num(last_turn.get("ended_at")) if last_turn else None,
        assignment=open_assignment(assignment),
        ladder=ladder or Ladder(),
        lease=lease,
        lease_holder=lease_holder,
        limited_since=_num(last_turn.get("ended_at")) if state == "limited" and last_turn else None,
        resets_at=_num(status.get("resets_at")) or (_num(error.get("resets_at")) if isinstance(error, Mapping)
                                                     else None),
        exited_at=since if state == "exited" else None,
        restarts=0 if revived else int(rec.get("restarts") or 0),
        last_restart_at=None if revived else _num(rec.get("last_restart_at")),
        lost_turn=state == "exited" and journal.open_turn is not None,
        fatal=fatal,
        approval=approval_facts(journal.approval, now, rec.get("approval_escalated"),
                                _num(rec.get("approval_escalated_at"))) if state == "waiting_approval" else None,
        lead_state=lead_state,
        last_notice_at=_num(rec.get("last_notice_at")),
    )


def _num(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
