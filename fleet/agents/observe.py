"""Observing agents: where an agent's files are, its journal, and its state as its signals say.

`Observer` is what every other part of the runtime stands on (`launch`, `send`, `stop`, and the
`Runtime` facade in `runtime`): the fleet's tmux server, the agent's directory and journal
(`<state_dir>/agents/<name>/events.jsonl`, see `journal`), `observe` (the pure `state.classify` over
the journal, the rollout and the pane) and the read-only views built on it (`status`, `tail`,
`server_exposure`). A turn that ends without a Stop hook (model error, dropped stream, usage limit,
interrupt) is read from Codex's rollout while the journal shows it open, and written to the journal
by the next mutating call (`settle=True`); read-only calls fold it in memory and write nothing.
Nothing here starts, types into or stops an agent, so `fleet status` loads none of that code.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from fleet.config import AgentSpec, FleetConfig
from fleet.errors import AgentNotRunning
from fleet.fsutil import ensure_dir
from fleet.vocab import TokenUsage

from . import codex, journal, reach
from .account import account_of
from .rollout import RateLimits, RolloutFacts
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
from .tmux import TmuxServer, socket_path


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
    usage: TokenUsage | None  # the session's tokens (every turn since the latest launch)
    account: str | None  # configured, or `auth:<hash>` of its auth.json's account id; None: unknown


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.02) -> Any:
    """Poll `predicate` until it returns something truthy or `timeout` passes; return the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
        interval = min(interval * 1.5, 0.1)


def rollout_turn_end(j: Journal, now: float, home: Path | None) -> tuple[dict[str, Any] | None, RolloutFacts | None]:
    """The end of `j`'s open turn as Codex wrote it to the rollout (a turn that failed, or whose Stop
    hook did not run, has no end in the journal), as a journal event timed no earlier than the turn's
    start; None while the rollout has none. Also what the rollout's tail gave (None: not read). Only
    a rollout under the agent's Codex `home`'s `sessions/` is read (None: none is)."""
    if not (j.open_turn and j.transcript) or home is None or not codex.own_rollout(home, j.transcript):
        return None, None
    found = codex.read_rollout(Path(j.transcript))
    end = found.ends.get(j.open_turn)
    if end is None:
        return None, found
    event = turn_end_event(end)
    event["time"] = round(max(end.at or now, j.open_turn_at or 0.0), 3)
    return event, found


@dataclass
class Observer:
    """One fleet's agents as seen from its state dir and its tmux server (built once per `Service`)."""

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
        return journal.journal_file(self.config.state_dir, name)

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
        if pane is not None and not pane.dead:
            event, found = rollout_turn_end(j, now, spec.home)
            if event is not None:
                j = read_journal([*events, event])
                if settle:
                    ensure_dir(self.agent_dir(spec.name))
                    journal.append(self.agent_dir(spec.name), event)
            elif found is not None and found.rate_limits is not None and found.rate_limits != j.rate_limits:
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
                usage=j.usage, account=account_of(spec),
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


def _approval(raw: dict[str, Any] | None) -> dict[str, Any] | None:
    """What status shows of the approval the agent waits on: the command and the model's reason (a long
    command cut, with `command_truncated` and its full `command_length`)."""
    if raw is None:
        return None
    return {k: raw.get(k) for k in ("request", "tool", "command", "justification", "held", "hold_until")} | {
        "since": raw.get("time"), "command_truncated": raw.get("command_truncated") is True,
        "command_length": raw.get("command_length", len(str(raw.get("command") or "")))}
