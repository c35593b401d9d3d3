"""The watchdog's budget rule, pure: an assignment's token budget and use in, the next step out.

An assignment may carry a token budget (`fleet assign --budget 200k`, or the agent's `budget` in
fleet.toml). What counts is `fleet.tokens.counted`: input plus output tokens of every turn the
assignment caused, the open turn's running figure included (the tick reads it from Codex's rollout,
which records usage after every model response, so a budget is caught mid-turn).

The rule, for an assignment that owes a report (sent or working, no valid report yet):

1. Used at most the budget: nothing; the ordinary ladder applies.
2. Used more, not asked yet: `interrupt`: stop the turn (if one runs) and ask for the report, once.
   This overrides the ladder's "never interrupt a live agent" rule, a running shell command
   included: a budget is a cap on cost set by a person, a command's end is followed by another
   model call that spends more, and the report request lets the agent say what it got done.
3. Asked, less than `grace` (the ladder's `report_grace`) ago: `wait` (the ladder is held too: its
   report requests and reminders would only spend more).
4. Asked `grace` ago or longer and still no valid report: `fail`: the assignment ends `failed`
   with reason `over_budget` (and a turn still running is stopped).

The report request's own turn is budgeted too (it usually passes the budget further); it is never
interrupted for that: once asked, the next step is the verdict after the grace.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal, NamedTuple

from fleet.durations import format_duration
from fleet.tokens import counted, format_tokens

BudgetStepKind = Literal["interrupt", "wait", "fail"]
#: The ledger event the tick records for the interrupt (`watchdog_<action>`): the rule's memory.
ASKED_EVENT: Final = "watchdog_budget_interrupt"


@dataclass(frozen=True)
class BudgetFacts:
    """An assignment's budget as the tick found it. `used`: tokens counted against it so far (the
    ledger's sum of ended turns plus the open turn's running figure); `asked_at`: when the watchdog
    interrupted and asked for the report (None: not yet)."""

    budget: int
    used: int
    asked_at: float | None = None

    @property
    def over(self) -> bool:
        return self.used > self.budget


class BudgetStep(NamedTuple):
    kind: BudgetStepKind
    reason: str


def budget_step(facts: BudgetFacts | None, *, assignment: str, owes_report: bool, now: float,
                grace: float) -> BudgetStep | None:
    """The budget rule's step for one assignment at `now` (see the module docstring); None when the
    rule has nothing to say and the other rules apply. Deterministic."""
    if facts is None or not owes_report:
        return None
    spent = (f"{assignment} has used {format_tokens(facts.used)} tokens ({facts.used}) of its budget of "
             f"{format_tokens(facts.budget)} ({facts.budget})")
    if facts.asked_at is None:
        if not facts.over:
            return None
        return BudgetStep("interrupt", f"{spent}; interrupting its turn and asking for its report.")
    waited = max(0.0, now - facts.asked_at)
    if waited < grace:
        return BudgetStep("wait", f"{spent}; its report was asked for {format_duration(waited)} ago.")
    return BudgetStep("fail", f"over_budget: {spent} and sent no valid report in the {format_duration(waited)} "
                              f"since it was asked (report_grace {format_duration(grace)}).")


def open_turn_tokens(running: Mapping[str, object] | None, journaled: Mapping[str, object] | None,
                     ended: bool) -> int:
    """What the open turn adds to the ledger's sum: its running figure from the rollout (`running`)
    less what the journal already recorded for it (`journaled`: a Stop that asked for a report
    records the usage until then, and reconcile counted that). Nothing once the rollout shows the
    turn ended: reconcile counts an ended turn whole. Never negative."""
    if ended or running is None:
        return 0
    return max(0, counted(running) - counted(journaled))

