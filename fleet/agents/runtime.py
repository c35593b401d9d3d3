"""Agent lifecycle on the fleet's tmux server: start, observe, send with a receipt, interrupt, stop.

Each agent is one tmux session named after it running the real Codex TUI. Its journal
(`<state_dir>/agents/<name>/events.jsonl`, see `journal`) is written by fleet (launched, ready, send,
receipt, turn_failed, turn_aborted, stopped) and by Codex's own hooks and notify (turn_started,
turn_completed, tools). A turn that ends without a Stop hook (model error, dropped stream, usage
limit, interrupt) is read from Codex's rollout while the journal shows it open, and written to the
journal by the next mutating call (`settle=True`); read-only calls fold it in memory and write nothing.
Nothing here checks leases or the operation lock: the service layer holds both before calling in.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, TypedDict

from fleet.config import AgentSpec, FleetConfig
from fleet.errors import (
    AgentBusy,
    AgentNotRunning,
    ConfigError,
    FleetError,
    HooksUntrusted,
    NotDelivered,
    ProjectConfigExposed,
    RequestIdConflict,
    StartFailed,
    Timeout,
    TmuxUnavailable,
)
from fleet.fsutil import ensure_dir, make_private_dirs

from . import codex, journal, lead, procs, reach
from .rollout import RateLimits
from .screen import EMPTY_COMPOSER, FIRST_RUN_MARKERS, TURN_START_FAILED
from .state import (
    Journal,
    LastTurn,
    Observation,
    PaneFacts,
    Verdict,
    classify,
    needs_screen,
    read_journal,
    turn_end_event,
)
from .text import DELIVERY_TIMEOUT, check_text
from .tmux import TmuxServer, socket_path

START_TIMEOUT: Final = 30.0
STOP_GRACE: Final = 5.0
#: States in which the composer takes a prompt (after a usage limit, "continue" is how to resume).
SENDABLE: Final = ("idle", "limited")
#: At most this many agents are stopped at once (each stop is mostly waiting on Codex to quit).
STOP_WORKERS: Final = 16
#: A prompt Codex failed to start a turn for (`TURN_START_FAILED`) reached no model and fired no
#: hook, so it is typed again this many times before the send gives up (the failure seen on 0.169
#: came once in ~90 sends to a fresh workspace-write agent; whether the retry then succeeds on a real
#: Codex is not measured yet: the failure could not be provoked on demand).
TURN_START_RETRIES: Final = 1
#: How long to wait for Codex to put a failed prompt back in the composer, and to clear it again.
COMPOSER_SETTLE: Final = 2.0


class AgentStatus(TypedDict):
    name: str
    state: str
    detail: str | None
    role: str
    sandbox: str
    pid: int | None
    home: str
    cwd: str
    since: float | None
    last_turn: LastTurn | None
    exit_status: int | None
    exit_signal: int | None
    resets_at: float | None
    rate_limits: RateLimits | None
    rate_limits_at: float | None
    approval: dict[str, Any] | None


class Receipt(TypedDict):
    agent: str
    delivered: bool
    turn_id: str
    session_id: str | None
    request_id: str | None
    chars: int
    sent_at: float
    delivered_at: float
    latency_ms: int
    duplicate: bool


class StartResult(TypedDict):
    """One agent's outcome in `up`: `started`, `running` (already was; left alone), `failed` (with
    `error`, a FleetError as a dict; nothing of it is left running), or `not_attempted` (with the
    reason in `error`: the call's deadline passed, or tmux failed for an earlier agent)."""

    agent: str
    result: Literal["started", "running", "failed", "not_attempted"]
    started: bool
    pid: int | None
    state: str | None
    error: dict[str, Any] | None


class StopResult(TypedDict):
    """One agent's outcome in `down`: `stopped`, `not_running` (no session; nothing to stop), or
    `failed` with `error`. `signal` says how the process ended when fleet had to signal it."""

    agent: str
    result: Literal["stopped", "not_running", "failed"]
    stopped: bool
    state: str | None
    exit_status: int | None
    exit_signal: int | None
    forced: bool
    signal: str | None
    error: dict[str, Any] | None


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.02) -> Any:
    """Poll `predicate` until it returns something truthy or `timeout` passes; return the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
        interval = min(interval * 1.5, 0.1)


@dataclass
class Runtime:
    config: FleetConfig

    def __post_init__(self) -> None:
        self._tmux: TmuxServer | None = None

    @property
    def tmux(self) -> TmuxServer:
        if self._tmux is None:
            name = self.config.tmux_socket
            self._tmux = TmuxServer(name, self.config.state_dir / "tmux.conf",
                                    socket_path(name, self.config.state_dir))
        return self._tmux

    # ---- paths and journal -------------------------------------------------------------------
    def agent_dir(self, name: str) -> Path:
        return self.config.state_dir / "agents" / name

    def journal_path(self, name: str) -> Path:
        return self.agent_dir(name) / journal.EVENTS

    def log(self, name: str, event: str, **fields: Any) -> None:
        ensure_dir(self.agent_dir(name))
        journal.append(self.agent_dir(name), {"time": round(time.time(), 3), "event": event, **fields})

    def events(self, name: str) -> list[dict[str, Any]]:
        return journal.read(self.agent_dir(name))

    # ---- observing ----------------------------------------------------------------------------
    def observe(self, spec: AgentSpec, pane: PaneFacts | None, *, settle: bool = False,
                now: float | None = None, events: list[dict[str, Any]] | None = None) -> tuple[Verdict, Journal]:
        """Classify the agent. While the journal shows a turn open, the rollout's end of that turn (if
        any) is folded in, and with `settle` also written to the journal (mutating callers only).
        `events`: the journal, when the caller has just read it."""
        now = time.time() if now is None else now
        events = self.events(spec.name) if events is None else events
        j = read_journal(events)
        if j.open_turn and j.transcript and pane is not None and not pane.dead:
            found = codex.read_rollout(Path(j.transcript))
            end = found.ends.get(j.open_turn)
            if end is not None:
                event = turn_end_event(end)
                event["time"] = round(max(end.at or now, j.open_turn_at or 0.0), 3)
                j = read_journal([*events, event])
                if settle:
                    ensure_dir(self.agent_dir(spec.name))
                    journal.append(self.agent_dir(spec.name), event)
            elif found.rate_limits is not None and found.rate_limits != j.rate_limits:
                j = j._replace(rate_limits=found.rate_limits, rate_limits_at=now)
        screen = self.tmux.capture(spec.name) if needs_screen(pane, j) else None
        return classify(Observation(pane, j, screen, now)), j

    def status(self, specs: list[AgentSpec]) -> list[AgentStatus]:
        panes = self.tmux.panes()
        out = []
        now = time.time()
        for spec in specs:
            pane = panes.get(spec.name)
            verdict, j = self.observe(spec, pane, now=now)
            out.append(AgentStatus(
                name=spec.name, state=verdict.state, detail=verdict.detail, role=spec.role,
                sandbox=spec.sandbox, pid=pane.pid if pane and not pane.dead else None,
                home=str(spec.home), cwd=str(spec.cwd), since=verdict.since, last_turn=j.last_turn,
                exit_status=pane.dead_status if pane and pane.dead else j.exit_status,
                exit_signal=pane.dead_signal if pane and pane.dead else None,
                resets_at=verdict.resets_at, rate_limits=j.rate_limits, rate_limits_at=j.rate_limits_at,
                approval=_approval(j.approval) if verdict.state == "waiting_approval" else None,
            ))
        return out

    def state_of(self, spec: AgentSpec, *, settle: bool = False) -> Verdict:
        return self.observe(spec, self.tmux.panes().get(spec.name), settle=settle)[0]

    def server_exposure(self, specs: list[AgentSpec]) -> list[str]:
        """Plain warnings for every way one of `specs` can reach this fleet's tmux server (`reach`)."""
        socket = self.tmux.socket or Path("/tmp") / f"tmux-{os.getuid()}" / self.tmux.socket_name
        users = {s.name: codex.user_config(s.home) for s in specs}
        fix = ("point TMUX_TMPDIR outside every agent's writable roots, or unset it (the socket then lives in "
               "the state dir)") if os.environ.get("TMUX_TMPDIR") else "move the state dir outside them"
        return reach.exposure(specs, socket, users, fix)

    # ---- start --------------------------------------------------------------------------------
    def prepare(self, spec: AgentSpec, resume: str | None = None) -> str:
        """Check what a start needs and return the launch command (`codex resume <resume>` when a
        session id is given); raises before anything starts."""
        if not spec.cwd.is_dir():
            raise ConfigError(
                f"{self.config.path}: $.agents.{spec.name}.cwd: {spec.cwd} is not an existing directory.",
                hint="Create the directory or fix `cwd` for this agent.", agent=spec.name,
            )
        if spec.home.exists() and not spec.home.is_dir():
            raise ConfigError(
                f"{self.config.path}: $.agents.{spec.name}.home: {spec.home} exists and is not a directory.",
                hint="Point `home` at a Codex home directory (it is created if missing).", agent=spec.name,
            )
        writers = reach.project_config_writers(spec, self.config.agents.values())
        if writers:
            raise ProjectConfigExposed(
                f"Agent {spec.name!r}: its cwd has a .codex/ folder ({spec.cwd / '.codex'}) that "
                f"{', '.join(repr(w) for w in writers)} can write; fleet trusts {spec.name!r}'s cwd, so Codex would "
                "load that folder's config, and its MCP servers run outside every sandbox.",
                hint="Give the agents cwds that do not nest (and none under /tmp), make the writers read-only, "
                "or remove the .codex/ folder if you did not put it there.", agent=spec.name, writers=writers)
        untrusted = codex.untrusted_hooks(spec.home)
        if untrusted:
            raise HooksUntrusted(
                f"Agent {spec.name!r}: its Codex home {spec.home} has {len(untrusted)} hook(s) nobody trusted "
                f"({', '.join(untrusted[:3])}{', ...' if len(untrusted) > 3 else ''}); Codex would stop at "
                "\"Hooks need review\".",
                hint=f"Review them once by hand (`CODEX_HOME={spec.home} codex`, then \"Trust all\" or remove "
                "them); fleet trusts only its own hooks, never yours on your behalf.",
                agent=spec.name, hooks=untrusted,
            )
        extra = lead.overrides(spec, self.config.path, self.config.state_dir,
                               auto_approve_agent_approvals=self.config.lead_auto_approve_agent_approvals)
        command = codex.launch_command(spec, self.agent_dir(spec.name), extra, resume=resume,
                                       approval_hold=self.config.watchdog.approval_timeout)
        ensure_dir(self.agent_dir(spec.name))
        try:
            make_private_dirs(spec.home)
        except OSError as exc:
            raise ConfigError(f"{self.config.path}: $.agents.{spec.name}.home: cannot create {spec.home}: "
                              f"{exc.strerror or exc}.", hint="Check the path and its permissions.",
                              agent=spec.name) from exc
        lead.ensure_plugin(spec)  # a lead's skills come with fleet's plugin
        return command

    def launch(self, spec: AgentSpec, command: str, pane: PaneFacts | None = None) -> int | None:
        """Create the agent's session and journal the launch with the process's identity (pid and
        start time, so that only this process is ever signalled). A dead session kept by
        remain-on-exit is replaced; a live one never is (`agent_busy`). Returns the pid."""
        name = spec.name
        pane = pane if pane is not None else self.tmux.panes().get(name)
        if pane is not None and not pane.dead:
            raise AgentBusy(f"Agent {name!r} is already running (pid {pane.pid}); it was not started again.",
                            hint=f"`fleet down {name}` first to restart it.", agent=name)
        if pane is not None:
            self.tmux.kill_session(name)
        self.tmux.write_config()
        pid = self.tmux.new_session(name, command, spec.cwd, {"FLEET_AGENT": name})
        self._launched(spec, pid)
        return pid

    def _launched(self, spec: AgentSpec, pid: int | None, **fields: Any) -> None:
        """Journal a launch with the process's identity, and attach the raw-log copier."""
        name = spec.name
        ident = procs.identify(pid) if pid else None
        self.log(name, "launched", home=str(spec.home), cwd=str(spec.cwd), role=spec.role, pid=pid,
                 pid_start=ident.start if ident else None, boot=ident.boot if ident else None, **fields)
        try:
            self.tmux.pipe_to(name, codex.rawlog_command(self.agent_dir(name) / "raw.log"))
        except FleetError as exc:  # the raw log is a convenience; readiness decides whether it started
            self.log(name, "rawlog_failed", error=exc.to_dict())

    def start_many(self, specs: list[AgentSpec], deadline: float) -> dict[str, StartResult]:
        """Start every agent that is not running, then wait for all of them at once, until the
        monotonic `deadline`. Each agent gets its own result; a failed start leaves nothing running.

        What a caller can fix (a missing cwd, no Codex binary) raises before anything starts, so a
        bad config never half-starts a fleet; what goes wrong after that is per agent.
        """
        results: dict[str, StartResult] = {}
        panes = self.tmux.panes()
        todo = [s for s in specs if (p := panes.get(s.name)) is None or p.dead]
        commands = {s.name: self.prepare(s) for s in todo}
        fresh: list[AgentSpec] = []
        blocked: FleetError | None = None
        for spec in specs:
            name = spec.name
            pane = panes.get(name)
            if name not in commands:
                results[name] = _start_result(name, "running", pid=pane.pid if pane else None,
                                              state=self.observe(spec, pane)[0].state)
                continue
            if blocked is None and time.monotonic() >= deadline:
                blocked = Timeout("The call's timeout passed before this agent could be started.",
                                  hint="Raise --timeout, or start fewer agents at once.", agent=name)
            if blocked is not None:
                results[name] = _start_result(name, "not_attempted", error=blocked.to_dict())
                continue
            try:
                self.launch(spec, commands[name], pane)
            except TmuxUnavailable as exc:
                results[name] = _start_result(name, "failed", error=exc.to_dict())
                blocked = exc  # the next launch would fail the same way
                continue
            except FleetError as exc:
                results[name] = _start_result(name, "failed", error=exc.to_dict())
                continue
            fresh.append(spec)
        verdicts = self._await_ready(fresh, deadline)
        panes = self.tmux.panes() if fresh else panes
        for spec in fresh:
            verdict = verdicts.get(spec.name)
            if verdict is not None and verdict.state == "idle":
                self.log(spec.name, "ready")
                pane = panes.get(spec.name)
                results[spec.name] = _start_result(spec.name, "started", pid=pane.pid if pane else None,
                                                   state="idle")
            else:
                error = self._start_failed(spec, verdict)
                results[spec.name] = _start_result(spec.name, "failed", error=error.to_dict())
        return results

    def await_ready(self, spec: AgentSpec, timeout: float = START_TIMEOUT) -> Verdict:
        """Wait until one launched agent is ready for a prompt; on failure kill its session and raise."""
        verdict = self._await_ready([spec], time.monotonic() + timeout).get(spec.name)
        if verdict is not None and verdict.state == "idle":
            self.log(spec.name, "ready")
            return verdict
        raise self._start_failed(spec, verdict)

    def _await_ready(self, specs: list[AgentSpec], deadline: float) -> dict[str, Verdict]:
        """Poll every launching agent with one pane listing per round until each is past `starting`
        (or shows a first-run screen that needs a person) or the deadline passes."""
        done: dict[str, Verdict] = {}
        pending = list(specs)
        pause = 0.05
        while pending:
            panes = self.tmux.panes()
            for spec in list(pending):
                verdict = self.observe(spec, panes.get(spec.name))[0]
                done[spec.name] = verdict
                if verdict.state != "starting" or (verdict.detail or "").startswith("a first-run screen"):
                    pending.remove(spec)
            if not pending or time.monotonic() >= deadline:
                break
            time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = min(pause * 1.5, 0.1)
        return done

    def _start_failed(self, spec: AgentSpec, verdict: Verdict | None) -> StartFailed:
        """Kill a start that did not become ready and describe why (with its last screen lines)."""
        name = spec.name
        screen = self.tmux.capture(name, lines=15).strip().splitlines()[-6:]
        detail = verdict.detail if verdict is not None else None
        self._kill(name, reason="start_failed")
        why = f"it is {verdict.state}" if verdict is not None and verdict.state != "starting" else (
            "it stopped at a first-run screen" if detail else "it was not ready before the timeout")
        hint = "Check that `codex` runs by hand with this home and cwd; its last screen lines are in `screen`."
        if detail and "Hooks need review" in detail:
            hint = (f"Codex asks for a review of hooks configured in {spec.home} (fleet trusts only its own): "
                    f"run `CODEX_HOME={spec.home} codex` once in {spec.cwd}, review them, then start it again.")
        elif detail and codex.project_trust(spec) is None:
            hint = (f"Your Codex config ({spec.home / 'config.toml'}) marks {spec.cwd} or its repository "
                    "untrusted, and fleet never overturns that: remove that `[projects]` entry or trust the "
                    "folder yourself, then start it again.")
        elif detail:
            hint = ("Codex shows a screen fleet does not answer (its lines are in `screen`): run "
                    f"`CODEX_HOME={spec.home} codex -C {spec.cwd}` once by hand to see and settle it, then start "
                    "it again.")
        return StartFailed(f"Agent {name!r} did not start: {why}{' (' + detail + ')' if detail else ''}.",
                           hint=hint, agent=name, screen=screen)

    def restart(self, spec: AgentSpec, session_id: str | None, timeout: float = START_TIMEOUT) -> dict[str, Any]:
        """Restart the agent in its existing tmux session with `codex resume <session_id>` (a fresh
        Codex when no session is known yet), killing whatever runs there, and wait until it is ready.
        Refuses a stopped agent: a restart never creates a session (or a tmux server)."""
        name = spec.name
        pane = self.tmux.panes().get(name)
        if pane is None:
            raise AgentNotRunning(f"Agent {name!r} has no session to restart (it is stopped).",
                                  hint=f"Start it with `fleet up {name}`.", agent=name)
        command = self.prepare(spec, resume=session_id)
        self.tmux.respawn(name, command)
        fresh = self.tmux.panes().get(name)
        self._launched(spec, fresh.pid if fresh is not None and not fresh.dead else None, resumed=session_id,
                       previous_pid=pane.pid)
        verdict = self.await_ready(spec, timeout)
        new = self.tmux.panes().get(name)
        return {"agent": name, "resumed": session_id, "pid": new.pid if new else None, "state": verdict.state}

    # ---- send ---------------------------------------------------------------------------------
    def send(self, spec: AgentSpec, text: str, request_id: str | None = None,
             timeout: float = DELIVERY_TIMEOUT, holder: str | None = None) -> Receipt:
        check_text(text)
        name = spec.name
        sha = journal.text_sha(text)
        events = self.events(name)  # read once: the request lookup and the observation share it
        if request_id:
            # kept across compactions for `journal.REQUEST_TTL`; the service also keeps ids in the ledger
            earlier = journal.find_request(events, request_id)
            if earlier is not None:
                if earlier["sha"] is not None and earlier["sha"] != sha:
                    raise RequestIdConflict(
                        f"Request id {request_id!r} was already used for a different text to {name!r}; "
                        "nothing was sent.",
                        hint="Use a new request id for a new prompt; reuse an id only to retry the same text.",
                        agent=name, request_id=request_id,
                    )
                if earlier["delivery"] is not None:
                    return self._receipt(name, earlier["delivery"], text, request_id, earlier["sent_at"],
                                         duplicate=True)
        pane = self.tmux.panes().get(name)
        verdict, j = self.observe(spec, pane, settle=True, events=events)
        if verdict.state in ("stopped", "exited"):
            raise AgentNotRunning(
                f"Agent {name!r} is {verdict.state}; nothing was sent.",
                hint=f"Start it with `fleet up {name}`.", agent=name, state=verdict.state,
            )
        if pane is not None and (j.launched_at is None or (j.pid is not None and pane.pid is not None
                                                           and j.pid != pane.pid)):
            # Not launched by this state dir's journal: started by hand on the fleet's server, or the
            # journal was reset under a live session. Its hooks may write elsewhere: never drive it.
            raise AgentBusy(
                f"Agent {name!r} has a session on tmux server {str(self.tmux.socket)!r} that this fleet "
                f"({self.config.state_dir}) did not start (pid {pane.pid}); nothing was sent.",
                hint=f"Stop it (`tmux {self.tmux.where} kill-session -t ={name}`), then `fleet up {name}`.",
                agent=name, pid=pane.pid, launched_pid=j.pid,
            )
        if verdict.state not in SENDABLE:
            raise AgentBusy(
                f"Agent {name!r} is {verdict.state}; a prompt now would steer or be lost, so nothing was sent.",
                hint="Wait until it is idle (`fleet status`), or `fleet interrupt` it first.",
                agent=name, state=verdict.state,
            )
        screen = self.tmux.capture(name)
        shown = next((m for m in FIRST_RUN_MARKERS if m in screen), None)
        if shown is not None:
            raise AgentBusy(f"Agent {name!r} shows a screen that needs a person ({shown!r}); nothing was sent.",
                            hint=f"Attach with `fleet attach {name}` and answer it, then retry.", agent=name)
        if EMPTY_COMPOSER not in screen:
            raise AgentBusy(
                f"Agent {name!r} has text in its composer (someone may be typing); nothing was sent.",
                hint=f"Attach with `fleet attach {name}` and clear the composer, then retry.", agent=name,
            )
        sent_at = time.time()
        send_id = os.urandom(8).hex()  # the journal position Codex's record must come after
        self.log(name, "send", request_id=request_id, chars=len(text), text_sha=sha, sent_at=round(sent_at, 3),
                 holder=holder, send_id=send_id)
        deadline = time.monotonic() + timeout
        attempt = 0
        while True:
            outcome = self._type_and_wait(name, text, send_id, screen, deadline)
            if not isinstance(outcome, str):
                break
            # Codex refused to start the turn: nothing reached the model, no hook fired, and the
            # text is back in the composer. Clear it (a later Enter would send it unasked), then
            # type it again while retries and time are left.
            cleared = self._clear_failed_prompt(name)
            self.log(name, "turn_start_failed", request_id=request_id, text_sha=sha, reason=outcome,
                     attempt=attempt + 1, cleared=cleared)
            if attempt >= TURN_START_RETRIES or not cleared or time.monotonic() >= deadline:
                raise NotDelivered(
                    f"Codex could not start a turn for the prompt to {name!r}: {outcome}; nothing reached "
                    "the model.",
                    hint="Retry with the same request_id; if it keeps failing, start Codex by hand with this "
                    "agent's home, cwd and sandbox and look at the message (`fleet tail` shows it)."
                    + ("" if cleared else " The prompt may still be in the composer: clear it first."),
                    agent=name, request_id=request_id, reason=outcome, attempts=attempt + 1,
                    composer_cleared=cleared,
                )
            attempt += 1
            screen = self.tmux.capture(name)
        if outcome is None:
            self.log(name, "not_delivered", request_id=request_id, text_sha=sha)
            raise NotDelivered(
                f"Codex did not record the prompt to {name!r} within {timeout:.0f} s.",
                hint="Check `fleet tail` for what the agent shows; "
                "retry with the same request_id to avoid a duplicate.",
                agent=name, request_id=request_id,
            )
        found = outcome
        delivery = journal.Delivery(turn_id=found.get("turn_id"), session_id=found.get("session_id"),
                                    delivered_at=float(found.get("time", time.time())))
        return self._receipt(name, delivery, text, request_id, sent_at, duplicate=False)

    def _type_and_wait(self, name: str, text: str, send_id: str, screen: str,
                       deadline: float) -> dict[str, Any] | str | None:
        """Paste `text`, press Enter and wait until the monotonic `deadline` for Codex to record it.
        Returns the journal's `turn_started` event, the reason Codex gave for not starting the turn
        (a `TURN_START_FAILED` notice newer than `screen`, the screen before typing), or None."""
        seen = screen.count(TURN_START_FAILED)
        self.tmux.paste(name, text.replace("\r\n", "\n").replace("\r", "\n"))
        self.tmux.send_keys(name, "Enter")

        def outcome() -> dict[str, Any] | str | None:
            found = self._find_turn(name, text, send_id)
            if found is not None:
                return found
            now = self.tmux.capture(name)
            if now.count(TURN_START_FAILED) > seen:
                return self._find_turn(name, text, send_id) or _start_failure(now)
            return None

        result: dict[str, Any] | str | None = wait_until(outcome, max(0.0, deadline - time.monotonic()))
        return result

    def _clear_failed_prompt(self, name: str) -> bool:
        """Empty the composer Codex refilled after a failed turn start; True once it shows empty.

        Ctrl-C clears a composer that holds text; on an empty one it would quit Codex, so it is
        pressed only while the composer is seen to hold text."""
        if wait_until(lambda: EMPTY_COMPOSER not in self.tmux.capture(name), COMPOSER_SETTLE):
            self.tmux.send_keys(name, "C-c")
        return bool(wait_until(lambda: EMPTY_COMPOSER in self.tmux.capture(name), COMPOSER_SETTLE))

    def _find_turn(self, name: str, text: str, send_id: str) -> dict[str, Any] | None:
        """The first turn Codex started with exactly `text` after the `send` event `send_id`, by journal
        position (a clock stepped back cannot hide it). When a compaction dropped that send since, it
        is in the previous generation, and everything appended after the new marker is later still."""
        events = self.events(name)
        found, anchored = journal.turn_after_send(events, send_id, text)
        if anchored:
            return found
        older = journal.read_previous(self.agent_dir(name))
        return journal.turn_after_send([*older, *journal.since_compaction(events)], send_id, text)[0]

    def _receipt(self, name: str, delivery: journal.Delivery, text: str, request_id: str | None,
                 sent_at: float, duplicate: bool) -> Receipt:
        delivered_at = float(delivery["delivered_at"])
        receipt = Receipt(
            agent=name, delivered=True, turn_id=str(delivery["turn_id"]), session_id=delivery["session_id"],
            request_id=request_id, chars=len(text), sent_at=sent_at, delivered_at=delivered_at,
            latency_ms=max(0, int((delivered_at - sent_at) * 1000)), duplicate=duplicate,
        )
        if not duplicate:
            self.log(name, "receipt", request_id=request_id, turn_id=receipt["turn_id"],
                     session_id=receipt["session_id"], sent_at=sent_at, delivered_at=delivered_at)
        return receipt

    # ---- interrupt / stop ----------------------------------------------------------------------
    def interrupt(self, spec: AgentSpec, timeout: float = 5.0) -> dict[str, Any]:
        name = spec.name
        verdict, j = self.observe(spec, self.tmux.panes().get(name), settle=True)
        if verdict.state in ("stopped", "exited"):
            raise AgentNotRunning(f"Agent {name!r} is {verdict.state}.", hint=f"`fleet up {name}` starts it.",
                                  agent=name)
        if verdict.state not in ("working", "waiting_approval") or j.open_turn is None:
            return {"agent": name, "interrupted": False, "turn_id": None, "state": verdict.state}
        turn = j.open_turn
        self.tmux.send_keys(name, "Escape")

        def ended() -> bool:
            return self.observe(spec, self.tmux.panes().get(name), settle=True)[1].open_turn != turn

        if not wait_until(ended, timeout):
            raise NotDelivered(f"Agent {name!r} did not confirm the interrupt within {timeout:.0f} s.",
                               hint="Retry, or `fleet down` it.", agent=name, turn_id=turn)
        after = self.state_of(spec)
        return {"agent": name, "interrupted": True, "turn_id": turn, "state": after.state}

    def stop(self, spec: AgentSpec, grace: float = STOP_GRACE) -> StopResult:
        """Quit Codex the way a person would (Esc, then Ctrl-C on an empty composer), kill it if it
        must. Only the process fleet launched is ever signalled; `stopped` is always journaled once
        the session is killed, whatever signalling found."""
        name = spec.name
        pane = self.tmux.panes().get(name)
        j = read_journal(self.events(name))
        ident = _identity(j)
        if ident is None and pane is not None and not pane.dead:
            ident = procs.identify(pane.pid)  # launched before identities were journaled: tmux vouches now
        if pane is None:
            outcome = None
            if j.launched_at is not None and j.stopped_at is None:  # the session vanished under us
                outcome = self._kill(name, "no_session", ident)
            return StopResult(agent=name, result="not_running", stopped=False, state="stopped", exit_status=None,
                              exit_signal=None, forced=False, signal=outcome, error=None)
        forced = False
        if not pane.dead:
            try:
                self.tmux.send_keys(name, "Escape")
                for _ in range(3):
                    self.tmux.send_keys(name, "C-c")
                    if wait_until(lambda: self._dead(name), grace / 3):
                        break
                else:
                    forced = True
            except AgentNotRunning:
                pass  # it quit (or was killed) between our checks
        # tmux records the exit status a moment after the pane dies
        final = wait_until(lambda: (p := self.tmux.panes().get(name)) and p.dead and
                           (p.dead_status is not None or p.dead_signal is not None) and p, 0.5)
        final = final or self.tmux.panes().get(name)
        status = final.dead_status if final and final.dead else None
        sig = final.dead_signal if final and final.dead else None
        outcome = self._kill(name, "stopped", ident, exit_status=status, exit_signal=sig, forced=forced)
        return StopResult(agent=name, result="stopped", stopped=True, state="stopped", exit_status=status,
                          exit_signal=sig, forced=forced, signal=outcome, error=None)

    def stop_many(self, specs: list[AgentSpec]) -> list[StopResult]:
        """Stop agents concurrently (each waits mostly on its own Codex); one result per agent, in order."""
        def one(spec: AgentSpec) -> StopResult:
            try:
                return self.stop(spec)
            except FleetError as exc:
                return StopResult(agent=spec.name, result="failed", stopped=False, state=None, exit_status=None,
                                  exit_signal=None, forced=False, signal=None, error=exc.to_dict())

        if len(specs) <= 1:
            return [one(s) for s in specs]
        from concurrent.futures import ThreadPoolExecutor  # ~4 ms with logging: only when needed

        with ThreadPoolExecutor(max_workers=min(len(specs), STOP_WORKERS), thread_name_prefix="fleet-stop") as pool:
            return list(pool.map(one, specs))

    def _dead(self, name: str) -> bool:
        pane = self.tmux.panes().get(name)
        return pane is None or pane.dead

    def _kill(self, name: str, reason: str, ident: procs.ProcessId | None = None, **fields: Any) -> str | None:
        """Kill the session, make sure the launched process is gone, and journal `stopped` (always,
        even when signalling fails). Returns what signalling found (see `procs.terminate`)."""
        if ident is None:
            ident = _identity(read_journal(self.events(name)))
        outcome: str | None = None
        try:
            self.tmux.kill_session(name)
            if ident is not None:
                try:
                    outcome = procs.terminate(ident)
                except OSError as exc:
                    outcome = f"error: {exc.strerror or exc}"
        finally:
            self.log(name, "stopped", reason=reason, signal=outcome, **fields)
        return outcome

    # ---- screens -------------------------------------------------------------------------------
    def tail(self, spec: AgentSpec, lines: int) -> dict[str, Any]:
        pane = self.tmux.panes().get(spec.name)
        if pane is None:
            raise AgentNotRunning(f"Agent {spec.name!r} has no session (it is stopped).",
                                  hint="The journal keeps its history: see events.jsonl in its state dir.",
                                  agent=spec.name)
        text = self.tmux.capture(spec.name, lines=lines).rstrip("\n")
        out = text.splitlines()[-lines:]
        return {"agent": spec.name, "lines": out, "dead": pane.dead}


