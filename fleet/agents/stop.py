"""Stopping agents: interrupt a turn, quit Codex, and kill only the process fleet launched.

`stop` quits Codex the way a person would and kills it if it must; `kill` ends the session and the
launched process (identified by pid and start time, so a recycled pid is never signalled) and always
journals `stopped`. `launch` uses `kill` to clean up a start that did not become ready. Nothing here
checks leases or the operation lock: the service layer holds both before calling in.
"""

from __future__ import annotations

from typing import Any, Final, Literal, TypedDict

from fleet.config import AgentSpec
from fleet.errors import AgentNotRunning, FleetError, NotDelivered

from . import procs
from .observe import Observer, wait_until
from .state import Journal, read_journal

STOP_GRACE: Final = 5.0
#: At most this many agents are stopped at once (each stop is mostly waiting on Codex to quit).
STOP_WORKERS: Final = 16


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


def interrupt(ob: Observer, spec: AgentSpec, timeout: float = 5.0) -> dict[str, Any]:
    """Press Esc on an open turn and wait until the journal (or the rollout) shows it ended."""
    name = spec.name
    verdict, j = ob.observe(spec, ob.tmux.panes().get(name), settle=True)
    if verdict.state in ("stopped", "exited"):
        raise AgentNotRunning(f"Agent {name!r} is {verdict.state}.", hint=f"`fleet up {name}` starts it.",
                              agent=name)
    if verdict.state not in ("working", "waiting_approval") or j.open_turn is None:
        return {"agent": name, "interrupted": False, "turn_id": None, "state": verdict.state}
    turn = j.open_turn
    ob.tmux.send_keys(name, "Escape")

    def ended() -> bool:
        return ob.observe(spec, ob.tmux.panes().get(name), settle=True)[1].open_turn != turn

    if not wait_until(ended, timeout):
        raise NotDelivered(f"Agent {name!r} did not confirm the interrupt within {timeout:.0f} s.",
                           hint="Retry, or `fleet down` it.", agent=name, turn_id=turn)
    after = ob.state_of(spec)
    return {"agent": name, "interrupted": True, "turn_id": turn, "state": after.state}


def stop(ob: Observer, spec: AgentSpec, grace: float = STOP_GRACE) -> StopResult:
    """Quit Codex the way a person would (Esc, then Ctrl-C on an empty composer), kill it if it
    must. Only the process fleet launched is ever signalled; `stopped` is always journaled once
    the session is killed, whatever signalling found."""
    name = spec.name
    pane = ob.tmux.panes().get(name)
    j = read_journal(ob.events(name))
    ident = identity(j)
    if ident is None and pane is not None and not pane.dead:
        ident = procs.identify(pane.pid)  # launched before identities were journaled: tmux vouches now
    if pane is None:
        outcome = None
        if j.launched_at is not None and j.stopped_at is None:  # the session vanished under us
            outcome = kill(ob, name, "no_session", ident)
        return StopResult(agent=name, result="not_running", stopped=False, state="stopped", exit_status=None,
                          exit_signal=None, forced=False, signal=outcome, error=None)
    forced = False
    if not pane.dead:
        try:
            ob.tmux.send_keys(name, "Escape")
            for _ in range(3):
                ob.tmux.send_keys(name, "C-c")
                if wait_until(lambda: _dead(ob, name), grace / 3):
                    break
            else:
                forced = True
        except AgentNotRunning:
            pass  # it quit (or was killed) between our checks
    # tmux records the exit status a moment after the pane dies
    final = wait_until(lambda: (p := ob.tmux.panes().get(name)) and p.dead and
                       (p.dead_status is not None or p.dead_signal is not None) and p, 0.5)
    final = final or ob.tmux.panes().get(name)
    status = final.dead_status if final and final.dead else None
    sig = final.dead_signal if final and final.dead else None
    outcome = kill(ob, name, "stopped", ident, exit_status=status, exit_signal=sig, forced=forced)
    return StopResult(agent=name, result="stopped", stopped=True, state="stopped", exit_status=status,
                      exit_signal=sig, forced=forced, signal=outcome, error=None)


def stop_many(ob: Observer, specs: list[AgentSpec]) -> list[StopResult]:
    """Stop agents concurrently (each waits mostly on its own Codex); one result per agent, in order."""
    def one(spec: AgentSpec) -> StopResult:
        try:
            return stop(ob, spec)
        except FleetError as exc:
            return StopResult(agent=spec.name, result="failed", stopped=False, state=None, exit_status=None,
                              exit_signal=None, forced=False, signal=None, error=exc.to_dict())

    if len(specs) <= 1:
        return [one(s) for s in specs]
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415 (~4 ms with logging: only when needed)

    with ThreadPoolExecutor(max_workers=min(len(specs), STOP_WORKERS), thread_name_prefix="fleet-stop") as pool:
        return list(pool.map(one, specs))


def _dead(ob: Observer, name: str) -> bool:
    pane = ob.tmux.panes().get(name)
    return pane is None or pane.dead


def kill(ob: Observer, name: str, reason: str, ident: procs.ProcessId | None = None, **fields: Any) -> str | None:
    """Kill the session, make sure the launched process is gone, and journal `stopped` (always,
    even when signalling fails). Returns what signalling found (see `procs.terminate`)."""
    if ident is None:
        ident = identity(read_journal(ob.events(name)))
    outcome: str | None = None
    try:
        ob.tmux.kill_session(name)
        if ident is not None:
            try:
                outcome = procs.terminate(ident)
            except OSError as exc:
                outcome = f"error: {exc.strerror or exc}"
    finally:
        ob.log(name, "stopped", reason=reason, signal=outcome, **fields)
    return outcome


def identity(j: Journal) -> procs.ProcessId | None:
    """The launched process's identity as journaled at its launch."""
    if not j.pid or j.pid_start is None:
        return None
    return procs.ProcessId(j.pid, j.pid_start, j.pid_boot or "")
