"""Agent operations: status, start, stop, send, interrupt, tail (and attach for the CLI).

Each handler takes the `Service` and the operation's validated arguments, with the schema's
defaults already filled in by `fleet.ops`. Mutating handlers run under `svc.leased(...)`.
"""

from __future__ import annotations

from typing import Any, Final

from fleet.errors import AgentNotRunning, FleetError, StartFailed

from .core import Service

#: The most one agent's stop takes: the quit grace, tmux's exit facts and SIGTERM/SIGKILL reaping
#: (`Runtime.stop`); a transient lease for `down` lasts this long per agent, plus slack.
_STOP_BOUND: Final = 15.0
#: The most an interrupt waits for Codex to confirm (`Runtime.interrupt`), plus the keys and reads.
_INTERRUPT_BOUND: Final = 10.0


def fleet_status(svc: Service, *, agents: list[str] | None = None) -> dict[str, Any]:
    specs = svc.specs(agents)
    out: list[dict[str, Any]] = [dict(s) for s in svc.runtime.status(specs)]
    for entry in out:
        try:
            entry["lease"] = svc.leases.info(entry["name"])
        except FleetError as exc:
            entry["lease"] = {"state": "corrupt", "error": exc.to_dict()}
    return {"fleet": svc.config.name, "agents": out}


def agent_start(svc: Service, *, timeout: float, agents: list[str] | None = None, holder: str | None = None,
                token: int | None = None) -> dict[str, Any]:
    specs = svc.specs(agents)
    rt = svc.runtime
    results: dict[str, dict[str, Any]] = {}
    failures: list[dict[str, Any]] = []
    # Readiness is awaited agent by agent, each up to `timeout`.
    with svc.leased(specs, holder, token, bound=timeout * len(specs)):
        commands = {s.name: rt.prepare(s) for s in specs}  # every check before anything starts
        panes = rt.tmux.panes()
        fresh = []
        for spec in specs:
            pane = panes.get(spec.name)
            if pane is not None and not pane.dead:
                results[spec.name] = {"agent": spec.name, "started": False, "pid": pane.pid,
                                      "state": rt.state_of(spec).state}
                continue
            rt.launch(spec, commands[spec.name])
            fresh.append(spec)
        for spec in fresh:
            try:
                verdict = rt.await_ready(spec, timeout)
            except StartFailed as exc:
                failures.append(exc.to_dict())
                continue
            pane = rt.tmux.panes().get(spec.name)
            results[spec.name] = {"agent": spec.name, "started": True, "pid": pane.pid if pane else None,
                                  "state": verdict.state}
    if failures:
        names = ", ".join(f["agent"] for f in failures)
        raise StartFailed(
            f"{len(failures)} of {len(specs)} agent(s) failed to start: {names}.",
            hint=failures[0]["hint"], failures=failures, started=sorted(results),
        )
    return {"agents": [results[s.name] for s in specs]}


def agent_stop(svc: Service, *, agents: list[str] | None = None, holder: str | None = None,
               token: int | None = None) -> dict[str, Any]:
    specs = svc.specs(agents)
    with svc.leased(specs, holder, token, bound=_STOP_BOUND * len(specs)):
        return {"agents": [svc.runtime.stop(spec) for spec in specs]}


def agent_send(svc: Service, *, agent: str, text: str, timeout: float, request_id: str | None = None,
               holder: str | None = None, token: int | None = None) -> dict[str, Any]:
    spec = svc.config.agent(agent)
    with svc.leased([spec], holder, token, bound=timeout):
        receipt = svc.runtime.send(spec, text, request_id, timeout, holder=svc.holder_for(holder))
    return dict(receipt)


def agent_interrupt(svc: Service, *, agent: str, holder: str | None = None,
                    token: int | None = None) -> dict[str, Any]:
    spec = svc.config.agent(agent)
    with svc.leased([spec], holder, token, bound=_INTERRUPT_BOUND):
        return svc.runtime.interrupt(spec)


def agent_tail(svc: Service, *, agent: str, lines: int) -> dict[str, Any]:
    return svc.runtime.tail(svc.config.agent(agent), lines)


def attach_argv(svc: Service, agent: str, read_only: bool) -> list[str]:
    """The tmux command line that attaches a terminal to the agent's session (not an operation:
    the CLI execs it, so it has no result to serve over MCP)."""
    spec = svc.config.agent(agent)
    if not svc.runtime.tmux.has_session(spec.name):
        raise AgentNotRunning(f"Agent {agent!r} is not running.", hint=f"Start it with `fleet up {agent}`.",
                              agent=agent)
    return svc.runtime.tmux.attach_argv(spec.name, read_only)
