"""The watchdog's one decision: facts about an agent, the policy and `now` in; actions with reasons out.

Pure: no I/O, no clock, no tmux, Codex or ledger imports. The tick (built elsewhere) gathers one
`AgentFacts` per configured agent, calls `decide_all`, carries the actions out in order under its own
lease (holder `watchdog`), and records each one in the ledger and the audit log, updating the
assignment's `Ladder` with `advance` so the next tick sees what this one did.

The rules, in the order `decide` applies them:

1. A `fatal` agent gets nothing; a person has been told.
2. **Crash** (`exited`): restart with `codex resume` of the same session, the n-th restart of a streak
   no sooner than `every * 2**(n-1)` after the previous one; re-send the open assignment when the crash
   lost its turn; after `max_restarts` in a streak, `mark_fatal` and `escalate`. A streak ends when the
   agent ran `RESTART_STREAK_RESET` after its last restart before it exited.
3. **Usage limit** (`limited`): never escalated for silence; resumed once `resets_at` has passed (or
   `limit_retry` after the limit hit, when Codex gave no usable reset time). Before that, with
   `on_limit = "reassign"`, its open assignment is moved to `failover_to` when the tick found an
   agent for it (`fleet.work.failover`).
4. **Approval** (`waiting_approval`): while fleet's hook still holds the call, the `approve` policy may
   answer it (`approve`/`deny`, with the rule that decided); once it has waited `approval_timeout` it
   is escalated, once, with the command and the model's justification.
5. **The ladder** (`idle` or `working`, with an open assignment and no valid report). Step 0 is the
   report request: an idle agent quiet for `idle_after` (or past its deadline), or a working one whose
   turn showed no progress for `stall_after`. Each later step climbs one rung of `policy.ladder`, no
   sooner than `report_grace` after the previous step; after the top rung, one final `escalate`.
   A valid report ends the climb; new work (`last_work_at` after the last step) starts it over.
   `interrupt` and `restart` wait while the agent showed progress within `stall_after` or runs a
   shell command: a live agent is never interrupted, restarted or stopped. Report requests are at
   least `report_grace` apart, across climbs.
   **Budget** (`fleet.watchdog.budget`): an open assignment past its token budget is interrupted
   and asked for its report once, then failed `over_budget` after `report_grace`; meanwhile the
   ladder is held.
6. **Leases.** Agents held by a person or another lead (`lease == "other"`) are never touched: what
   the watchdog would have done becomes one `notify_only`, at most once per `report_grace`.

What the tick must gather into `AgentFacts` (all times epoch seconds; None when unknown):
- `state`: the agent's state (`fleet.state` plus `limited`); `fatal` from the watchdog's own record.
- `last_progress_at`: the latest Codex signal of any kind for the agent: hook (UserPromptSubmit,
  Pre/PostToolUse, PermissionRequest, Stop, ...), rollout line, notify. A tick may also count pane
  output (tmux `#{window_activity}`) while a turn runs, since a slow stream writes nothing else.
- `last_work_at`: the latest event of a turn the watchdog did not start (the assignment's own turn,
  or one a person or the lead started). Events of the watchdog's own prompts (report requests,
  reminders, re-prompts) do not count, tools included: an agent that answers every request with a
  little activity but never a report would otherwise reset the ladder forever and never escalate.
- `command_running`: a shell command the agent started has not finished (PreToolUse without its
  PostToolUse, or a live unified-exec session).
- `idle_since`: when the last turn ended (Stop, notify or `task_complete`), None if never.
- `assignment`: the agent's open assignment from the ledger; `ladder`: the watchdog's record for that
  assignment (see `advance`); `last_notice_at`: the last `notify_only` about this agent.
- `lease` / `lease_holder`: from the lease store, classified by `lease_kind`.
- `limited_since` (the failing turn's `task_complete`), `resets_at` (the exhausted window of the latest
  `token_count` `rate_limits`), `exited_at`, `restarts` and `last_restart_at` (this crash streak, from
  the ledger), `lost_turn` (the pane died with a turn open), `approval` (fleet's PermissionRequest hook
  record), `lead_state` (the state of `policy.lead`, if configured).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Final, Literal, TypedDict

from fleet.config.watchdog import Policy
from fleet.durations import format_duration
from fleet.vocab import AgentState

from .approval import judge, policy_answer
from .budget import BudgetFacts, budget_step

LeaseKind = Literal["free", "assignment", "watchdog", "other"]
ActionKind = Literal[
    "request_report",  # step 0: ask the agent for its fleet-report (sent with a receipt, recorded)
    "remind",  # rung: a second, firmer report request
    "notify",  # rung: run notify_command; prompt the lead when it is idle
    "interrupt_and_reprompt",  # rung: Esc the turn (never Ctrl-C: it quits an idle Codex), re-send the assignment
    "restart_resume",  # rung or crash: `codex resume` the same session (context kept); a `resend` follows if needed
    "resend",  # re-send the open assignment (after a restart that lost its turn)
    "resume_after_limit",  # usage limit over: re-send the assignment, or a short "continue"
    "escalate",  # tell people (notify_command, idle lead): ladder exhausted, fatal crash, approval waiting
    "approve",  # answer a held approval: allow (by policy)
    "deny",  # answer a held approval: deny (by policy)
    "mark_fatal",  # record the agent as fatal: the watchdog stops restarting it
    "notify_only",  # the agent is held by a person or another lead: tell them, touch nothing
    "dispatch",  # fleet-wide: run the dispatch of queued assignments
    "budget_interrupt",  # over its token budget: Esc the turn (if one runs), ask for the report (`budget`)
    "fail_over_budget",  # over budget, no report within report_grace: fail it `over_budget` (`budget`)
    "reassign",  # on_limit = reassign: move a parked agent's open assignment to an agent on another account
]

#: The ledger states in which an assignment is out with its agent and owes a report (a narrower set
#: than `fleet.work.lifecycle.OPEN_STATES`, which also counts queued and reported ones).
OWES_REPORT_STATES: Final = frozenset({"sent", "working"})
#: An agent that ran this long after its last restart before crashing starts a new crash streak, so
#: a crash a week does not add up to `max_restarts`.
RESTART_STREAK_RESET: Final = 3600.0
#: The longest wait between two crash restarts, however long the streak: an hour keeps a flapping
#: agent visible without hammering it.
MAX_RESTART_BACKOFF: Final = 3600.0
#: The actions that act on the agent itself (keys, prompts, process); a lease held by someone else
#: turns them into `notify_only`.
TOUCHING: Final = frozenset({
    "request_report", "remind", "interrupt_and_reprompt", "restart_resume", "resend", "resume_after_limit",
    "approve", "deny", "budget_interrupt", "fail_over_budget", "reassign",
})
#: Rungs that stop or restart a running turn: never while the agent shows progress.
DISRUPTIVE: Final = frozenset({"interrupt_and_reprompt", "restart_resume"})
_RUNG_ACTION: Final[dict[str, ActionKind]] = {
    "remind": "remind", "notify": "notify", "interrupt": "interrupt_and_reprompt", "restart": "restart_resume",
}


@dataclass(frozen=True)
class OpenAssignment:
    """The agent's current assignment as the ledger has it. `state` is the ledger state; only
    `OWES_REPORT_STATES` owe a report. `has_valid_report`: a report that passed the schema has arrived."""

    id: str
    state: str
    sent_at: float
    has_valid_report: bool = False
    deadline: float | None = None


@dataclass(frozen=True)
class Ladder:
    """The watchdog's record of one assignment's climb, kept in the ledger, updated with `advance`.

    `rung` is the last step taken in the current climb (0 the report request, k the k-th rung of
    `policy.ladder`, len(ladder)+1 the final escalation), None before any. `last_request_at` survives
    a reset, so report requests stay `report_grace` apart across climbs.
    """

    rung: int | None = None
    last_step_at: float | None = None
    last_request_at: float | None = None
    requests: int = 0


@dataclass(frozen=True)
class PendingApproval:
    """An approval Codex is waiting on, from fleet's PermissionRequest hook. `held`: the hook is still
    holding the call, so an answer is exact; once it gives up, Codex's dialog is open and only a
    person at the pane (or keys) can answer. `escalated_at`: when the watchdog escalated it."""

    since: float
    tool: str
    command: str
    justification: str = ""
    held: bool = True
    escalated_at: float | None = None


@dataclass(frozen=True)
class AgentFacts:
    """Everything `decide` looks at for one agent; see the module docstring for where each comes from."""

    agent: str
    role: str
    state: AgentState
    last_progress_at: float | None = None
    last_work_at: float | None = None
    command_running: bool = False
    idle_since: float | None = None
    assignment: OpenAssignment | None = None
    ladder: Ladder = field(default_factory=Ladder)
    lease: LeaseKind = "free"
    lease_holder: str | None = None
    limited_since: float | None = None
    resets_at: float | None = None
    exited_at: float | None = None
    restarts: int = 0
    last_restart_at: float | None = None
    lost_turn: bool = False
    fatal: bool = False
    approval: PendingApproval | None = None
    lead_state: AgentState | None = None
    last_notice_at: float | None = None
    #: The open assignment's token budget and use (`fleet.watchdog.budget`), None without a budget.
    budget: BudgetFacts | None = None
    #: A limited agent's failover (`on_limit = "reassign"`): the agent its open assignment can move
    #: to now, and why it was chosen; None when there is none (the tick looks only then).
    failover_to: str | None = None
    failover_why: str = ""
    #: The assignment moved away from this agent while it was parked: its resume must not go on with it.
    handed_over: str | None = None


class ActionDict(TypedDict):
    agent: str | None
    assignment: str | None
    action: ActionKind
    rung: int | None
    reason: str
    lead: str | None


@dataclass(frozen=True)
class Action:
    """One thing the tick should do. `agent` is None only for `dispatch`. `rung` is the ladder step
    this action takes (see `Ladder.rung`), None for actions off the ladder. `lead`: also prompt this
    lead agent (set only when it is idle and is not `agent`)."""

    agent: str | None
    assignment: str | None
    action: ActionKind
    rung: int | None
    reason: str
    lead: str | None = None

    def to_dict(self) -> ActionDict:
        return {"agent": self.agent, "assignment": self.assignment, "action": self.action, "rung": self.rung,
                "reason": self.reason, "lead": self.lead}


def lease_kind(holder: str | None, *, watchdog_holder: str, assignment_holders: Iterable[str] = ()) -> LeaseKind:
    """Classify a live lease's holder for `AgentFacts.lease`: None is free, the watchdog's own holder
    is `watchdog`, the holder of the agent's open assignment is `assignment`, anyone else `other`."""
    if holder is None:
        return "free"
    if holder == watchdog_holder:
        return "watchdog"
    return "assignment" if holder in set(assignment_holders) else "other"


