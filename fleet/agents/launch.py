"""Starting agents: check what a start needs, launch Codex in its tmux session, wait until it is ready.

`prepare` raises everything a caller can fix (a missing cwd, a foreign `.codex/`, untrusted hooks, no
Codex binary) before anything starts and returns the launch command; `start_many` launches every
prepared agent, then waits for all of them at once; `restart` respawns a session with
`codex resume`. A launch is journaled with the process's identity (pid and start time, so `stop`
signals only that process). A lead's plugin is not installed here: the service layer does that
between `prepare` and the launch (`fleet.service.install.ensure_lead_plugin`). Nothing here checks
leases or the operation lock: the service layer holds both before calling in.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Final, Literal, TypedDict

from fleet.config import AgentSpec
from fleet.errors import (
    AgentBusy,
    AgentNotRunning,
    ConfigError,
    FleetError,
    HooksUntrusted,
    ProjectConfigExposed,
    StartFailed,
    Timeout,
    TmuxUnavailable,
)
from fleet.fsutil import ensure_dir, make_private_dirs

from . import codex, lead, procs, reach
from .observe import Observer
from .state import PaneFacts, Verdict
from .stop import kill

START_TIMEOUT: Final = 30.0


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


def prepare(ob: Observer, spec: AgentSpec, resume: str | None = None) -> str:
    """Check what a start needs, create the agent's directory and Codex home, and return the launch
    command (`codex resume <resume>` when a session id is given); raises before anything starts."""
    if not spec.cwd.is_dir():
        raise ConfigError(
            f"{ob.config.path}: $.agents.{spec.name}.cwd: {spec.cwd} is not an existing directory.",
            hint="Create the directory or fix `cwd` for this agent.", agent=spec.name,
        )
    if spec.home.exists() and not spec.home.is_dir():
        raise ConfigError(
            f"{ob.config.path}: $.agents.{spec.name}.home: {spec.home} exists and is not a directory.",
            hint="Point `home` at a Codex home directory (it is created if missing).", agent=spec.name,
        )
    writers = reach.project_config_writers(spec, ob.config.agents.values())
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
    extra = lead.overrides(spec, ob.config.path, ob.config.state_dir,
                           auto_approve_agent_approvals=ob.config.lead_auto_approve_agent_approvals)
    command = codex.launch_command(spec, ob.agent_dir(spec.name), extra, resume=resume,
                                   approval_hold=ob.config.watchdog.approval_timeout)
    ensure_dir(ob.agent_dir(spec.name))
    try:
        make_private_dirs(spec.home)
    except OSError as exc:
        raise ConfigError(f"{ob.config.path}: $.agents.{spec.name}.home: cannot create {spec.home}: "
                          f"{exc.strerror or exc}.", hint="Check the path and its permissions.",
                          agent=spec.name) from exc
    return command


def launch(ob: Observer, spec: AgentSpec, command: str, pane: PaneFacts | None = None) -> int | None:
    """Create the agent's session and journal the launch with the process's identity (pid and
    start time, so that only this process is ever signalled). A dead session kept by
    remain-on-exit is replaced; a live one never is (`agent_busy`). Returns the pid."""
    name = spec.name
    pane = pane if pane is not None else ob.tmux.panes().get(name)
    if pane is not None and not pane.dead:
        raise AgentBusy(f"Agent {name!r} is already running (pid {pane.pid}); it was not started again.",
                        hint=f"`fleet down {name}` first to restart it.", agent=name)
    if pane is not None:
        ob.tmux.kill_session(name)
    ob.tmux.write_config()
    pid = ob.tmux.new_session(name, command, spec.cwd, {"FLEET_AGENT": name})
    launched(ob, spec, pid)
    return pid


def launched(ob: Observer, spec: AgentSpec, pid: int | None, **fields: Any) -> None:
    """Journal a launch with the process's identity, and attach the raw-log copier."""
    name = spec.name
    ident = procs.identify(pid) if pid else None
    ob.log(name, "launched", home=str(spec.home), cwd=str(spec.cwd), role=spec.role, pid=pid,
           pid_start=ident.start if ident else None, boot=ident.boot if ident else None, **fields)
    try:
        ob.tmux.pipe_to(name, codex.rawlog_command(ob.agent_dir(name) / "raw.log"))
    except FleetError as exc:  # the raw log is a convenience; readiness decides whether it started
        ob.log(name, "rawlog_failed", error=exc.to_dict())


def to_start(specs: list[AgentSpec], panes: Mapping[str, PaneFacts]) -> list[AgentSpec]:
    """The agents of `specs` that `start_many` starts given the pane listing `panes`: every one not
    running (no session, or a dead one kept by remain-on-exit)."""
    return [s for s in specs if (p := panes.get(s.name)) is None or p.dead]


