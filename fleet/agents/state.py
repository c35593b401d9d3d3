"""Pure agent-state classification: facts in, one state out; no I/O, the clock passed in.

Trust order (DESIGN.md): Codex hooks and notify in the agent's journal, then the rollout file (turns
that ended without a Stop hook: failed, aborted), then process facts (pane dead, exit status), and
screen text only for what Codex signals nothing about: composer readiness, approval menus and
first-run screens. A turn end read from the rollout enters as a journal event (`turn_end_event`),
so one fold decides, whether or not that event has been written yet.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple, TypedDict

from fleet.vocab import AGENT_STATES, TURN_END_OUTCOME, AgentState, TokenUsage, TurnOutcome

from .approvals import pending
from .journal import session_usage, turn_usages
from .rollout import USAGE_LIMIT, RateLimits, TurnEnd, TurnError, parse_rate_limits
from .screen import APPROVAL_MARKERS, FIRST_RUN_MARKERS, READY_MARKERS, SESSION_READY, open_dialog


class PaneFacts(NamedTuple):
    """Process facts for one agent's pane, read in one `list-panes -a` call."""

    session: str
    pane_id: str
    pid: int | None
    dead: bool
    dead_status: int | None
    dead_signal: int | None
    activity: int | None



State = AgentState
STATES: tuple[State, ...] = AGENT_STATES
Outcome = Literal["running"] | TurnOutcome
_END_EVENT_OF: dict[str, str] = {outcome: kind for kind, outcome in TURN_END_OUTCOME.items()}


class LastTurn(TypedDict):
    turn_id: str
    started_at: float | None
    ended_at: float | None
    outcome: Outcome
    prompt_chars: int
    last_message: str | None
    error: TurnError | None
    usage: TokenUsage | None  # the turn's tokens so far (Stop hook or rollout), None when unknown


class Journal(NamedTuple):
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
    pid: int | None = None
    pid_start: int | None = None
    pid_boot: str | None = None
    rate_limits: RateLimits | None = None
    rate_limits_at: float | None = None
    approval: dict[str, Any] | None = None  # the request fleet's PermissionRequest hook recorded
    usage: TokenUsage | None = None  # the session's tokens: every turn since the latest launch


def turn_end_event(end: TurnEnd) -> dict[str, Any]:
    """The journal event for a turn end read from the rollout (fleet writes it when it settles a turn
    that fired no Stop hook; until then, readers fold it in memory)."""
    kind = _END_EVENT_OF[end.outcome]
    event: dict[str, Any] = {"time": end.at, "event": kind, "source": "rollout", "turn_id": end.turn_id}
    if end.outcome == "completed":
        event["last_message"] = end.last_message
    if end.error is not None:
        event["error"] = dict(end.error)
    if end.rate_limits is not None:
        event["rate_limits"] = end.rate_limits
    if end.usage is not None:
        event["usage"] = dict(end.usage)
    return event


def _turn_error(raw: object) -> TurnError | None:
    if not isinstance(raw, dict):
        return None
    status, resets = raw.get("http_status"), raw.get("resets_at")
    return TurnError(code=str(raw.get("code") or "unknown"), message=str(raw.get("message") or ""),
                     http_status=status if isinstance(status, int) else None,
                     resets_at=float(resets) if isinstance(resets, int | float) else None)