def decide(facts: AgentFacts, policy: Policy, now: float) -> list[Action]:
    """The actions for one agent at `now`, in the order the tick must carry them out (at most one
    ladder step). Deterministic: the same facts, policy and time give the same actions."""
    if facts.fatal:
        return []
    if facts.state == "exited":
        actions = _crashed(facts, policy, now)
    elif facts.state == "limited":
        actions = _limited(facts, policy, now)
    elif facts.state == "waiting_approval":
        actions = _approval(facts, policy, now) if facts.approval is not None else []
    elif facts.state in ("idle", "working"):
        over = _budget(facts, policy, now)  # a budget passed holds the ladder (`fleet.watchdog.budget`)
        actions = over if over is not None else _ladder(facts, policy, now)
    else:  # stopped or starting: a person stopped it, or it is on its way up
        actions = []
    return _fence(facts, policy, now, actions)


def decide_all(facts: Iterable[AgentFacts], policy: Policy, now: float, *, queued: int = 0) -> list[Action]:
    """`decide` for every agent, in the order given, then one `dispatch` when `queued` assignments
    wait and at least one agent is idle, free, not fatal and without open work."""
    out: list[Action] = []
    ready = 0
    for f in facts:
        out += decide(f, policy, now)
        if f.state == "idle" and f.lease == "free" and not f.fatal and not _owes_report(f):
            ready += 1
    if queued > 0 and ready > 0:
        out.append(Action(None, None, "dispatch", None,
                          f"{queued} queued assignment(s) wait and {ready} agent(s) are idle with no open work."))
    return out


