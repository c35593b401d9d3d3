"""One watchdog tick: gather the facts, decide, act as holder `watchdog`, record. Run by `fleet watchdog
tick` (the systemd timer), `fleet watchdog run` (a foreground loop) and the `watchdog_tick` tool.

Order of a tick:

1. **Overlap lock**: a non-blocking flock on `<state_dir>/watchdog.lock`. A second tick while one
   runs returns at once with `skipped` saying so and does nothing else (the kernel drops the lock
   when a tick dies, so a killed tick never blocks the next).
2. **Reconcile** open assignments from Codex's signals (`fleet.service.tracking.reconcile`), so a report
   that just arrived stops the ladder in this very tick.
3. **Gather** `AgentFacts` for every configured agent (`fleet.watchdog.facts`), **decide**
   (`fleet.watchdog.decide.decide_all`, pure), then **act** on each action in order
   (`fleet.service.tickacts`).
4. **Record**: every action goes to the ledger's events (`watchdog_<action>`, on the assignment when
   there is one) and to `audit.jsonl`; the ladders, crash streaks and notices the next tick needs go
   to the watchdog's tables (`fleet.watchdog.store`); the tick itself to `watchdog_ticks`. With
   `[store]`, the approval hook's records in `audit.jsonl` are copied to the store's audit table
   (`fleet.service.auditship`).

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
requests, ladders or dispatch), and reports the fault in `ledger` (see `open_ledger` and
`fleet.watchdog.tickstate`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Final, Literal, TypedDict

from fleet import audit
from fleet.agents.writable import fleet_roots
from fleet.errors import FleetError, InternalError, StateDirError, StoreSchemaMismatch, StoreUnavailable
from fleet.fsutil import read_jsonl_tail
from fleet.leases import lease_state
from fleet.vocab import WATCHDOG_HOLDER, AgentState, assignment_holder
from fleet.watchdog import policyfile
from fleet.watchdog.backend import WatchdogBackend
from fleet.watchdog.budget import BudgetFacts
from fleet.watchdog.decide import Action, ActionKind, AgentFacts, advance, crash_streak, decide_all, lease_kind
from fleet.watchdog.facts import JournalFacts, build_facts, fold_journal
from fleet.watchdog.store import AgentRecord, LadderRecord, WatchdogStore
from fleet.watchdog.tickstate import (
    FALLBACK_DB,
    LEDGER_FAULTS,
    compact_detail,
    ledger_fault,
    private_file,
    tick_lock,
    turn_id_of,
)
from fleet.work.ledgerbackend import LedgerBackend

from .auditship import ship_audit
from .budgets import budget_facts
from .core import Service
from .delivery import end_stale_contexts
from .failover import limit_facts
from .tickacts import Seen, act
from .tracking import reconcile
from .watchdogstore import open_watchdog_store

logger = logging.getLogger("fleet.watchdog")

#: Queued assignments looked at per tick; dispatch itself decides how many it sends.
QUEUED_LOOKUP: Final = 100
#: Open assignments read per tick: far more than a fleet has agents.
OPEN_LOOKUP: Final = 1000
#: How much of each journal's end the tick folds: the facts it needs (the latest Codex signal, the
#: latest work, the open turn, a pending approval) are all in the last few turns, and the journal can
#: hold 256 KiB that status already parses once.
JOURNAL_TAIL: Final = 16 * 1024
#: The prompts whose turns are the watchdog's own, not the agent's work (see `decide`'s `last_work_at`).
OWN_PROMPTS: Final = frozenset({"request_report", "remind", "interrupt_and_reprompt", "budget_interrupt"})

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


def run_tick(svc: Service, *, dry_run: bool = False, now: float | None = None) -> TickResult:
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
        if store is None:  # the ledger is down: the local fallback file
            store = WatchdogStore(private_file(state_dir / FALLBACK_DB))
        stack.enter_context(store)
        tick = _Tick(svc, ledger, store, at, dry_run)
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
    def __init__(self, svc: Service, ledger: LedgerBackend | None, store: WatchdogBackend, now: float,
                 dry_run: bool) -> None:
        self.svc, self.ledger, self.store, self.now, self.dry_run = svc, ledger, store, now, dry_run
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

    def _from_ledger(self, read: Callable[[LedgerBackend], Any], default: Any) -> Any:
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

    def run(self) -> list[TickAction]:
        if not self.dry_run:
            if self.ledger is not None:
                self._guarded("reconcile", lambda: reconcile(self.svc))
                self._guarded("ended", lambda: end_stale_contexts(self.svc))
            self._guarded("approve_policy", self._sync_approve_policy)
            self._guarded("lease_mirror", lambda: self.svc.leases.refresh_mirror(list(self.svc.config.agents)))
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
        if self.ledger is not None and self.svc.config.store is not None:  # the hook's records, to the store
            self._guarded("audit_ship", lambda: ship_audit(self.svc))
        return done

    def _sync_approve_policy(self) -> None:
        """Keep each launched agent's copy of the approve policy current, for fleet's approval hook."""
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
                lease_holder=holder, record=_record_dict(records.get(name)),
                transcript_mtime=_mtime(journal),
            )
            if row and row.get("budget"):  # `fleet.watchdog.budget`
                facts = replace(facts, budget=self._budget(row, events, journal, spec.home))
            if facts.state == "limited" and self.ledger is not None:  # failover and handovers (`on_limit`)
                facts = self._limit_facts(facts, statuses)
            if name == lead:
                lead_state = facts.state
            self.seen[name] = Seen(spec, facts, journal, ladder, records.get(name) or AgentRecord(name))
            out.append(facts)
        if lead_state is not None:
            out = [replace(f, lead_state=lead_state) for f in out]  # for `decide` only: `self.seen` needs none
        return out

    def _budget(self, row: dict[str, Any], events: list[dict[str, Any]], journal: JournalFacts,
                home: Path) -> BudgetFacts | None:
        found: BudgetFacts | None = self._from_ledger(lambda ledger: budget_facts(ledger, row, events, journal, home),
                                                      None)
        return found
    def _limit_facts(self, facts: AgentFacts, statuses: Mapping[str, Mapping[str, Any]]) -> AgentFacts:
        """`limit_facts` (from the `statuses` this tick read), or the facts as they were when it cannot
        be worked out (said in `errors`)."""
        try:
            return limit_facts(self.svc, facts, statuses)
        except LEDGER_FAULTS as exc:
            self.ledger_down(exc)
        except FleetError as exc:
            self.errors.append({"step": "failover", "agent": facts.agent, **exc.to_dict()})
        return facts

    def _lease_holder(self, agent: str) -> str | None:
        """Who holds the agent now: on the tick's clock for lease files, on the database's for the
        shared store (hosts' clocks may drift from it; the guard that acts decides on it too)."""
        try:
            if self.svc.config.store is not None:
                info = self.svc.leases.info(agent)
                return info["holder"] if info["state"] == "held" else None
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
            detail = act(self.svc, action, self.seen, self.now)
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

    # -- recording --------------------------------------------------------------------------------

    def _remember(self, action: Action, entry: TickAction) -> None:
        """Store what the next tick must know: the ladder step (taken even when the action failed),
        the watchdog's own turn ids, crash streaks, fatal marks, notices, escalated approvals."""
        if action.agent is None:
            return
        if action.action == "reassign" and action.assignment and entry["outcome"] == "done" and entry["detail"]:
            # a new agent, a new climb: the parked agent's rungs and own turns are not the new one's
            self.store.save_ladder(LadderRecord(action.assignment, str(entry["detail"]["to"])), self.now)
            return
        seen = self.seen[action.agent]
        if action.assignment is not None and (action.rung is not None or action.action in OWN_PROMPTS
                                              or action.action == "resend"):
            rec = seen.ladder or LadderRecord(action.assignment, action.agent)
            if action.rung is not None:
                rec = replace(rec, ladder=advance(rec.ladder, action, self.now))
            own = action.action in OWN_PROMPTS or (action.action == "resend" and seen.facts.state != "exited")
            if own and entry["detail"]:
                rec = rec.with_turn(turn_id_of(entry["detail"]))
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
            details["detail"] = compact_detail(entry["detail"])
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
            audit.record(self.svc.config.state_dir, f"watchdog.{entry['action']}", sinks=self.svc.audit_sinks,
                         surface=self.svc.surface,
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


def open_ledger(svc: Service) -> tuple[LedgerBackend | None, WatchdogBackend | None, BaseException | None]:
    """The service's ledger and the watchdog's tables in it, or the fault that makes them unusable
    (the service's connection is closed then). Opening reads the header and the schema; damage
    deeper in the file shows when a query reaches it, and the tick catches `LEDGER_FAULTS` there.
    With `[store]`, both are the shared store's, and a database that is down or not migrated is the
    fault (the tick then keeps its memory in the fallback file, as for a damaged `fleet.db`)."""
    store: WatchdogBackend | None = None
    try:
        ledger = svc.ledger  # the service's connection, which the work layer uses too; the service closes it
        store = open_watchdog_store(svc, probe=True)
        return ledger, store, None
    # The SQLite store says StateDirError for the same file.
    except (StateDirError, sqlite3.DatabaseError, StoreUnavailable, StoreSchemaMismatch) as exc:
        if store is not None:
            store.close()
        svc.close()
        return None, None, exc


def _record_dict(record: AgentRecord | None) -> dict[str, Any] | None:
    return asdict(record) if record is not None else None


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
