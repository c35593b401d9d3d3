"""Following open assignments from Codex's signals to a verdict: `reconcile` and verification
(waiting on them is `fleet.service.assignments.wait_for`).

Where the facts come from: the agent's journal (`<state_dir>/agents/<agent>/events.jsonl`), which
Codex's hooks and notify append to through `fleet.hooks.receiver`: `turn_started` (the receipt),
`turn_completed` (Stop, with the last assistant message), `turn_notified` (notify, the same message
once more), `report_asked` (fleet's Stop hook asked for a missing report and the turn went on),
`tool_denied` (fleet's PreToolUse hook refused an out-of-scope patch); plus the agent's process
state. An assignment's turns are the ones its receipts name: the first send's, and every later
`deliver`'s (recorded in the ledger as `delivered` events). Reports from other turns never count.

Idempotence and concurrency: every state change is a ledger compare-and-set, so several processes
(a CLI `wait`, the MCP server, the watchdog) may reconcile at once; one wins each step, the others
see a `StateConflict` and move on. Hook facts are copied into the ledger once, keyed by turn (and
time).

Verification (snapshot + checks): the process that moves an assignment to `reported` claims the
verification (a `verifying` ledger event, written once per attempt across processes) and runs it.
An assignment with `--check` commands is verified by a detached verifier process
(`python -P -m fleet.service.verifier`, in `/`, its output appended to `<state_dir>/verify.log`), so that a
CLI read, an MCP call or a `wait` never blocks on someone's test suite; the watchdog's tick, itself
a background job, runs checks in its own process (`Service.background_checks` off), where a
systemd oneshot unit would kill a detached child when it ends. If a verifier dies, the next
reconcile after `verify_stale` seconds claims the next attempt and verifies again.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from fleet.agents.codex import effective_sandbox, sandbox_argv
from fleet.agents.journal import PREVIOUS, READ_MAX, turn_usages
from fleet.agents.observe import rollout_turn_end
from fleet.agents.state import read_journal
from fleet.agents.writable import agent_roots
from fleet.config import AgentSpec
from fleet.errors import FleetError, StateConflict
from fleet.fsutil import read_jsonl_tail
from fleet.vocab import assignment_holder
from fleet.work.checks import FULL_ACCESS_NOTE, Sandbox, check_env, not_run, run_checks, stricter
from fleet.work.ledger import MAX_LIST
from fleet.work.progress import assignment_usage, next_step, read_progress
from fleet.work.records import Assignment, Event
from fleet.work.report import validate_report
from fleet.work.verify import SnapshotError, compare_with_baseline, verdict

from .core import Service
from .delivery import DEADLINE_GRACE, end_context, fail
from .watchdogstore import watchdog_will_restart
from .worktree import commit

if TYPE_CHECKING:
    from fleet.work.checks import CheckResult

logger = logging.getLogger("fleet.work")

#: A `--check` command gets this long before it is killed (and counts as failed).
CHECK_TIMEOUT: Final = 600.0
ACTOR: Final = "fleet"


def _verify_stale(a: Assignment) -> float:
    """How long `reported` may last before another process takes the verification over."""
    return CHECK_TIMEOUT * (len(a.checks) + 1) + 60.0


def journal_with_turn_end(svc: Service, agent: str) -> list[dict[str, Any]]:
    """The agent's journal (with the generation before a compaction), and the end of its open turn
    folded in from Codex's rollout when the journal has none yet (a turn that failed, or whose Stop
    hook did not run), as status does: what an assignment's facts and tokens are read from."""
    events = svc.runtime.events(agent)
    if any(ev.get("event") == "compacted" for ev in events):
        # Compaction keeps only the last turn; an open assignment's earlier facts (a denial
        # not yet copied, an earlier turn's end) are in the previous generation.
        older = read_jsonl_tail(svc.runtime.agent_dir(agent) / PREVIOUS, READ_MAX)
        events = [*older, *events]
    spec = svc.config.agents.get(agent)
    end, _ = rollout_turn_end(read_journal(events), time.time(), spec.home if spec else None)
    return [*events, end] if end is not None else events