def advance(ladder: Ladder, action: Action, now: float) -> Ladder:
    """The assignment's ladder after the tick carried out `action` at `now` (unchanged for actions off
    the ladder). A `notify_only` standing for a step counts as that step, so a held agent's climb,
    and the notices about it, stay one per grace window."""
    if action.rung is None:
        return ladder
    asked = action.action in ("request_report", "remind")
    return replace(
        ladder,
        rung=action.rung,
        last_step_at=now,
        last_request_at=now if asked else ladder.last_request_at,
        requests=ladder.requests + 1 if asked else ladder.requests,
    )


def restart_backoff(restarts: int, policy: Policy) -> float:
    """Seconds to wait after the last restart before the next one, `restarts` into a streak."""
    if restarts <= 0:
        return 0.0
    return min(policy.every * 2.0 ** min(restarts - 1, 32), MAX_RESTART_BACKOFF)


def shows_progress(facts: AgentFacts, policy: Policy, now: float) -> bool:
    """True when the agent must not be interrupted, restarted or stopped: a shell command runs, or
    a Codex signal arrived within `stall_after`."""
    if facts.command_running:
        return True
    return facts.last_progress_at is not None and now - facts.last_progress_at < policy.stall_after


def _owes_report(f: AgentFacts) -> bool:
    a = f.assignment
    return a is not None and a.state in OWES_REPORT_STATES and not a.has_valid_report


