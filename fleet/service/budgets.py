"""The budget rule's I/O half (`fleet.watchdog.budget` is the pure rule): what a tick gathers for
it and what it does for its two actions, `budget_interrupt` and `fail_over_budget`.

Gathering costs, per agent whose open assignment has a budget: one ledger read of the assignment's
events (when the watchdog asked) and, while a turn is open, a read of the rollout's tail (cached
by `fleet.agents.codex.read_rollout` while the file is unchanged).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fleet.agents.codex import own_rollout, read_rollout
from fleet.agents.journal import turn_usages
from fleet.config import AgentSpec
from fleet.tokens import counted, format_tokens
from fleet.vocab import FAIL_OVER_BUDGET, WATCHDOG_HOLDER
from fleet.watchdog.budget import ASKED_EVENT, BudgetFacts, open_turn_tokens
from fleet.watchdog.facts import JournalFacts
from fleet.work.ledgerbackend import LedgerBackend
from fleet.work.prompt import REPORT_CONTRACT

from .assign import deliver
from .core import Service
from .delivery import fail


def budget_facts(ledger: LedgerBackend, row: Mapping[str, Any] | None, events: list[dict[str, Any]],
                 journal: JournalFacts, home: Path) -> BudgetFacts | None:
    """The open assignment `row`'s budget facts (None without a budget): the ledger's sum of its
    ended turns (reconcile ran at the tick's start), plus the open turn's running figure from the
    rollout, and when the watchdog last asked (the `watchdog_budget_interrupt` event, done or not:
    an interrupt that failed still starts the grace, so a wedged agent still ends). Only a rollout
    under the agent's Codex `home` is read (`own_rollout`), as status and tracking read them."""
    if not row or not isinstance(row.get("budget"), int):
        return None
    extra = 0
    if journal.open_turn and journal.transcript and own_rollout(home, journal.transcript):
        found = read_rollout(Path(journal.transcript))
        journaled = turn_usages(events).get(journal.open_turn)
        extra = open_turn_tokens(found.usage.get(journal.open_turn), journaled[1] if journaled else None,
                                 journal.open_turn in found.ends)
    asked = [e.time for e in ledger.events_for(str(row["id"])) if e.kind == ASKED_EVENT]
    return BudgetFacts(budget=int(row["budget"]), used=counted(row.get("usage")) + extra,
                       asked_at=max(asked) if asked else None)


def budget_report_request(assignment: str, used: int, budget: int) -> str:
    """The report request sent after the budget's interrupt."""
    return (f"The fleet watchdog stopped your turn: assignment {assignment} has used {format_tokens(used)} tokens "
            f"({used}), past its budget of {format_tokens(budget)} ({budget}). Do no more work on it. Report now "
            "with what you have (status partial or blocked if it is unfinished, and say what is left); without a "
            f"valid report the assignment fails as over_budget.\n\n{REPORT_CONTRACT}")


def interrupt_turn(svc: Service, spec: AgentSpec, holder: str) -> dict[str, Any]:
    """Stop the agent's turn if one runs (Esc, confirmed), under `holder`'s lease on the agent."""
    with svc.leased([spec], holder, None):
        return svc.runtime.interrupt(spec)


def interrupt_for_budget(svc: Service, spec: AgentSpec, holder: str, assignment: str,
                         facts: BudgetFacts) -> dict[str, Any]:
    """Stop the agent's turn if one runs (Esc, confirmed), then ask for the report."""
    interrupted = interrupt_turn(svc, spec, holder)
    return {"interrupt": interrupted, **deliver(svc, assignment, actor=WATCHDOG_HOLDER,
                                                text=budget_report_request(assignment, facts.used, facts.budget))}


def fail_over_budget(svc: Service, spec: AgentSpec, holder: str, assignment: str, reason: str) -> dict[str, Any]:
    """End the assignment `failed` (`over_budget`); a turn still running is stopped first, so it
    spends nothing more."""
    interrupted = interrupt_turn(svc, spec, holder)
    done = fail(svc, assignment, spec.name, reason, actor=WATCHDOG_HOLDER, expect=("sent", "working"),
                code=FAIL_OVER_BUDGET)
    return {"interrupt": interrupted, "failed": done is not None}