class _Agents:
    """Per-call cache of journals and process states (one tmux query for all agents)."""

    def __init__(self, svc: Service) -> None:
        self.svc = svc
        self._journals: dict[str, list[dict[str, Any]]] = {}
        self._states: dict[str, str] | None = None
        self._unknown = False
        self._restarts: dict[str, bool] = {}

    def journal(self, agent: str) -> list[dict[str, Any]]:
        """The agent's journal, with the end of its open turn folded in from Codex's rollout when the
        journal has none yet (a turn that failed, or whose Stop hook did not run), as status does."""
        if agent not in self._journals:
            self._journals[agent] = journal_with_turn_end(self.svc, agent)
        return self._journals[agent]

    def state(self, spec: AgentSpec) -> str:
        """`running`, `exited`, `stopped`, or `unknown` when tmux cannot be asked (then nothing fails
        an assignment for its agent's sake); `restarting` for an exited agent a running watchdog will
        restart (`fleet.watchdog.store.will_restart`, or the shared store's), whose assignment stays open for it."""
        if self._states is None:
            try:
                panes = self.svc.runtime.tmux.panes()
            except FleetError as exc:
                logger.warning("fleet: cannot read the agents' panes: %s", exc.message)
                self._states = {}
                self._unknown = True
                return "unknown"
            self._states = {name: "exited" if pane.dead else "running" for name, pane in panes.items()}
        if self._unknown:
            return "unknown"
        state = self._states.get(spec.name, "stopped")
        if state == "exited" and self._watchdog_restarts(spec.name):
            return "restarting"  # a running watchdog resumes its session and re-sends the lost turn
        return state

    def _watchdog_restarts(self, agent: str) -> bool:
        if agent not in self._restarts:  # one ledger read per agent and call
            self._restarts[agent] = watchdog_will_restart(self.svc, agent, self.svc.config.watchdog.every,
                                                          time.time())
        return self._restarts[agent]


def reconcile(svc: Service, agents: list[str] | None = None) -> list[dict[str, Any]]:
    """Advance every open assignment (of `agents`, or all) as far as Codex's signals allow; return
    the transitions this call made (`{"assignment", "agent", "from", "to", ...}`). An assignment's
    checks run in a detached verifier process, or in this one if `svc.background_checks` is off."""
    ledger = svc.ledger
    rows = ledger.assignments(open_only=True, limit=MAX_LIST)
    if agents is not None:
        wanted = set(agents)
        rows = [r for r in rows if r.agent in wanted]
    if not rows:
        return []
    now = time.time()
    cache = _Agents(svc)
    out: list[dict[str, Any]] = []
    for a in sorted(rows, key=lambda r: r.id):
        try:
            if a.state == "queued":
                out += _expire_queued(svc, a, now)
            else:
                out += _advance(svc, a, cache, now)
        except StateConflict:
            continue  # another process moved it first; it is theirs now
        except FleetError as exc:  # one assignment's trouble must not hide the others
            logger.warning("fleet: could not reconcile %s: %s", a.id, exc.message)
    return out


def _step(a: Assignment, to: str, **extra: Any) -> dict[str, Any]:
    return {"assignment": a.id, "agent": a.agent, "from": a.state, "to": to, **extra}


def _expire_queued(svc: Service, a: Assignment, now: float) -> list[dict[str, Any]]:
    if a.deadline is None or now <= a.deadline:
        return []
    if a.agent is not None:
        try:  # a queued assignment whose lease is live is being delivered right now: leave it
            if svc.leases.info(a.agent)["holder"] == assignment_holder(a.id):
                return []
        except FleetError:
            pass
    done = fail(svc, a.id, None, "deadline passed while queued", actor=ACTOR, expect=("queued",))
    return [_step(a, "failed", reason="deadline passed while queued")] if done else []


def assignment_tokens(a: Assignment, journal: list[dict[str, Any]], events: list[Event]) -> dict[str, int]:
    """The tokens of every turn the assignment caused: on its agent now (`journal`, from its `sent_at`),
    plus what its earlier agents spent before it was reassigned (the latest `reassigned` event's
    `usage`, which itself carries any earlier move's)."""
    own = assignment_usage(turn_usages(journal), _turns(a, events), a.sent_at, None)
    moved = next((e.details.get("usage") for e in reversed(events) if e.kind == "reassigned"), None)
    if not isinstance(moved, dict):
        return own
    return {k: own[k] + (v if isinstance(v := moved.get(k), int) and not isinstance(v, bool) and v >= 0 else 0)
            for k in own}


def _turns(a: Assignment, events: list[Event]) -> set[str]:
    turns = {a.turn_id} if a.turn_id else set()
    turns |= {str(e.details["turn_id"]) for e in events if e.kind == "delivered" and e.details.get("turn_id")}
    return turns