def _act(f: AgentFacts, kind: ActionKind, reason: str, rung: int | None = None, lead: str | None = None) -> Action:
    return Action(f.agent, f.assignment.id if f.assignment else None, kind, rung, reason, lead)


def _lead(f: AgentFacts, policy: Policy) -> str | None:
    lead = policy.lead
    return lead if lead and lead != f.agent and f.lead_state == "idle" else None


def crash_streak(f: AgentFacts) -> int:
    """The restarts so far in the exited agent's current crash streak: none once it ran
    `RESTART_STREAK_RESET` after its last restart before it exited."""
    if (f.last_restart_at is not None and f.exited_at is not None
            and f.exited_at - f.last_restart_at >= RESTART_STREAK_RESET):
        return 0
    return f.restarts


def _crashed(f: AgentFacts, policy: Policy, now: float) -> list[Action]:
    streak = crash_streak(f)
    exited = f"exited {_dur(now - f.exited_at)} ago" if f.exited_at is not None else "exited"
    if streak >= policy.max_restarts:
        why = (f"{f.agent} {exited} after {streak} restart(s) in this streak (max_restarts {policy.max_restarts}); "
               "the watchdog stops restarting it.")
        return [_act(f, "mark_fatal", why), _act(f, "escalate", why, lead=_lead(f, policy))]
    wait = restart_backoff(streak, policy)
    if f.last_restart_at is not None and streak > 0 and now < f.last_restart_at + wait:
        return []
    n = streak + 1
    actions = [_act(f, "restart_resume",
                    f"{f.agent} {exited}; restarting it with its session resumed (restart {n} of "
                    f"{policy.max_restarts}{f', backoff {_dur(wait)}' if wait else ''}).")]
    if f.lost_turn and _owes_report(f) and not (f.budget is not None and f.budget.over):
        assert f.assignment is not None  # past its budget it is not re-sent: the budget rule asks for its report
        actions.append(_act(f, "resend", f"The crash lost the open turn of {f.assignment.id}; re-sending it."))
    return actions


def _limited(f: AgentFacts, policy: Policy, now: float) -> list[Action]:
    since = f.limited_since if f.limited_since is not None else (f.idle_since or f.last_progress_at)
    if f.resets_at is not None and (since is None or f.resets_at > since):
        due, why = f.resets_at, "its usage limit reset"
    elif since is not None:
        due, why = since + policy.limit_retry, f"limit_retry ({_dur(policy.limit_retry)}) passed with no reset time"
    else:
        due, why = now, "nothing says when the limit began"
    owed = f.assignment.id if _owes_report(f) and f.assignment else None
    if now < due:
        if policy.on_limit == "reassign" and owed and f.failover_to:
            return [_act(f, "reassign", f"{f.agent} is parked at its usage limit ({_dur(due - now)} until it may "
                         f"resume); on_limit = reassign moves {owed} to {f.failover_to}: {f.failover_why}")]
        return []
    if owed and (over := _budget(f, policy, now)) is not None:  # past its budget: its report, not the work again
        return over
    if owed:
        what = f"re-sending {owed}"
    elif f.handed_over:
        what = f"telling it that {f.handed_over} went to another agent meanwhile (no 'continue')"
    else:
        what = "sending a short 'continue' for the turn that failed"
    return [_act(f, "resume_after_limit", f"{f.agent} was parked at its usage limit and {why} "
                 f"{_dur(now - due)} ago; {what}.")]


def _approval(f: AgentFacts, policy: Policy, now: float) -> list[Action]:
    ap = f.approval
    assert ap is not None
    if ap.held and policy.approve is not None and f.lease != "other":
        answer = policy_answer(judge(policy.approve, ap.tool, ap.command))
        if answer is not None:
            decision, why = answer
            return [_act(f, "approve" if decision == "allow" else "deny", why)]
    waited = now - ap.since
    if ap.escalated_at is None and waited >= policy.approval_timeout:
        why = (f"{f.agent} has waited {_dur(waited)} (approval_timeout {_dur(policy.approval_timeout)}) for "
               f"approval of {ap.tool} `{_clip(ap.command)}`"
               + (f", justified as: {_clip(ap.justification)}" if ap.justification else "")
               + f". Answer with `fleet approve {f.agent}` or `fleet deny {f.agent}`.")
        return [_act(f, "escalate", why, lead=_lead(f, policy))]
    return []