def read_journal(events: list[dict[str, Any]]) -> Journal:
    """Fold journal events (oldest first) into what matters for state; only the latest launch counts.

    Request records (`send`, `receipt`, `request`) and the `compacted` marker change nothing here
    except, for the marker, the transcript path and rate limits it carries."""
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
            j = {"launched_at": at, "last_event_at": at, "pid": ev.get("pid"), "pid_start": ev.get("pid_start"),
                 "pid_boot": ev.get("boot")}
            turns, last = {}, None
        elif kind == "ready":
            j["ready_at"] = at
        elif kind == "turn_started" and turn:
            last = turns[turn] = LastTurn(
                turn_id=turn, started_at=at, ended_at=None, outcome="running",
                prompt_chars=len(str(ev.get("prompt", ""))), last_message=None, error=None, usage=None,
            )
            j.update(open_turn=turn, open_turn_at=at, tool_in_flight=False)
        elif kind in TURN_END_OUTCOME and turn:
            done = turns.get(turn)
            if done is not None and done["outcome"] == "running":
                done["ended_at"] = at
                done["outcome"] = TURN_END_OUTCOME[kind]
                done["last_message"] = ev.get("last_message")
                done["error"] = _turn_error(ev.get("error"))
            if j.get("open_turn") == turn:
                j.update(open_turn=None, open_turn_at=None, tool_in_flight=False)
        elif kind == "tool_started" and turn == j.get("open_turn"):
            j["tool_in_flight"] = True
        elif kind == "tool_completed" and turn == j.get("open_turn"):
            j["tool_in_flight"] = False
        elif kind == "stopped":
            j["stopped_at"] = at
            j["exit_status"] = ev.get("exit_status")
    for ev in reversed(events):  # headroom is the account's, so it outlives a relaunch
        limits = parse_rate_limits(ev.get("rate_limits")) if "rate_limits" in ev else None
        if limits is not None:
            j.update(rate_limits=limits, rate_limits_at=ev.get("rate_limits_at", ev.get("time")))
            break
    if j.get("open_turn"):
        j["approval"] = pending(events[start:])
    session = events[start:]
    if last is not None:
        last["usage"] = turn_usages(session).get(last["turn_id"], (None, None))[1]
    j["usage"] = session_usage(session)
    return Journal(last_turn=last, **j)


class Observation(NamedTuple):
    """Facts about one agent at `now`. The journal already holds (or has folded in) every turn end
    the rollout recorded, so an open turn here is one Codex has not ended."""

    pane: PaneFacts | None
    journal: Journal
    screen: str | None = None
    now: float = 0.0


class Verdict(NamedTuple):
    state: State
    since: float | None
    detail: str | None = None
    resets_at: float | None = None


def needs_screen(pane: PaneFacts | None, journal: Journal) -> bool:
    """Whether classification needs the screen: only before readiness, or with a tool call in flight."""
    if pane is None or pane.dead:
        return False
    if journal.open_turn:
        return journal.tool_in_flight
    return journal.ready_at is None and journal.last_turn is None


def classify(obs: Observation) -> Verdict:
    """One state from the facts. `limited` holds from a turn that failed on the usage limit until
    its `resets_at` (if known) or the next turn starts; other failed turns leave the agent idle."""
    j = obs.journal
    if obs.pane is None:
        return Verdict("stopped", j.stopped_at)
    if obs.pane.dead:
        status, sig = obs.pane.dead_status, obs.pane.dead_signal
        detail = f"killed by signal {sig}" if sig else f"exit status {status}" if status is not None else None
        return Verdict("exited", j.last_event_at, detail)
    screen = obs.screen or ""
    if j.open_turn:
        if j.approval is not None:
            return Verdict("waiting_approval", j.approval.get("time"),
                           f"approval of {j.approval.get('tool')} `{j.approval.get('command')}`")
        if j.tool_in_flight and any(m in screen for m in APPROVAL_MARKERS):
            return Verdict("waiting_approval", j.last_event_at, "an approval menu is open")
        return Verdict("working", j.open_turn_at)
    last = j.last_turn
    if last is not None and last["outcome"] == "failed" and last["error"] and last["error"]["code"] == USAGE_LIMIT:
        resets = last["error"]["resets_at"]
        if resets is None or obs.now < resets:
            return Verdict("limited", last["ended_at"], "the usage limit was reached", resets)
    if j.ready_at is not None or last is not None:
        since = last["ended_at"] if last and last["ended_at"] else j.ready_at
        return Verdict("idle", since or j.last_event_at)
    for marker in FIRST_RUN_MARKERS:
        if marker in screen:
            return Verdict("starting", j.launched_at, f"a first-run screen is open: {marker!r}")
    dialog = open_dialog(screen)
    if dialog is not None:  # one fleet does not know: never read as a composer
        return Verdict("starting", j.launched_at, f"a first-run screen is open: {dialog}")
    if SESSION_READY in screen and all(m in screen for m in READY_MARKERS):
        return Verdict("idle", j.launched_at)
    return Verdict("starting", j.launched_at)