def _copy_hook_facts(svc: Service, a: Assignment, journal: list[dict[str, Any]], events: list[Event]) -> None:
    """Put the hook's denials and report asks for this assignment into the ledger, once each (keyed by
    turn and time; `annotate_once` makes that exact across processes)."""
    seen = {(e.kind, e.details.get("key")) for e in events}
    for ev in journal:
        if ev.get("assignment") != a.id:
            continue
        kind = {"tool_denied": "scope_denied", "report_asked": "report_asked"}.get(str(ev.get("event")))
        if kind is None:
            continue
        key = f"{ev.get('turn_id')}:{ev.get('time')}"
        if (kind, key) in seen:
            continue
        details = {"turn_id": ev.get("turn_id"), "at": ev.get("time")}
        for field in ("tool_name", "paths", "reason", "problems"):
            if field in ev:
                details[field] = ev[field]
        svc.ledger.annotate_once(a.id, kind, key, actor="hook", details=details)
        seen.add((kind, key))


def _advance(svc: Service, a: Assignment, cache: _Agents, now: float) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    spec = svc.config.agents.get(a.agent or "")
    if spec is None and svc.config.store is not None:
        return []  # the ledger is shared: an agent this host does not know is another host's to track
    if spec is None:
        done = fail(svc, a.id, a.agent, "its agent is no longer configured", actor=ACTOR,
                    expect=("sent", "working"))
        return [_step(a, "failed", reason="its agent is no longer configured")] if done else []
    if a.state == "reported":  # verified by whoever claimed it; after `verify_stale`, claim it again
        attempt = int((now - a.updated_at) // _verify_stale(a))
        return _verify_claimed(svc, a, spec, attempt) if attempt >= 1 else []
    journal = cache.journal(spec.name)
    events = svc.ledger.events_for(a.id)
    _copy_hook_facts(svc, a, journal, events)
    turns = _turns(a, events)
    progress = read_progress(journal, turns)
    usage = assignment_tokens(a, journal, events)
    if usage["turns"] and usage != a.usage:
        svc.ledger.set_usage(a.id, usage)
    for gap in progress.unreported:
        svc.ledger.annotate_once(a.id, "no_report", gap.turn_id, actor=ACTOR,
                                 details={"turn_id": gap.turn_id, "problems": list(gap.problems[:5])})
    while (decision := next_step(a.state, progress, cache.state(spec), a.deadline, now, DEADLINE_GRACE)) is not None:
        before = a.state
        if decision.to == "failed":
            if fail(svc, a.id, spec.name, decision.reason or "", actor=ACTOR, expect=(before,)):
                out.append(_step(a, "failed", reason=decision.reason))
            return out
        if decision.to == "reported" and progress.report is not None:
            a = svc.ledger.transition(
                a.id, "reported", actor=ACTOR, expect=before, report=progress.report.to_dict(),
                details={"turn_id": progress.report_turn, "status": progress.report.status,
                         "source": progress.report_source})
            out.append(_step(a, "reported", **{"from": before}))
            return out + _verify_claimed(svc, a, spec, 0)
        a = svc.ledger.transition(a.id, "working", actor=ACTOR, expect=before, details={"turn_id": a.turn_id})
        out.append(_step(a, "working", **{"from": before}))
    return out


def _verify_claimed(svc: Service, a: Assignment, spec: AgentSpec, attempt: int) -> list[dict[str, Any]]:
    """Claim verification attempt `attempt` of a reported assignment and carry it out: here, or by a
    detached verifier when it has checks and `svc.background_checks` is on. Nothing if another
    process claimed this attempt."""
    detach = svc.background_checks and bool(a.checks)
    claimed = svc.ledger.annotate_once(a.id, "verifying", str(attempt), actor=ACTOR,
                                       details={"attempt": attempt, "where": "verifier" if detach else "inline",
                                                "checks": len(a.checks)})
    if claimed is None:
        return []
    if detach:
        try:
            _spawn_verifier(svc, a.id)
            return []
        except OSError as exc:
            logger.warning("fleet: could not start a verifier for %s (%s); verifying here", a.id, exc)
    return [finish(svc, a, spec)]


#: Detached verifiers this process started; polled (reaped) at each new start, so a long-lived
#: process (the MCP server) leaves no zombies behind.
_verifiers: list[subprocess.Popen[bytes]] = []
VERIFY_LOG: Final = "verify.log"


def _spawn_verifier(svc: Service, assignment: str) -> int:
    """Start `python -P -m fleet.service.verifier CONFIG ID` in its own session, in `/`; return its pid."""
    _verifiers[:] = [p for p in _verifiers if p.poll() is None]
    log = os.open(svc.config.state_dir / VERIFY_LOG,
                  os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:  # -P and a fixed cwd: nothing is imported from the directory fleet happens to run in
        proc = subprocess.Popen([sys.executable, "-P", "-m", "fleet.service.verifier",
                                 str(svc.config.path.absolute()), assignment], cwd="/",
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                                close_fds=True)
    finally:
        os.close(log)
    _verifiers.append(proc)
    return proc.pid


def finish(svc: Service, a: Assignment, spec: AgentSpec) -> dict[str, Any]:
    """Verify a reported assignment and record the verdict; free its agent."""
    verification, states = verify_states(svc, a, spec)
    if verification["verdict"] == "verified" and a.branch is not None:
        _commit_verified(svc, a, spec, verification, states)
    verdict = verification["verdict"]
    reasons = "; ".join(r["message"] for r in verification["reasons"])
    done = svc.ledger.transition(a.id, verdict, actor=ACTOR, expect="reported", verification=verification,
                                 reason=reasons or None, details={"verdict": verdict, "reasons": reasons[:2000]})
    end_context(svc, spec.name, a.id)
    return _step(a, done.state, **{"from": "reported"}, reasons=reasons or None)


def _commit_verified(svc: Service, a: Assignment, spec: AgentSpec, verification: dict[str, Any],
                     states: Mapping[str, str | None]) -> None:
    """Commit a repo agent's verified work to its branch and record the commit (`committed`). If
    git refuses, or the files are no longer the `states` verification saw, the work is not on its
    branch as verified, so the verdict becomes rejected."""
    report, _ = validate_report(a.report)
    try:
        done = commit(spec, a.id, report.summary if report is not None else "", verification.get("changed", []),
                      states)
    except FleetError as exc:
        verification["verdict"] = "rejected"
        verification["reasons"] = [*verification.get("reasons", []), {
            "code": "not_committed", "message": f"fleet could not commit the verified work: {exc.message}",
            "paths": []}]
        return
    svc.ledger.annotate(a.id, "committed", actor=ACTOR, verified_commit=done,
                        details={"branch": a.branch, "commit": done})
    verification["commit"] = done


def verify_states(svc: Service, a: Assignment, spec: AgentSpec) -> tuple[dict[str, Any], dict[str, str | None]]:
    """The verification of a reported assignment: what changed in the cwd since the baseline, the
    checks' results, the verdict and its reasons; and the state the snapshot saw of each changed path
    (what a commit must hold). Never raises for the work's content: a baseline or snapshot that cannot
    be read rejects, saying why."""
    report, _ = validate_report(a.report)
    states: dict[str, str | None] = {}
    mode = "unknown"
    denied = [e.details for e in svc.ledger.events_for(a.id) if e.kind == "scope_denied"]
    try:
        baseline = svc.ledger.baseline(a.id)
        if not baseline:
            raise ValueError("no baseline was recorded at send time")
        mode = str(baseline.get("sandbox") or "unknown")
        seen = compare_with_baseline(baseline)
        states = seen.states
        checks = _run_sandboxed(a.checks, seen.cwd, spec, mode)
        result = verdict(report, seen.changed, tuple(baseline["write_paths"]), baseline["role"], checks,
                         seen.notes, cwd=seen.cwd).to_dict()
    except (SnapshotError, ValueError, KeyError, TypeError, OSError) as exc:
        result = {"verdict": "rejected", "changed": [], "checks": [], "notes": [],
                  "reasons": [{"code": "unverifiable", "message": f"fleet could not verify the work: {exc}",
                               "paths": []}]}
    _record_sandbox(result, mode)
    if denied:
        paths = sorted({p for d in denied for p in (d.get("paths") or [])})
        result["denied"] = {"count": len(denied), "paths": paths[:50]}
    return result, states


def _run_sandboxed(cmds: Sequence[str], cwd: str, spec: AgentSpec, sent_under: str) -> list[CheckResult]:
    """Run the checks in the agent's own Codex sandbox (`fleet.work.checks`) with the environment
    `check_env` builds: the agent's settings now, in the stricter of its mode now and `sent_under`
    (its mode at send) when the config changed in between. When no sandbox can be had, none runs
    and each fails saying why."""
    if not cmds:
        return []
    mode = stricter(effective_sandbox(spec), sent_under)
    try:
        argv = sandbox_argv(spec, mode)
    except FleetError as exc:
        return not_run(cmds, f"the agent's sandbox needs Codex: {exc.message}", mode)
    env = {**check_env(os.environ, spec.env), "CODEX_HOME": str(spec.home)}
    roots = tuple(str(p) for p in agent_roots(spec).roots) if mode == "workspace-write" else ()
    return run_checks(cmds, cwd, CHECK_TIMEOUT, Sandbox(argv=tuple(argv), env=env, mode=mode, roots=roots))


def _record_sandbox(result: dict[str, Any], mode: str) -> None:
    """Put the sandbox the work was done under in the verification; say what a verdict on
    full-access work is worth (a check that never ran in a sandbox is the verdict's own reason)."""
    result["sandbox"] = mode
    if mode == "danger-full-access":
        result["notes"] = [*result.get("notes", []), FULL_ACCESS_NOTE]
