"""The dashboard's view model: what each region shows, built from the registry's results. Pure.

`build_view` takes the results of `fleet_status`, `assignment_list`, `watchdog_status` and the ledger
events a `fleet_events` poll returned, plus the clock, and returns frozen rows of display strings.
It does no I/O and imports no Textual, so every rule here is tested in one call.

Every string that reaches a cell went through `cell`: agent-written text (a detail quoting a
command, a last message, a task, a justification, a watchdog reason) has its control, format and
bidi characters shown as visible escapes and its newlines and tabs as `\\n` and `\\t`, so nothing an
agent writes can move the cursor, restyle the screen or start a line of its own. The app renders
these strings without markup, so `[bold]` in a task stays text.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from rich.cells import cell_len, set_cell_size

from fleet.untrusted import one_line
from fleet.vocab import AGENT_STATES
from fleet.work.lifecycle import OPEN_STATES
from fleet.work.report import extract_report

#: Longest text a table cell shows; the rest is one ellipsis (the full text is one command away).
CELL_CHARS: Final = 80
#: How many assignments and log lines the regions keep: a screen's worth and some scrolling.
MAX_ASSIGNMENTS: Final = 50
MAX_LOG: Final = 100

AGENT_COLUMNS: Final = ("AGENT", "STATE", "ROLE", "LEASE", "ASSIGNMENT", "LAST TURN", "FOR")
ASSIGNMENT_COLUMNS: Final = ("ID", "AGENT", "STATE", "AGE", "TASK", "VERDICT")
APPROVAL_COLUMNS: Final = ("AGENT", "WAITING", "COMMAND", "JUSTIFICATION")


def cell(value: Any, limit: int = CELL_CHARS) -> str:
    """`value` as one safe line for a cell: escaped (`one_line`), tabs as `\\t`, cut to `limit`."""
    return clip(one_line("" if value is None else str(value)).replace("\t", "\\t"), limit)


#: An assignment id as `records` makes them: `as-` and 26 Crockford base32 digits, time first, so
#: ids made together share their head and differ in their tail.
_FULL_ID: Final = re.compile(r"as-[0-9A-HJKMNP-TV-Z]{26}")
#: How many of an id's last digits a cell keeps (`as-…` and these): enough to tell a fleet's apart.
ID_TAIL: Final = 6


def short_id(value: str) -> str:
    """A full assignment id as `as-…` and its tail (the full id is in the agent's detail, the
    assignments table and the log); anything else unchanged."""
    return f"as-…{value[-ID_TAIL:]}" if _FULL_ID.fullmatch(value) else value


def fit_widths(headers: Sequence[str], rows: Iterable[Sequence[str]], available: int,
               padding: int = 1) -> tuple[int, ...]:
    """Column widths for `rows` under `headers` in `available` cells (each column also takes `padding`
    on both sides): each column as wide as its widest cell, unless that overflows; then the widest
    columns are capped at one common width, the largest that fits, never below their header. With
    `available` <= 0 (not laid out yet) or too small for the headers, no column is capped below them."""
    natural = [cell_len(h) for h in headers]
    for row in rows:
        natural = [max(n, cell_len(c)) for n, c in zip(natural, row, strict=False)]
    budget = available - 2 * padding * len(headers)
    if available <= 0 or sum(natural) <= budget:
        return tuple(natural)
    floor = [cell_len(h) for h in headers]
    cap = max(natural)
    while cap > 0 and sum(max(f, min(n, cap)) for f, n in zip(floor, natural, strict=True)) > budget:
        cap -= 1
    return tuple(max(f, min(n, cap)) for f, n in zip(floor, natural, strict=True))


def clip(text: str, width: int) -> str:
    """`text` cut to `width` terminal cells (a CJK character takes two) and `width` characters (a run
    of zero-width ones takes no cell), the last one an ellipsis when cut; a wide character that would
    straddle the cut becomes a space."""
    if cell_len(text) <= width and len(text) <= width:  # characters too: zero-width ones take no cell
        return text
    return set_cell_size(text, max(0, width - 1))[: max(0, width - 1)] + "…" if width > 0 else ""


def ago(seconds: float | None) -> str:
    """A short age that changes rarely: `<10s`, `40s` (tens of seconds), `7m`, `3h`, `2d`; `-` when unknown.

    Coarse on purpose: every change redraws its table, and a per-second age in each row would redraw
    the screen every second (most of an idle dashboard's CPU, measured in bench/bench_dash.py)."""
    if seconds is None:
        return "-"
    secs = max(0, int(seconds))
    if secs < 10:
        return "<10s"
    if secs < 60:
        return f"{secs // 10 * 10}s"
    if secs < 7200:
        return f"{secs // 60}m"
    return f"{secs // 3600}h" if secs < 172800 else f"{secs // 86400}d"


def clock(ts: float | None) -> str:
    """`HH:MM:SS` in local time, `-` when unknown."""
    return time.strftime("%H:%M:%S", time.localtime(ts)) if isinstance(ts, int | float) else "-"


@dataclass(frozen=True)
class AgentRow:
    name: str
    state: str  # the raw state, for colour; one of vocab.AGENT_STATES or what status said
    state_label: str
    role: str
    lease: str
    assignment: str
    assignment_id: str | None
    last_turn: str
    in_state: str
    #: The full lease holder and assignment id the cells shorten (shown for the selected agent).
    detail: str = ""

    def cells(self) -> tuple[str, ...]:
        return (self.name, self.state_label, self.role, self.lease, self.assignment, self.last_turn, self.in_state)


@dataclass(frozen=True)
class AssignmentRow:
    id: str
    agent: str
    state: str
    open: bool
    age: str
    task: str
    verdict: str

    def cells(self) -> tuple[str, ...]:
        return (self.id, self.agent, self.state, self.age, self.task, self.verdict)


@dataclass(frozen=True)
class ApprovalRow:
    agent: str
    waiting: str
    command: str
    justification: str
    request: str | None = None  # the request id shown: approve/deny answer this one or are refused

    def cells(self) -> tuple[str, ...]:
        return (self.agent, self.waiting, self.command, self.justification)


@dataclass(frozen=True)
class View:
    title: str
    counts: str
    headroom: str
    last_tick: str
    agents: tuple[AgentRow, ...]
    assignments: tuple[AssignmentRow, ...]
    approvals: tuple[ApprovalRow, ...]
    log: tuple[str, ...]

    @property
    def header(self) -> str:
        return "  ".join(p for p in (self.title, self.counts, self.headroom, self.last_tick) if p)

    def agent(self, name: str | None) -> AgentRow | None:
        return next((a for a in self.agents if a.name == name), None)


def state_label(agent: Mapping[str, Any]) -> str:
    """The state with what a person needs next: `limited until 14:05`, `crashed (exit 1)`, the detail."""
    state = str(agent.get("state") or "unknown")
    detail = agent.get("detail")
    if state == "limited" and isinstance(agent.get("resets_at"), int | float):
        label = f"limited until {time.strftime('%H:%M', time.localtime(agent['resets_at']))}"
    elif state == "exited" and (agent.get("exit_signal") or agent.get("exit_status") not in (None, 0)):
        how = f"signal {agent['exit_signal']}" if agent.get("exit_signal") else f"exit {agent.get('exit_status')}"
        label = f"crashed ({how})"
    else:
        label = state
    return cell(f"{label} ({detail})" if detail else label)


def lease_label(lease: Mapping[str, Any] | None, *, full: bool = False) -> str:
    """Who holds the lease and its token (`dash:me#2`); an assignment's holder as its short id
    (`as-…QRSTVW#2`) unless `full`."""
    lease = lease or {}
    state = lease.get("state") or "free"
    holder = str(lease.get("holder") or "")
    if not full and holder.startswith("assignment:"):
        holder = short_id(holder.removeprefix("assignment:"))
    limit = 80 if full else 40
    if state == "held":
        return cell(f"{holder}#{lease.get('token')}", limit)
    if state == "expired" and holder:
        return cell(f"expired ({holder})", limit)
    return "-" if state == "free" else cell(state, limit)


def last_turn_label(turn: Mapping[str, Any] | None) -> str:
    """The last turn's outcome and the head of its message; a valid fleet-report as its status and summary."""
    if not turn:
        return "-"
    outcome = str(turn.get("outcome") or "?")
    message = turn.get("last_message")
    error = turn.get("error")
    if isinstance(error, Mapping) and error.get("message"):
        return cell(f"{outcome}: {error['message']}", 60)
    if not isinstance(message, str) or not message:
        return cell(outcome)
    if "fleet-report" in message:
        found = extract_report(message)
        if found.report is not None:
            return cell(f"{outcome}: report {found.report.status}: {found.report.summary}", 60)
    return cell(f"{outcome}: {message}", 60)


def _assignment_rows(assignments: Iterable[Mapping[str, Any]], now: float) -> list[AssignmentRow]:
    """Open ones first, newest first within each group (ties by id, which sorts by creation)."""
    rows = sorted(assignments, key=lambda a: (a.get("state") not in OPEN_STATES,
                                              -float(a.get("created_at") or 0), str(a.get("id") or "")))
    out = []
    for a in rows[:MAX_ASSIGNMENTS]:
        verdict = a.get("verdict") or (f"report {a['report_status']}" if a.get("report_status") else "")
        if not verdict and a.get("state") not in OPEN_STATES:
            verdict = a.get("reason") or ""
        out.append(AssignmentRow(
            id=cell(a.get("id"), 40), agent=cell(a.get("agent") or "-", 40), state=cell(a.get("state"), 20),
            open=a.get("state") in OPEN_STATES, age=ago(now - float(a.get("created_at") or now)),
            task=cell(a.get("task"), 60), verdict=cell(verdict, 60)))
    return out


def _agent_rows(agents: Sequence[Mapping[str, Any]], open_by_agent: Mapping[str, Mapping[str, Any]],
                now: float) -> list[AgentRow]:
    out = []
    for a in agents:
        name = str(a.get("name") or "")
        job = open_by_agent.get(name)
        if job is not None:
            age = ago(now - float(job.get("created_at") or now))
            age = ago(now - float(job.get("created_at") or now))
            shown = f"{short_id(str(job.get('id')))} {job.get('state')} {age}"
        since = a.get("since")
        detail = f"lease {lease_label(a.get('lease'), full=True)}" + (f", assignment {cell(job.get('id'), 40)}"
                                                                       if job is not None else "")
        out.append(AgentRow(
            name=cell(name, 40), state=str(a.get("state") or "unknown"), state_label=state_label(a),
            role=cell(a.get("role") or "-", 30), lease=lease_label(a.get("lease")),
            assignment=cell(shown, 60) if job is not None else "-",
            assignment_id=str(job.get("id")) if job is not None else None,
            last_turn=last_turn_label(a.get("last_turn")),
            in_state=ago(now - since) if isinstance(since, int | float) else "-", detail=detail))
    return out


def _approval_rows(agents: Iterable[Mapping[str, Any]], now: float) -> list[ApprovalRow]:
    """Agents waiting on an approval, the longest-waiting first."""
    waiting = [a for a in agents if a.get("state") == "waiting_approval"]
    out = []
    for a in sorted(waiting, key=lambda a: (float((a.get("approval") or {}).get("since") or now), str(a.get("name")))):
        ap = a.get("approval") or {}
        command = ap.get("command") or a.get("detail") or "(not recorded: answer it at the pane)"
        if ap.get("command_truncated"):
            command = f"{command} … ({ap.get('command_length')} chars)"
        since = ap.get("since")
        out.append(ApprovalRow(agent=cell(a.get("name"), 40),
                               waiting=ago(now - since) if isinstance(since, int | float) else "-",
                               command=cell(command, 80), justification=cell(ap.get("justification") or "-", 80),
                               request=ap["request"] if isinstance(ap.get("request"), str) else None))
    return out


def _log(watchdog: Mapping[str, Any] | None, events: Iterable[Mapping[str, Any]]) -> list[str]:
    """Watchdog actions and ledger events, newest first."""
    lines: list[tuple[float, int, str]] = []
    for t in (watchdog or {}).get("recent") or []:
        at = float(t.get("at") or 0)
        for a in t.get("actions") or []:
            rung = f" (rung {a['rung']})" if a.get("rung") is not None else ""
            outcome = f" {a['outcome']}" if a.get("outcome") else ""
            text = f"{clock(at)} watchdog {a.get('agent') or 'fleet'}: {a.get('action')}{rung}{outcome} -- " \
                   f"{a.get('reason') or ''}"
            lines.append((at, 0, cell(text, 200)))
    for e in events:
        at = float(e.get("time") or 0)
        move = f"{e.get('from') or '-'} -> {e.get('to')}" if e.get("to") else ""
        who = e.get("agent") or "-"
        text = f"{clock(at)} {e.get('assignment') or 'ledger'} {who}: {e.get('kind')}{' ' + move if move else ''} " \
               f"by {e.get('actor')}"
        lines.append((at, int(e.get("cursor") or 0), cell(text, 200)))
    lines.sort(key=lambda x: (x[0], x[1]), reverse=True)
    return [text for _, _, text in lines[:MAX_LOG]]


def _headroom(agents: Iterable[Mapping[str, Any]]) -> str:
    """The least rate-limit headroom any agent last heard of (primary window)."""
    used = [float(w["used_percent"]) for a in agents
            for w in [((a.get("rate_limits") or {}).get("primary") or {})]
            if isinstance(w.get("used_percent"), int | float)]
    return f"headroom {max(0, round(100 - max(used)))}%" if used else ""


def matches(text: str, row: tuple[str, ...]) -> bool:
    """The filter: every word of `text` appears in some cell of `row`, case-insensitively."""
    hay = " ".join(row).lower()
    return all(word in hay for word in text.lower().split())


def build_view(status: Mapping[str, Any], assignments: Sequence[Mapping[str, Any]],
               watchdog: Mapping[str, Any] | None, events: Sequence[Mapping[str, Any]], now: float,
               filter_text: str = "") -> View:
    """The whole screen's content. `assignments` are `assignment_list` rows, `events` the ledger
    events seen so far (any order), `watchdog` the `watchdog_status` result or None if not known."""
    agents = list(status.get("agents") or [])
    open_by_agent: dict[str, Mapping[str, Any]] = {}
    for a in sorted(assignments, key=lambda a: float(a.get("created_at") or 0)):
        if a.get("state") in OPEN_STATES and a.get("agent"):
            open_by_agent[str(a["agent"])] = a  # the newest open one wins
    counts: dict[str, int] = {}
    for a in agents:
        counts[str(a.get("state"))] = counts.get(str(a.get("state")), 0) + 1
    order = [s for s in AGENT_STATES if s in counts] + sorted(s for s in counts if s not in AGENT_STATES)
    last = (watchdog or {}).get("last_tick")
    tick = f"watchdog ticked {ago(now - float(last['at']))} ago" if last and last.get("at") else \
        ("watchdog: never ticked" if watchdog is not None else "")
    agent_rows = _agent_rows(agents, open_by_agent, now)
    assignment_rows = _assignment_rows(assignments, now)
    approvals = _approval_rows(agents, now)
    if filter_text.strip():
        agent_rows = [r for r in agent_rows if matches(filter_text, (*r.cells(), r.detail))]
        assignment_rows = [r for r in assignment_rows if matches(filter_text, r.cells())]
        approvals = [r for r in approvals if matches(filter_text, r.cells())]
    return View(
        title=cell(f"fleet {status.get('fleet') or '?'}", 40),
        counts=cell(" ".join(f"{counts[s]} {s}" for s in order) or "no agents"),
        headroom=_headroom(agents), last_tick=tick,
        agents=tuple(agent_rows), assignments=tuple(assignment_rows), approvals=tuple(approvals),
        log=tuple(_log(watchdog, events)))


def pane_text(lines: Sequence[str] | None) -> str:
    """The selected agent's screen for the pane region: each line escaped (`cell`, long lines cut)."""
    return "\n".join(cell(line, 400) for line in (lines or ()))