def _start_failure(screen: str) -> str:
    """Codex's reason for the newest failed turn start on `screen` (its last such notice)."""
    line = [ln for ln in screen.splitlines() if TURN_START_FAILED in ln][-1]
    reason = line.split(TURN_START_FAILED, 1)[1].strip().lstrip(":").strip()
    return reason or "no reason shown"


def _identity(j: Journal) -> procs.ProcessId | None:
    """The launched process's identity as journaled at its launch."""
    if not j.pid or j.pid_start is None:
        return None
    return procs.ProcessId(j.pid, j.pid_start, j.pid_boot or "")


def _approval(raw: dict[str, Any] | None) -> dict[str, Any] | None:
    """What status shows of the approval the agent waits on: the command and the model's reason (a long
    command cut, with `command_truncated` and its full `command_length`)."""
    if raw is None:
        return None
    return {k: raw.get(k) for k in ("request", "tool", "command", "justification", "held", "hold_until")} | {
        "since": raw.get("time"), "command_truncated": raw.get("command_truncated") is True,
        "command_length": raw.get("command_length", len(str(raw.get("command") or "")))}


def _start_result(agent: str, result: Literal["started", "running", "failed", "not_attempted"], *,
                  pid: int | None = None, state: str | None = None,
                  error: dict[str, Any] | None = None) -> StartResult:
    return StartResult(agent=agent, result=result, started=result == "started", pid=pid, state=state, error=error)
