"""Agent lifecycle on the fleet's tmux server: start, observe, send with a receipt, interrupt, stop.

Each agent is one tmux session named after it running the real Codex TUI. Its journal
(`<state_dir>/agents/<name>/events.jsonl`) is written by fleet (launched, ready, send, receipt,
turn_aborted, stopped) and by Codex's own hooks and notify (turn_started, turn_completed, tools).
Nothing here checks leases: the service layer does that before calling in.
"""

from __future__ import annotations

import hashlib
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypedDict

from fleet.config import AgentSpec, FleetConfig
from fleet.errors import AgentBusy, AgentNotRunning, ConfigError, NotDelivered, StartFailed
from fleet.fsutil import append_jsonl, ensure_dir, read_jsonl_tail

from . import codex
from .screen import EMPTY_COMPOSER
from .state import Journal, LastTurn, Observation, PaneFacts, Verdict, classify, needs_screen, read_journal
from .text import check_text
from .text import normalize as _normalize
from .tmux import TmuxServer

#: How long a send waits for Codex to record the prompt before reporting `not_delivered`.
DELIVERY_TIMEOUT: Final = 10.0
START_TIMEOUT: Final = 30.0
STOP_GRACE: Final = 5.0


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
            self._tmux = TmuxServer(f"fleet-{self.config.name}", self.config.state_dir / "tmux.conf")
        return self._tmux

    # ---- paths and journal -------------------------------------------------------------------
    def agent_dir(self, name: str) -> Path:
        return self.config.state_dir / "agents" / name

    def journal_path(self, name: str) -> Path:
        return self.agent_dir(name) / "events.jsonl"

    def log(self, name: str, event: str, **fields: Any) -> None:
        ensure_dir(self.agent_dir(name))
        append_jsonl(self.journal_path(name), {"time": round(time.time(), 3), "event": event, **fields})

    def events(self, name: str) -> list[dict[str, Any]]:
        return read_jsonl_tail(self.journal_path(name))

    # ---- observing ----------------------------------------------------------------------------
    def observe(self, spec: AgentSpec, pane: PaneFacts | None) -> tuple[Verdict, Journal, frozenset[str]]:
        journal = read_journal(self.events(spec.name))
        aborted: frozenset[str] = frozenset()
        if journal.open_turn and journal.transcript and pane is not None and not pane.dead:
            aborted = frozenset(codex.find_aborted_turns(Path(journal.transcript)))
        screen = self.tmux.capture(spec.name) if needs_screen(pane, journal, aborted) else None
        return classify(Observation(pane, journal, aborted, screen)), journal, aborted

    def status(self, specs: list[AgentSpec]) -> list[AgentStatus]:
        panes = self.tmux.panes()
        out = []
        for spec in specs:
            pane = panes.get(spec.name)
            verdict, journal, aborted = self.observe(spec, pane)
            last = journal.last_turn
            if last and last["outcome"] == "running" and last["turn_id"] in aborted:
                last = LastTurn(**{**last, "outcome": "aborted"})
            out.append(AgentStatus(
                name=spec.name, state=verdict.state, detail=verdict.detail, role=spec.role,
                sandbox=spec.sandbox, pid=pane.pid if pane and not pane.dead else None,
                home=str(spec.home), cwd=str(spec.cwd), since=verdict.since, last_turn=last,
                exit_status=pane.dead_status if pane and pane.dead else journal.exit_status,
                exit_signal=pane.dead_signal if pane and pane.dead else None,
            ))
        return out

    def state_of(self, spec: AgentSpec) -> Verdict:
        return self.observe(spec, self.tmux.panes().get(spec.name))[0]

    # ---- start --------------------------------------------------------------------------------
    def prepare(self, spec: AgentSpec) -> str:
        """Check what a start needs and return the launch command; raises before anything starts."""
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
        command = codex.launch_command(spec, self.agent_dir(spec.name))
        ensure_dir(self.agent_dir(spec.name))
        spec.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        return command

    def launch(self, spec: AgentSpec, command: str) -> None:
        """Create the agent's session (replacing a dead one) and journal the launch."""
        pane = self.tmux.panes().get(spec.name)
        if pane is not None:
            self.tmux.kill_session(spec.name)  # a dead pane kept by remain-on-exit
        self.log(spec.name, "launched", home=str(spec.home), cwd=str(spec.cwd), role=spec.role)
        self.tmux.new_session(spec.name, command, spec.cwd, {"FLEET_AGENT": spec.name})
        self.tmux.pipe_to(spec.name, codex.rawlog_command(self.agent_dir(spec.name) / "raw.log"))

    def await_ready(self, spec: AgentSpec, timeout: float = START_TIMEOUT) -> Verdict:
        """Wait until the agent is ready for a prompt; on failure kill its session and raise."""
        def check() -> Verdict | None:
            verdict = self.state_of(spec)
            return verdict if verdict.state not in ("starting",) else None

        verdict: Verdict | None = wait_until(check, timeout, interval=0.05)
        if verdict is not None and verdict.state == "idle":
            self.log(spec.name, "ready")
            return verdict
        screen = self.tmux.capture(spec.name, lines=15).strip().splitlines()[-6:]
        detail = verdict.detail if verdict else self.state_of(spec).detail
        self._kill(spec.name, reason="start_failed")
        why = f"it {verdict.state}" if verdict else f"it was not ready within {timeout:.0f} s"
        raise StartFailed(
            f"Agent {spec.name!r} did not start: {why}{' (' + detail + ')' if detail else ''}.",
            hint="Check `codex` runs by hand with this home and cwd; last screen lines are in `screen`.",
            agent=spec.name, screen=screen,
        )

    # ---- send ---------------------------------------------------------------------------------
    def send(self, spec: AgentSpec, text: str, request_id: str | None = None,
             timeout: float = DELIVERY_TIMEOUT, holder: str | None = None) -> Receipt:
        check_text(text)
        name = spec.name
        if request_id:
            earlier = self._earlier_send(name, request_id, text)
            if earlier is not None:
                return earlier
        verdict = self.state_of(spec)
        if verdict.state in ("stopped", "exited"):
            raise AgentNotRunning(
                f"Agent {name!r} is {verdict.state}; nothing was sent.",
                hint=f"Start it with `fleet up {name}`.", agent=name, state=verdict.state,
            )
        if verdict.state != "idle":
            raise AgentBusy(
                f"Agent {name!r} is {verdict.state}; a prompt now would steer or be lost, so nothing was sent.",
                hint="Wait until it is idle (`fleet status`), or `fleet interrupt` it first.",
                agent=name, state=verdict.state,
            )
        if EMPTY_COMPOSER not in self.tmux.capture(name):
            raise AgentBusy(
                f"Agent {name!r} has text in its composer (someone may be typing); nothing was sent.",
                hint=f"Attach with `fleet attach {name}` and clear the composer, then retry.", agent=name,
            )
        sent_at = time.time()
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        self.log(name, "send", request_id=request_id, chars=len(text), sha=digest, holder=holder)
        self.tmux.paste(name, text.replace("\r\n", "\n").replace("\r", "\n"))
        self.tmux.send_keys(name, "Enter")
        found = wait_until(lambda: self._find_turn(name, text, sent_at), timeout)
        if not found:
            self.log(name, "not_delivered", request_id=request_id, sha=digest)
            raise NotDelivered(
                f"Codex did not record the prompt to {name!r} within {timeout:.0f} s.",
                hint="Check `fleet tail` for what the agent shows; "
                "retry with the same request_id to avoid a duplicate.",
                agent=name, request_id=request_id,
            )
        return self._receipt(name, found, text, request_id, sent_at, duplicate=False)

    def _find_turn(self, name: str, text: str, since: float) -> dict[str, Any] | None:
        """The first turn Codex started with exactly `text` at or after `since` (journal times are
        rounded to ms; matched by time, not position, because the journal is read from its tail)."""
        want = _normalize(text)
        for ev in self.events(name):
            if (ev.get("event") == "turn_started" and float(ev.get("time", 0)) >= since - 0.001
                    and _normalize(str(ev.get("prompt", ""))) == want):
                return ev
        return None

    def _earlier_send(self, name: str, request_id: str, text: str) -> Receipt | None:
        """A retried send: return its receipt if it (eventually) landed; never type it twice."""
        for ev in self.events(name):
            if ev.get("event") == "receipt" and ev.get("request_id") == request_id:
                return self._receipt(name, ev, text, request_id, float(ev.get("sent_at", 0)), duplicate=True)
            if ev.get("event") == "send" and ev.get("request_id") == request_id:
                late = self._find_turn(name, text, float(ev["time"]))
                if late is not None:
                    return self._receipt(name, late, text, request_id, float(ev["time"]), duplicate=True)
        return None

    def _receipt(self, name: str, ev: dict[str, Any], text: str, request_id: str | None,
                 sent_at: float, duplicate: bool) -> Receipt:
        delivered_at = float(ev.get("delivered_at", ev.get("time", time.time())))
        receipt = Receipt(
            agent=name, delivered=True, turn_id=str(ev.get("turn_id")), session_id=ev.get("session_id"),
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
        verdict, journal, _ = self.observe(spec, self.tmux.panes().get(name))
        if verdict.state in ("stopped", "exited"):
            raise AgentNotRunning(f"Agent {name!r} is {verdict.state}.", hint=f"`fleet up {name}` starts it.",
                                  agent=name)
        if verdict.state not in ("working", "waiting_approval") or journal.open_turn is None:
            return {"agent": name, "interrupted": False, "turn_id": None, "state": verdict.state}
        turn = journal.open_turn
        self.tmux.send_keys(name, "Escape")
        transcript = Path(journal.transcript) if journal.transcript else None

        def ended() -> bool:
            if transcript and turn in codex.find_aborted_turns(transcript):
                return True
            return read_journal(self.events(name)).open_turn != turn

        if not wait_until(ended, timeout):
            raise NotDelivered(f"Agent {name!r} did not confirm the interrupt within {timeout:.0f} s.",
                               hint="Retry, or `fleet down` it.", agent=name, turn_id=turn)
        if read_journal(self.events(name)).open_turn == turn:
            self.log(name, "turn_aborted", turn_id=turn, reason="interrupted")
        return {"agent": name, "interrupted": True, "turn_id": turn, "state": "idle"}

    def stop(self, spec: AgentSpec, grace: float = STOP_GRACE) -> dict[str, Any]:
        """Quit Codex the way a person would (Esc, then Ctrl-C on an empty composer), kill if it must."""
        name = spec.name
        pane = self.tmux.panes().get(name)
        if pane is None:
            return {"agent": name, "stopped": False, "state": "stopped", "exit_status": None, "forced": False}
        forced = False
        if not pane.dead:
            self.tmux.send_keys(name, "Escape")
            for _ in range(3):
                self.tmux.send_keys(name, "C-c")
                if wait_until(lambda: self._dead(name), grace / 3):
                    break
            else:
                forced = True
        # tmux records the exit status a moment after the pane dies
        final = wait_until(lambda: (p := self.tmux.panes().get(name)) and p.dead and p.dead_status is not None
                           and p, 0.5) or self.tmux.panes().get(name)
        status = final.dead_status if final and final.dead else None
        self._kill(name, reason="stopped", exit_status=status, forced=forced, pid=pane.pid)
        return {"agent": name, "stopped": True, "state": "stopped", "exit_status": status, "forced": forced}

    def _dead(self, name: str) -> bool:
        pane = self.tmux.panes().get(name)
        return pane is None or pane.dead

    def _kill(self, name: str, reason: str, pid: int | None = None, **fields: Any) -> None:
        pane = self.tmux.panes().get(name)
        pid = pid or (pane.pid if pane else None)
        self.tmux.kill_session(name)
        if pid:
            _reap(pid)
        self.log(name, "stopped", reason=reason, **fields)
        self.tmux.kill_server_if_empty()

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


def _reap(pid: int) -> None:
    """Make sure the agent's process is gone: SIGTERM, then SIGKILL after a short grace."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        if wait_until(lambda: not _alive(pid), 2.0):
            return


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie still answers kill(0); it is gone for our purposes
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
