"""One watchdog tick: gather the facts, decide, act as holder `watchdog`, record. Run by `fleet watchdog
tick` (the systemd timer), `fleet watchdog run` (a foreground loop) and the `watchdog_tick` tool.

Order of a tick:

1. **Overlap lock**: a non-blocking flock on `<state_dir>/watchdog.lock`. A second tick while one
   runs returns at once with `skipped` saying so and does nothing else (the kernel drops the lock
   when a tick dies, so a killed tick never blocks the next).
2. **Reconcile** open assignments from Codex's signals (`fleet.service.work.reconcile`), so a report
   that just arrived stops the ladder in this very tick.
3. **Gather** `AgentFacts` for every configured agent (`fleet.watchdog.facts`), **decide**
   (`fleet.watchdog.decide.decide_all`, pure), then **act** on each action in order.
4. **Record**: every action goes to the ledger's events (`watchdog_<action>`, on the assignment when
   there is one) and to `audit.jsonl`; the ladders, crash streaks and notices the next tick needs go
   to the watchdog's tables (`fleet.watchdog.store`); the tick itself to `watchdog_ticks`.

Leases: the tick touches only agents that are free (under a transient lease of holder `watchdog`) or
held by their open assignment's lease (`assignment:<id>`, which the watchdog acts under, as the work
layer does); `decide` has already turned anything touching an agent someone else holds into a
`notify_only`. An action that fails (the agent busy, a send not delivered, a lease taken meanwhile)
is recorded with its error and still counts as the ladder's step, so a wedged agent keeps climbing
towards people instead of being asked forever.

A dry run gathers and decides but takes no lock, reconciles nothing and acts on nothing. The tick
never starts the fleet's tmux server: it only talks to sessions that exist.

An unusable ledger (`fleet.db` damaged) does not stop the tick: it restarts crashed agents, resumes
parked ones, answers or escalates approvals and tells people, without assignments (no report
requests, ladders or dispatch), and reports the fault in `ledger` (see `fleet.watchdog.tickstate`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol, TypedDict

from fleet import audit
from fleet.errors import FleetError, InternalError
from fleet.fsutil import read_jsonl_tail
from fleet.vocab import WATCHDOG_HOLDER, WATCHDOG_POLICY_HOLDER, AgentState, assignment_holder

from . import policyfile, tickstate
from .decide import Action, ActionKind, AgentFacts, advance, crash_streak, decide_all, lease_kind
from .facts import JournalFacts, build_facts, fold_journal
from .messages import lead_prompt, notify_payload, report_request, resume_text
from .store import AgentRecord, LadderRecord, WatchdogStore
from .tickstate import FALLBACK_DB, LEDGER_FAULTS, ledger_fault, open_ledger, private_file, tick_lock

if TYPE_CHECKING:
    from fleet.config import AgentSpec
    from fleet.service.core import Service
    from fleet.work.ledger import Ledger

logger = logging.getLogger("fleet.watchdog")

#: A notify command gets this long; a hung one must not hold the tick (or the timer) hostage.
NOTIFY_TIMEOUT: Final = 10.0
#: Queued assignments looked at per tick; dispatch itself decides how many it sends.
QUEUED_LOOKUP: Final = 100
#: Open assignments read per tick: far more than a fleet has agents.
OPEN_LOOKUP: Final = 1000
#: How much of each journal's end the tick folds: the facts it needs (the latest Codex signal, the
#: latest work, the open turn, a pending approval) are all in the last few turns, and the journal can
#: hold 256 KiB that status already parses once.
JOURNAL_TAIL: Final = 16 * 1024
#: The prompts whose turns are the watchdog's own, not the agent's work (see `decide`'s `last_work_at`).
OWN_PROMPTS: Final = frozenset({"request_report", "remind", "interrupt_and_reprompt"})

Outcome = Literal["done", "failed", "planned"]


class TickAction(TypedDict):
    agent: str | None
    assignment: str | None
    action: ActionKind
    rung: int | None
    reason: str
    lead: str | None
    outcome: Outcome
    error: dict[str, Any] | None
    detail: dict[str, Any] | None


class TickResult(TypedDict):
    at: float
    dry_run: bool
    skipped: str | None
    actions: list[TickAction]
    errors: list[dict[str, Any]]
    #: None when the ledger was usable all tick; else its fault (code, message, hint).
    ledger: dict[str, Any] | None
    ms: int


class WorkPort(Protocol):
    """The work layer the tick drives (`fleet.service.work`; see the integration contract)."""

    def reconcile(self, svc: Service, agents: list[str] | None = None) -> list[dict[str, Any]]: ...

    def dispatch(self, svc: Service) -> dict[str, Any]: ...

    def deliver(self, svc: Service, assignment_id: str, *, actor: str, text: str | None = None) -> dict[str, Any]: ...


def default_port() -> WorkPort:
    from fleet.service import work

    return work


@dataclass(frozen=True)
class Seen:
    """One agent as this tick saw it: the facts `decide` got, and what the actions need besides."""

    spec: AgentSpec
    facts: AgentFacts
    journal: JournalFacts
    ladder: LadderRecord | None
    record: AgentRecord


def run_tick(svc: Service, *, dry_run: bool = False, now: float | None = None,
             port: WorkPort | None = None) -> TickResult:
    """One tick over every configured agent (see the module docstring). Never raises for what an
    action does; raises `FleetError` only when the state dir or ledger cannot be used at all."""
    started = time.monotonic()
    at = time.time() if now is None else now
    state_dir = svc.config.state_dir
    with contextlib.ExitStack() as stack:
        # Checks run in this process: a oneshot unit's detached children die when the tick ends.
        stack.callback(setattr, svc, "background_checks", svc.background_checks)
        svc.background_checks = False
        if not dry_run:
            busy = stack.enter_context(tick_lock(state_dir))
            if busy is not None:
                return _result(at, dry_run, busy, [], [], started)
        ledger, store, fault = open_ledger(svc)
        if store is None:
            store = WatchdogStore(private_file(state_dir / FALLBACK_DB))
        stack.enter_context(store)
        tick = _Tick(svc, ledger, store, port, at, dry_run)
        if fault is not None:
            tick.ledger_down(fault)
        actions = tick.run()
        result = _result(at, dry_run, None, actions, tick.errors, started, tick.ledger_fault)
        if not dry_run:
            with contextlib.suppress(*LEDGER_FAULTS):  # a ledger found damaged mid-tick: the result says so
                store.add_tick(result["at"], dry_run=False, ms=result["ms"], skipped=None,
                               actions=[dict(a) for a in actions])
        return result
    raise AssertionError("unreachable")  # pragma: no cover  (mypy: ExitStack may swallow exceptions)


def run_forever(svc: Service, every: float, report: Callable[[TickResult | FleetError | Exception], None]) -> None:
    """`fleet watchdog run`: a tick every `every` seconds (on a fixed schedule; a tick that overruns
    its period is followed by the next at once, never by two), until KeyboardInterrupt. A tick that
    fails is reported and the loop goes on: a full disk at 3 am must not end the watchdog."""
    next_at = time.monotonic()
    while True:
        try:
            report(run_tick(svc))
        except Exception as exc:
            report(exc)
        svc.close()  # each tick opens the ledger afresh: a repaired one replaces the file
        next_at = max(next_at + every, time.monotonic())
        time.sleep(max(0.0, next_at - time.monotonic()))


def _result(at: float, dry_run: bool, skipped: str | None, actions: list[TickAction], errors: list[dict[str, Any]],
            started: float, ledger: dict[str, Any] | None = None) -> TickResult:
    return {"at": round(at, 3), "dry_run": dry_run, "skipped": skipped, "actions": actions, "errors": errors,
            "ledger": ledger, "ms": int((time.monotonic() - started) * 1000)}


class _Tick:
    def __init__(self, svc: Service, ledger: Ledger | None, store: WatchdogStore, port: WorkPort | None, now: float,
                 dry_run: bool) -> None:
        self.svc, self.ledger, self.store, self.now, self.dry_run = svc, ledger, store, now, dry_run
        self._port = port
        self.policy = svc.config.watchdog
        self.errors: list[dict[str, Any]] = []
        self.seen: dict[str, Seen] = {}
        self.ledger_fault: dict[str, Any] | None = None

    def ledger_down(self, exc: BaseException) -> None:
        """Go on without the ledger for the rest of this tick, and say why once."""
        self.ledger = None
        if self.ledger_fault is None:
            self.ledger_fault = ledger_fault(exc)
            self.errors.append({"step": "ledger", **self.ledger_fault})

    def _from_ledger(self, read: Callable[[Ledger], Any], default: Any) -> Any:
        """`read(ledger)`, or `default` when the ledger is (or turns out to be) unusable."""
        ledger = self.ledger
        return default if ledger is None else self._safely(lambda: read(ledger), default)

    def _safely(self, read: Callable[[], Any], default: Any) -> Any:
        """`read()` of the ledger file (its tables or the watchdog's), or `default` if it is damaged."""
        try:
            return read()
        except LEDGER_FAULTS as exc:
            self.ledger_down(exc)
            return default

    @property
    def port(self) -> WorkPort:
        if self._port is None:
            self._port = default_port()
        return self._port

    def run(self) -> list[TickAction]:
        if not self.dry_run:
            if self.ledger is not None:
                self._guarded("reconcile", lambda: self.port.reconcile(self.svc))
            self._guarded("approve_policy", self._sync_approve_policy)
        facts = self.gather()
        queued = self._from_ledger(lambda ledger: len(ledger.queued(QUEUED_LOOKUP)), 0)
        actions = decide_all(facts, self.policy, self.now, queued=queued)
        if self.dry_run:
            return [_entry(a, "planned") for a in actions]
        done = [self.carry_out(a) for a in actions]
        still_open = self._from_ledger(lambda ledger: [a.id for a in ledger.assignments(open_only=True,
                                                                                         limit=OPEN_LOOKUP)], None)
        if still_open is not None:  # without the ledger, no ladder is known to be over
            self.store.forget_ladders(still_open)
        return done

    def _sync_approve_policy(self) -> None:
        """Keep each launched agent's copy of the approve policy current, for fleet's approval hook."""
        from fleet.agents.writable import fleet_roots

        policyfile.sync_agents(((self.svc.runtime.agent_dir(name), spec.cwd)
                                for name, spec in self.svc.config.agents.items()), self.policy.approve,
                               create=False, roots=fleet_roots(self.svc.config) if self.policy.approve else ())

    # -- gathering --------------------------------------------------------------------------------

    def gather(self) -> list[AgentFacts]:
        svc = self.svc
        specs = list(svc.config.agents.values())
        statuses = {s["name"]: s for s in svc.runtime.status(specs)}
        open_rows: dict[str, dict[str, Any]] = {}
        rows = self._from_ledger(lambda ledger: ledger.assignments(states=("sent", "working", "reported"),
                                                                   limit=OPEN_LOOKUP), [])
        for a in rows:
            if a.agent and a.agent not in open_rows:  # newest first: an agent's latest open one
                open_rows[a.agent] = a.to_dict(with_prompt=False)
        ladders = self._safely(lambda: self.store.ladders(r["id"] for r in open_rows.values()), {})
        records = self._safely(self.store.agents, {})
        lead = self.policy.lead
        lead_state: AgentState | None = None
        out = []
        for spec in specs:
            name = spec.name
            row = open_rows.get(name)
            ladder = ladders.get(row["id"]) if row else None
            events = read_jsonl_tail(svc.runtime.journal_path(name), JOURNAL_TAIL)
            journal = fold_journal(events, ladder.own_turns if ladder else ())
            holder = self._lease_holder(name)
            facts = build_facts(
                status=statuses[name], journal=journal, now=self.now, role=spec.role, assignment=row,
                ladder=ladder.ladder if ladder else None,
                lease=lease_kind(holder, watchdog_holder=WATCHDOG_HOLDER,
                                 assignment_holders=[assignment_holder(row['id'])] if row else []),
                lease_holder=holder, record=tickstate.record_dict(records.get(name)),
                transcript_mtime=_mtime(journal),
            )
            if name == lead:
                lead_state = facts.state
            self.seen[name] = Seen(spec, facts, journal, ladder, records.get(name) or AgentRecord(name))
            out.append(facts)
        if lead_state is not None:
            out = [replace(f, lead_state=lead_state) for f in out]  # for `decide` only: `self.seen` needs none
        return out

    def _lease_holder(self, agent: str) -> str | None:
        from fleet.leases import lease_state

        try:
            lease = self.svc.leases.get(agent)
        except FleetError as exc:  # a corrupt record: someone must repair it; never act on the agent
            self.errors.append({"agent": agent, **exc.to_dict()})
            return "corrupt-lease"
        if lease is None or lease_state(lease, self.now) != "held":
            return None
        return lease.holder

    # -- acting -----------------------------------------------------------------------------------

    def carry_out(self, action: Action) -> TickAction:
        detail: dict[str, Any] | None = None
        try:
            detail = self._do(action)
            entry = _entry(action, "done", detail=detail)
        except FleetError as exc:
            entry = _entry(action, "failed", error=exc.to_dict())
        except Exception as exc:  # a bug in one action must not stop the others or the record
            logger.exception("watchdog action %s on %s failed", action.action, action.agent)
            err = InternalError(f"Unexpected {type(exc).__name__}: {exc}.", hint="This is a bug in fleet.")
            entry = _entry(action, "failed", error=err.to_dict())
        try:
            self._remember(action, entry)
        except LEDGER_FAULTS as exc:
            self.ledger_down(exc)
        self._record(entry)
        return entry

    def _do(self, action: Action) -> dict[str, Any] | None:
        kind = action.action
        if kind == "dispatch":
            return self.port.dispatch(self.svc)
        assert action.agent is not None
        seen = self.seen[action.agent]
        aid = action.assignment
        if kind in ("request_report", "remind"):
            assert aid is not None
            text = report_request(aid, firm=kind == "remind")
            return self.port.deliver(self.svc, aid, actor=WATCHDOG_HOLDER, text=text)
        if kind == "interrupt_and_reprompt":
            assert aid is not None
            with self.svc.leased([seen.spec], self._holder(seen), None):
                interrupted = self.svc.runtime.interrupt(seen.spec)
            return {"interrupt": interrupted, **self.port.deliver(self.svc, aid, actor=WATCHDOG_HOLDER)}
        if kind == "restart_resume":
            from fleet.service.agents import restart_agent  # a lead's restart ensures its plugin

            with self.svc.leased([seen.spec], self._holder(seen), None):
                return restart_agent(self.svc, seen.spec, seen.journal.session_id)
        if kind == "resend" or (kind == "resume_after_limit" and aid is not None):
            assert aid is not None
            return self.port.deliver(self.svc, aid, actor=WATCHDOG_HOLDER)
        if kind == "resume_after_limit":
            with self.svc.leased([seen.spec], self._holder(seen), None):
                return dict(self.svc.runtime.send(seen.spec, resume_text(None), holder=WATCHDOG_HOLDER))
        if kind in ("approve", "deny"):
            return self._answer(seen, action)
        if kind == "mark_fatal":
            return self._give_up(seen, action)
        if kind in ("notify", "escalate", "notify_only"):
            return self._tell(action)
        raise InternalError(f"The watchdog has no way to carry out {kind!r}.", hint="This is a bug in fleet.")

    def _give_up(self, seen: Seen, action: Action) -> dict[str, Any]:
        """Marked fatal: the open assignment the watchdog kept open for a restart fails now."""
        from fleet.service.delivery import fail

        out: dict[str, Any] = {"fatal": True}
        if action.assignment is not None:
            done = fail(self.svc, action.assignment, seen.spec.name, "its agent kept crashing; the watchdog stopped "
                        "restarting it", actor=WATCHDOG_HOLDER, expect=("sent", "working"))
            out["failed"] = done is not None
        return out

    def _holder(self, seen: Seen) -> str:
        """Whose lease an action on this agent runs under: its assignment's, else the watchdog's."""
        f = seen.facts
        return f.lease_holder if f.lease == "assignment" and f.lease_holder else WATCHDOG_HOLDER

    def _answer(self, seen: Seen, action: Action) -> dict[str, Any]:
        from fleet.agents.approvals import write_answer

        raw = seen.journal.approval
        if raw is None or not raw.get("request"):
            raise InternalError("The approval to answer has no request id.", hint="This is a bug in fleet.")
        decision: Literal["allow", "deny"] = "allow" if action.action == "approve" else "deny"
        write_answer(self.svc.runtime.agent_dir(seen.spec.name), str(raw["request"]), decision,
                     by=WATCHDOG_POLICY_HOLDER, message=action.reason if decision == "deny" else "")
        return {"request": raw["request"], "decision": decision}

    def _tell(self, action: Action) -> dict[str, Any]:
        """Run `notify_command` with the action as JSON on stdin, and prompt the lead if `decide`
        named one (it does only when the lead is idle). Each half fails on its own."""
        out: dict[str, Any] = {}
        command = self.policy.notify_command
        if command:
            import json

            try:
                proc = subprocess.run(list(command), input=json.dumps(notify_payload(self.svc.config.name, action,
                                                                                      self.now)),
                                      text=True, capture_output=True, timeout=NOTIFY_TIMEOUT, check=False)
                out["notify"] = {"returncode": proc.returncode, "output": (proc.stdout + proc.stderr)[-500:]}
            except (OSError, subprocess.TimeoutExpired) as exc:
                out["notify"] = {"returncode": None, "output": str(exc)[-500:]}
        if action.lead:
            try:
                spec = self.svc.config.agent(action.lead)
                with self.svc.leased([spec], WATCHDOG_HOLDER, None):
                    receipt = self.svc.runtime.send(spec, lead_prompt(self.svc.config.name, action,
                                                                      approval_request=self._waiting(action)),
                                                    holder=WATCHDOG_HOLDER)
                out["lead"] = {"agent": action.lead, "turn_id": receipt["turn_id"]}
            except FleetError as exc:
                out["lead"] = {"agent": action.lead, "error": exc.to_dict()}
        return out

    def _waiting(self, action: Action) -> str | None:
        """The request id of the approval an escalation is about (None for other actions)."""
        seen = self.seen.get(action.agent) if action.agent else None
        if action.action != "escalate" or seen is None or seen.facts.state != "waiting_approval":
            return None
        return str((seen.journal.approval or {}).get("request") or "")

    # -- recording --------------------------------------------------------------------------------

    def _remember(self, action: Action, entry: TickAction) -> None:
        """Store what the next tick must know: the ladder step (taken even when the action failed),
        the watchdog's own turn ids, crash streaks, fatal marks, notices, escalated approvals."""
        if action.agent is None:
            return
        seen = self.seen[action.agent]
        if action.assignment is not None and (action.rung is not None or action.action in OWN_PROMPTS
                                              or action.action == "resend"):
            rec = seen.ladder or LadderRecord(action.assignment, action.agent)
            if action.rung is not None:
                rec = replace(rec, ladder=advance(rec.ladder, action, self.now))
            own = action.action in OWN_PROMPTS or (action.action == "resend" and seen.facts.state != "exited")
            if own and entry["detail"]:
                rec = rec.with_turn(tickstate.turn_id_of(entry["detail"]))
            self.store.save_ladder(rec, self.now)
            self.seen[action.agent] = seen = replace(seen, ladder=rec)
        record = seen.record
        f = seen.facts
        if action.action == "restart_resume" and f.state == "exited":
            record = replace(record, restarts=crash_streak(f) + 1, last_restart_at=self.now, fatal_at=None)
        elif action.action == "mark_fatal":
            record = replace(record, fatal_at=self.now, fatal_reason=action.reason)
        elif action.action == "notify_only":
            record = replace(record, last_notice_at=self.now)
        elif action.action == "escalate" and f.state == "waiting_approval" and seen.journal.approval:
            record = replace(record, approval_escalated=str(seen.journal.approval.get("request")),
                             approval_escalated_at=self.now)
        else:
            return
        self.store.save_agent(record, self.now)
        self.seen[action.agent] = replace(seen, record=record)

    def _record(self, entry: TickAction) -> None:
        kind = f"watchdog_{entry['action']}"
        details = {k: v for k, v in entry.items()
                   if k in ("action", "rung", "reason", "lead", "outcome", "error") and v is not None}
        if entry["detail"]:
            details["detail"] = tickstate.compact_detail(entry["detail"])
        try:  # without a ledger, the audit record below still says what was done
            if self.ledger is not None and entry["assignment"]:
                self.ledger.annotate(entry["assignment"], kind, actor=WATCHDOG_HOLDER, details=details)
            elif self.ledger is not None:
                self.ledger.record_event(kind, actor=WATCHDOG_HOLDER, agent=entry["agent"], details=details)
        except LEDGER_FAULTS as exc:
            self.ledger_down(exc)
        except FleetError as exc:
            self.errors.append({"record": kind, **exc.to_dict()})
        err = entry["error"]
        try:
            audit.record(self.svc.config.state_dir, f"watchdog.{entry['action']}", surface=self.svc.surface,
                         holder=WATCHDOG_HOLDER, agents=[entry["agent"]] if entry["agent"] else None,
                         assignment=entry["assignment"], outcome="ok" if entry["outcome"] == "done" else "error",
                         code=err["code"] if err else None)
        except (OSError, FleetError) as exc:
            logger.error("fleet watchdog: could not write the audit record: %s", exc)

    def _guarded(self, what: str, call: Any) -> None:
        try:
            call()
        except LEDGER_FAULTS as exc:
            self.ledger_down(exc)
        except FleetError as exc:
            self.errors.append({"step": what, **exc.to_dict()})
        except Exception as exc:
            logger.exception("watchdog %s failed", what)
            self.errors.append({"step": what, "code": "internal_error", "message": f"{type(exc).__name__}: {exc}"})


def _entry(action: Action, outcome: Outcome, *, detail: dict[str, Any] | None = None,
           error: dict[str, Any] | None = None) -> TickAction:
    return {"agent": action.agent, "assignment": action.assignment, "action": action.action, "rung": action.rung,
            "reason": action.reason, "lead": action.lead, "outcome": outcome, "error": error, "detail": detail}


def _mtime(journal: JournalFacts) -> float | None:
    """The rollout file's mtime while a turn is open (Codex writes it as the turn's items complete)."""
    if journal.open_turn is None or not journal.transcript:
        return None
    try:
        return os.stat(journal.transcript).st_mtime
    except OSError:
        return None