def _ladder(f: AgentFacts, policy: Policy, now: float) -> list[Action]:
    if not _owes_report(f):
        return []
    a = f.assignment
    assert a is not None
    live = shows_progress(f, policy, now)
    if f.state == "working" and live:
        return []  # a turn that shows progress is never touched
    lad = f.ladder
    reset = lad.last_step_at is not None and f.last_work_at is not None and f.last_work_at > lad.last_step_at
    if lad.rung is None or lad.last_step_at is None or reset:
        return _request(f, policy, now, a)
    since_step = now - lad.last_step_at
    if since_step < policy.report_grace:
        return []
    step = lad.rung + 1
    top = len(policy.ladder)
    if step > top + 1:
        return []
    if step == top + 1:
        return [_act(f, "escalate", f"{f.agent} has climbed every rung of the ladder ({', '.join(policy.ladder)}) "
                     f"for {a.id} and sent no valid report in the {_dur(since_step)} since the last; handing it "
                     "to people.", rung=step, lead=_lead(f, policy))]
    name = policy.ladder[step - 1]
    kind = _RUNG_ACTION[name]
    if kind in DISRUPTIVE and live:
        return []  # wait until the agent has been quiet for stall_after
    why = (f"No valid report for {a.id} {_dur(since_step)} after the last step (report_grace "
           f"{_dur(policy.report_grace)}); rung {step} of {top}: {name}.")
    if kind in DISRUPTIVE:
        why += f" The agent has shown no progress for {_quiet(f, now)} (stall_after {_dur(policy.stall_after)})."
    actions = [_act(f, kind, why, rung=step, lead=_lead(f, policy) if kind == "notify" else None)]
    if kind == "restart_resume":  # a resumed session has the history but no turn: hand the work back
        actions.append(_act(f, "resend", f"Re-sending {a.id} to the resumed session."))
    return actions


def _budget(f: AgentFacts, policy: Policy, now: float) -> list[Action] | None:
    step = budget_step(f.budget, assignment=f.assignment.id if f.assignment else "", owes_report=_owes_report(f),
                       now=now, grace=policy.report_grace)
    if step is None:
        return None
    if step.kind == "wait":
        return []
    return [_act(f, "budget_interrupt" if step.kind == "interrupt" else "fail_over_budget", step.reason)]


def _request(f: AgentFacts, policy: Policy, now: float, a: OpenAssignment) -> list[Action]:
    lad = f.ladder
    if lad.last_request_at is not None and now - lad.last_request_at < policy.report_grace:
        return []
    if f.state == "working":
        why = (f"{f.agent}'s turn on {a.id} has shown no progress for {_quiet(f, now)} (stall_after "
               f"{_dur(policy.stall_after)}); asking for its report.")
        return [_act(f, "request_report", why, rung=0)]
    quiet_since = max(t for t in (f.idle_since, a.sent_at, f.last_work_at) if t is not None)
    quiet = now - quiet_since
    overdue = a.deadline is not None and now >= a.deadline
    if quiet < policy.idle_after and not overdue:
        return []
    if quiet >= policy.idle_after:
        why = (f"{f.agent} has been idle on {a.id} for {_dur(quiet)} with no valid report (idle_after "
               f"{_dur(policy.idle_after)}); asking for its report.")
    else:
        assert a.deadline is not None
        why = (f"{f.agent} is idle on {a.id}, {_dur(now - a.deadline)} past its deadline, with no valid report; "
               "asking for its report.")
    return [_act(f, "request_report", why, rung=0)]


def _fence(f: AgentFacts, policy: Policy, now: float, actions: list[Action]) -> list[Action]:
    if f.lease != "other" or not any(a.action in TOUCHING for a in actions):
        return actions
    if f.last_notice_at is not None and now - f.last_notice_at < policy.report_grace:
        return []
    holder = f.lease_holder or "someone else"
    rung = next((a.rung for a in actions if a.rung is not None), None)
    would = " Then: ".join(a.reason for a in actions)
    why = f"{f.agent} is held by {holder}, so the watchdog touches nothing and only tells. It would act: {would}"
    return [_act(f, "notify_only", why, rung=rung, lead=_lead(f, policy))]


def _quiet(f: AgentFacts, now: float) -> str:
    return _dur(now - f.last_progress_at) if f.last_progress_at is not None else "as long as the watchdog knows"


def _clip(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _dur(seconds: float) -> str:
    """`seconds` as `1h2m3s` (whole seconds, never negative), as `fleet.durations` formats and parses.
    Rounded before clamping, so NaN and infinities still raise as `round` does."""
    return format_duration(max(0, round(seconds)))