def start_many(ob: Observer, specs: list[AgentSpec], deadline: float, commands: Mapping[str, str],
               panes: Mapping[str, PaneFacts]) -> dict[str, StartResult]:
    """Start every agent that is not running, then wait for all of them at once, until the
    monotonic `deadline`. Each agent gets its own result; a failed start leaves nothing running.

    `commands` holds the `prepare`d launch command of each agent `to_start(specs, panes)` named, and
    `panes` the listing that was read from: what a caller can fix (a missing cwd, no Codex binary)
    raised in `prepare`, before anything started, so a bad config never half-starts a fleet; what
    goes wrong after that is per agent. An agent without a command is reported `running`.
    """
    results: dict[str, StartResult] = {}
    fresh: list[AgentSpec] = []
    blocked: FleetError | None = None
    for spec in specs:
        name = spec.name
        pane = panes.get(name)
        if name not in commands:
            results[name] = _start_result(name, "running", pid=pane.pid if pane else None,
                                          state=ob.observe(spec, pane)[0].state)
            continue
        if blocked is None and time.monotonic() >= deadline:
            blocked = Timeout("The call's timeout passed before this agent could be started.",
                              hint="Raise --timeout, or start fewer agents at once.", agent=name)
        if blocked is not None:
            results[name] = _start_result(name, "not_attempted", error=blocked.to_dict())
            continue
        try:
            launch(ob, spec, commands[name], pane)
        except TmuxUnavailable as exc:
            results[name] = _start_result(name, "failed", error=exc.to_dict())
            blocked = exc  # the next launch would fail the same way
            continue
        except FleetError as exc:
            results[name] = _start_result(name, "failed", error=exc.to_dict())
            continue
        fresh.append(spec)
    verdicts = _await_ready(ob, fresh, deadline)
    panes = ob.tmux.panes() if fresh else panes
    for spec in fresh:
        verdict = verdicts.get(spec.name)
        if verdict is not None and verdict.state == "idle":
            ob.log(spec.name, "ready")
            pane = panes.get(spec.name)
            results[spec.name] = _start_result(spec.name, "started", pid=pane.pid if pane else None,
                                               state="idle")
        else:
            error = _start_failed(ob, spec, verdict)
            results[spec.name] = _start_result(spec.name, "failed", error=error.to_dict())
    return results


def await_ready(ob: Observer, spec: AgentSpec, timeout: float = START_TIMEOUT) -> Verdict:
    """Wait until one launched agent is ready for a prompt; on failure kill its session and raise."""
    verdict = _await_ready(ob, [spec], time.monotonic() + timeout).get(spec.name)
    if verdict is not None and verdict.state == "idle":
        ob.log(spec.name, "ready")
        return verdict
    raise _start_failed(ob, spec, verdict)


def _await_ready(ob: Observer, specs: list[AgentSpec], deadline: float) -> dict[str, Verdict]:
    """Poll every launching agent with one pane listing per round until each is past `starting`
    (or shows a first-run screen that needs a person) or the deadline passes."""
    done: dict[str, Verdict] = {}
    pending = list(specs)
    pause = 0.05
    while pending:
        panes = ob.tmux.panes()
        for spec in list(pending):
            verdict = ob.observe(spec, panes.get(spec.name))[0]
            done[spec.name] = verdict
            if verdict.state != "starting" or (verdict.detail or "").startswith("a first-run screen"):
                pending.remove(spec)
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
        pause = min(pause * 1.5, 0.1)
    return done


def _start_failed(ob: Observer, spec: AgentSpec, verdict: Verdict | None) -> StartFailed:
    """Kill a start that did not become ready and describe why (with its last screen lines)."""
    name = spec.name
    screen = ob.tmux.capture(name, lines=15).strip().splitlines()[-6:]
    detail = verdict.detail if verdict is not None else None
    kill(ob, name, reason="start_failed")
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


def session_to_restart(ob: Observer, spec: AgentSpec) -> PaneFacts:
    """The agent's pane, which `respawn` replaces; `agent_not_running` when it has no session. A
    restart is `session_to_restart`, `prepare(..., resume=session_id)`, `respawn`: the service layer
    runs the three (`fleet.service.agents.restart_agent`), a lead's plugin ensured in between."""
    pane = ob.tmux.panes().get(spec.name)
    if pane is None:
        raise AgentNotRunning(f"Agent {spec.name!r} has no session to restart (it is stopped).",
                              hint=f"Start it with `fleet up {spec.name}`.", agent=spec.name)
    return pane


def respawn(ob: Observer, spec: AgentSpec, pane: PaneFacts, command: str, session_id: str | None,
            timeout: float = START_TIMEOUT) -> dict[str, Any]:
    """Run the `prepare`d `command` in place of whatever runs in the session `pane` (from
    `session_to_restart`), journal the launch and wait until it is ready."""
    name = spec.name
    ob.tmux.respawn(name, command)
    fresh = ob.tmux.panes().get(name)
    launched(ob, spec, fresh.pid if fresh is not None and not fresh.dead else None, resumed=session_id,
             previous_pid=pane.pid)
    verdict = await_ready(ob, spec, timeout)
    new = ob.tmux.panes().get(name)
    return {"agent": name, "resumed": session_id, "pid": new.pid if new else None, "state": verdict.state}


def _start_result(agent: str, result: Literal["started", "running", "failed", "not_attempted"], *,
                  pid: int | None = None, state: str | None = None,
                  error: dict[str, Any] | None = None) -> StartResult:
    return StartResult(agent=agent, result=result, started=result == "started", pid=pid, state=state, error=error)
