"""How far an open assignment got, from its agent's journal: pure, the clock passed in.

`read_progress(journal, turns)` folds the agent's journal events (oldest first) for the turns the
assignment's receipts name into what reconcile needs: did a turn start, which turn ended with a
valid fleet-report (the last one wins), which ended without one (and why), is one still running.
Reports from other turns never count: a turn a person typed into the agent is not the assignment's.

`next_step(state, progress, agent_state, deadline, now, grace)` is the one decision: `working` when
a turn started, `reported` with the report, or `failed` with the reason (the agent exited or was
stopped before a report; the deadline passed with no turn running, or `grace` after it with one
still running), else nothing. Verification is not decided here (`fleet.work.verify.verdict`).

`assignment_usage` sums the tokens of the turns an assignment caused.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from fleet.vocab import TURN_ENDS_WITH_MESSAGE, TURN_ENDS_WITHOUT_MESSAGE, TokenUsage, add_usage

from .report import Report, extract_report

Step = Literal["working", "reported", "failed"]


@dataclass(frozen=True)
class Unreported:
    """A turn of the assignment that ended without a valid report, and what was wrong."""

    turn_id: str
    problems: tuple[str, ...]


@dataclass(frozen=True)
class Progress:
    started: bool = False
    report: Report | None = None
    report_turn: str | None = None
    report_source: str | None = None
    unreported: tuple[Unreported, ...] = ()
    running: bool = False


@dataclass(frozen=True)
class Decision:
    to: Step
    reason: str | None = None


def read_progress(journal: Iterable[Mapping[str, Any]], turns: Iterable[str]) -> Progress:
    """The assignment's progress from the journal events of `turns` (see the module docstring)."""
    mine = set(turns)
    started: set[str] = set()
    ended: set[str] = set()
    report: tuple[Report, str, str | None] | None = None
    unreported: dict[str, Unreported] = {}
    for ev in journal:
        turn = ev.get("turn_id")
        if not isinstance(turn, str) or turn not in mine:
            continue
        kind = ev.get("event")
        if kind == "turn_started":
            started.add(turn)
        elif kind in TURN_ENDS_WITHOUT_MESSAGE:
            ended.add(turn)
        elif kind in TURN_ENDS_WITH_MESSAGE:
            ended.add(turn)
            extraction = extract_report(ev.get("last_message"))
            if extraction.report is not None:
                report = (extraction.report, turn, ev.get("source"))
                unreported.pop(turn, None)
            elif report is None or report[1] != turn:
                unreported.setdefault(turn, Unreported(turn, extraction.problems))
    return Progress(
        started=bool(started or ended), report=report[0] if report else None,
        report_turn=report[1] if report else None, report_source=report[2] if report else None,
        unreported=tuple(unreported.values()), running=bool(started - ended),
    )


def next_step(state: str, progress: Progress, agent_state: str, deadline: float | None, now: float,
              grace: float) -> Decision | None:
    """The next transition of an assignment in `state` (`sent` or `working`), or None."""
    if state not in ("sent", "working"):
        return None
    if progress.report is not None:
        return Decision("reported") if state == "working" or not progress.started else Decision("working")
    if agent_state in ("exited", "stopped"):
        word = "exited" if agent_state == "exited" else "was stopped"
        return Decision("failed", f"its agent {word} before a report came")
    if deadline is not None and now > deadline and (not progress.running or now > deadline + grace):
        return Decision("failed", "the deadline passed with no report")
    if state == "sent" and progress.started:
        return Decision("working")
    return None


def assignment_usage(usages: Mapping[str, tuple[float | None, TokenUsage]], turns: Iterable[str],
                     sent_at: float | None, ended_at: float | None) -> dict[str, int]:
    """The tokens of every turn an assignment caused, and how many turns: the turns its receipts
    name, and every other turn of its agent whose latest usage was recorded between its send and its
    end (report asks, resends, a restart's turns). `usages` is `fleet.agents.journal.turn_usages`."""
    named = set(turns)
    mine = [u for turn, (at, u) in usages.items() if turn in named or (
        sent_at is not None and at is not None and sent_at <= at and (ended_at is None or at <= ended_at))]
    total = add_usage(mine)
    return {"input": total["input"], "cached_input": total["cached_input"], "output": total["output"],
            "reasoning": total["reasoning"], "turns": len(mine)}
