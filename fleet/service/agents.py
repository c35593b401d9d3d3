"""Agent operations: status, start, stop, send, interrupt, tail (and attach for the CLI).

Each handler takes the `Service` and the operation's validated arguments, with the schema's
defaults already filled in by `fleet.ops`. Mutating handlers run under `svc.leased(...)`.

`status`, `send` and `claim` load this module on every call, so what only a start or a repeated
send needs (the writable-roots reader, the policy file, the request digest, a repo agent's worktree
and its git) is imported where used.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from fleet.agents.oplock import OP_WAIT
from fleet.agents.text import normalize
from fleet.errors import AgentBusy, AgentNotRunning, ControlPlaneExposed, FleetError, StoreUnavailable
from fleet.prompttext import check_text

from .core import Service, logger
from .hosts import forward_if_remote
from .install import ensure_lead_plugin

if TYPE_CHECKING:
    from fleet.config import AgentSpec

#: The most one agent's stop takes: the quit grace, tmux's exit facts and SIGTERM/SIGKILL reaping
#: (`Runtime.stop`); a transient lease for `down` lasts this long per agent, plus slack.
_STOP_BOUND: Final = 15.0
#: The most an interrupt waits for Codex to confirm (`Runtime.interrupt`), plus the keys and reads.
_INTERRUPT_BOUND: Final = 10.0


def _lease_info(svc: Service, name: str, recorded: set[str]) -> dict[str, Any]:
    """The agent's lease as `leases.info` shows it; an agent with no lease record is free, answered
    without touching the lease store (a read-only status creates nothing on disk)."""
    if name not in recorded:
        return {"agent": name, "state": "free", "holder": None, "token": None, "expires_in": None,
                "expires_at": None, "acquired_at": None, "ttl": None, "transient": None}
    try:
        return dict(svc.leases.info(name))
    except StoreUnavailable:  # the shared store is down: not a corrupt record; the call fails whole
        raise
    except FleetError as exc:
        return {"state": "corrupt", "error": exc.to_dict()}


def fleet_status(svc: Service, *, agents: list[str] | None = None) -> dict[str, Any]:
    remote = svc.config.remote_agents
    if remote and (agents is None or any(n in remote for n in agents)):
        return _status_across_hosts(svc, agents)
    return {"fleet": svc.config.name, "agents": _local_status(svc, agents)}


def _local_status(svc: Service, agents: list[str] | None) -> list[dict[str, Any]]:
    specs = svc.specs(agents)
    out: list[dict[str, Any]] = [dict(s) for s in svc.runtime.status(specs)]
    recorded = set(svc.leases.known_agents())
    for entry in out:
        entry["lease"] = _lease_info(svc, entry["name"], recorded)
    return out


def _status_across_hosts(svc: Service, agents: list[str] | None) -> dict[str, Any]:
    """Local agents as always, remote ones from their hosts (`fleet.service.hosts`): in the order
    asked, else the local agents then the remote ones."""
    from .hosts import remote_status  # noqa: PLC0415 (only a config with hosts needs it)

    remote = svc.config.remote_agents
    local_names = None if agents is None else [n for n in agents if n not in remote]
    for name in local_names or ():
        svc.config.agent(name)  # an unknown name fails before any host is asked
    local = _local_status(svc, local_names) if local_names is None or local_names else []
    far = remote_status(svc, agents)
    by_name = {e["name"]: e for e in local} | far
    order = agents if agents is not None else [*(e["name"] for e in local), *far]
    return {"fleet": svc.config.name, "agents": [by_name[n] for n in dict.fromkeys(order)]}


def _raise_if_nothing_was_done(held: list[Any], refused: list[FleetError], results: list[dict[str, Any]]) -> None:
    """A call refused for every agent (lease held, agent busy, token stale) did nothing at all: it
    fails as a whole with the first refusal (exit 3 for lease conflicts), the others in `agents`."""
    if held or not refused:
        return
    err = refused[0]
    if len(refused) > 1:
        err.data["agents"] = results
    raise err


def _split(svc: Service, agents: list[str] | None) -> tuple[list[str] | None, list[str]]:
    """A call's agents as (this host's: None for all of them, or the names; the remote ones). No
    names means every agent, here and on every host."""
    remote = svc.config.remote_agents
    if not agents:
        return None, list(remote)
    return [a for a in agents if a not in remote], [a for a in agents if a in remote]


def _across_hosts(svc: Service, op: str, local_run: Callable[[list[str] | None], dict[str, Any]],
                  agents: list[str] | None, args: dict[str, Any], timeout: float,
                  row_ok: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """Run `op` for this host's agents (`local_run`) and, forwarded, for each remote host's; one row per
    agent in the order asked (all: config order, this host's first); `ok` when `row_ok` holds for each."""
    local, remote = _split(svc, agents)
    if not remote:
        return local_run(agents)
    from .hosts import forward_many  # noqa: PLC0415 (only a config with hosts needs it)

    here: dict[str, Any] = local_run(local) if (local is None and svc.config.agents) or local else {
        "ok": True, "agents": []}
    there = forward_many(svc, op, remote, args, timeout=timeout)
    rows: dict[str, dict[str, Any]] = {r["agent"]: r for r in [*here["agents"], *there]}
    order = agents or [*svc.config.agents, *svc.config.remote_agents]
    ordered = [rows[n] for n in order if n in rows]
    out = {"ok": here["ok"] and all(row_ok(r) for r in ordered), "agents": ordered}
    return {**out, "warnings": here["warnings"]} if "warnings" in here else out


def agent_start(svc: Service, *, timeout: float, agents: list[str] | None = None, holder: str | None = None,
                token: int | None = None) -> dict[str, Any]:
    """Start agents, this host's and (forwarded) each remote host's: see `_start_here`."""
    return _across_hosts(svc, "agent_start",
                         lambda names: _start_here(svc, timeout=timeout, agents=names, holder=holder, token=token),
                         agents, {"timeout": timeout, "holder": holder, "token": token}, timeout,
                         lambda r: r["result"] in ("started", "running"))


def agent_stop(svc: Service, *, agents: list[str] | None = None, holder: str | None = None,
               token: int | None = None) -> dict[str, Any]:
    """Stop agents, this host's and (forwarded) each remote host's: see `_stop_here`."""
    return _across_hosts(svc, "agent_stop", lambda names: _stop_here(svc, agents=names, holder=holder, token=token),
                         agents, {"holder": holder, "token": token}, _STOP_BOUND * 10,
                         lambda r: r["result"] != "failed")


def _start_here(svc: Service, *, timeout: float, agents: list[str] | None = None, holder: str | None = None,
                token: int | None = None) -> dict[str, Any]:
    """Start agents; `timeout` bounds the whole call (waiting for other operations, launching, and
    waiting once for every agent to be ready). One result per agent, in the order asked; `ok` is
    false when any agent failed or was not attempted."""
    deadline = time.monotonic() + timeout
    specs = svc.specs(agents)
    svc.check_token(specs, token)
    refuse_exposed_control_plane(svc)
    rt = svc.runtime
    rt.tmux.panes()  # tmux missing or unusable fails the whole call before anything is taken
    results: dict[str, dict[str, Any]] = {}
    with contextlib.ExitStack() as stack:
        held, refused = [], []
        for spec in sorted(specs, key=lambda s: s.name):
            wait = min(OP_WAIT, max(0.0, deadline - time.monotonic()))
            try:
                stack.enter_context(svc.agent_guard(spec, holder, token, operation="up", wait=wait, bound=timeout))
            except FleetError as exc:
                refused.append(exc)
                results[spec.name] = {"agent": spec.name, "result": "failed", "started": False, "pid": None,
                                      "state": None, "error": exc.to_dict()}
                continue
            held.append(spec)
        _raise_if_nothing_was_done(held, refused, [results[s.name] for s in specs if s.name in results])
        order = {s.name: i for i, s in enumerate(specs)}
        _sync_approve_policy(svc, held)
        started = _start_many(svc, sorted(held, key=lambda s: order[s.name]), deadline)
        results.update({name: dict(r) for name, r in started.items()})
    ordered = [results[s.name] for s in specs]
    # the whole fleet's server, not just the agents started now: any one of them can reach it
    warnings = rt.server_exposure(list(svc.config.agents.values()))
    return {"ok": all(r["result"] in ("started", "running") for r in ordered), "agents": ordered,
            "warnings": warnings}


def _start_many(svc: Service, specs: list[AgentSpec], deadline: float) -> dict[str, Any]:
    """Prepare every agent that is not running (a lead's home also gets fleet's plugin, for its
    skills), in order, then start them all: whatever a caller can fix raises before anything starts."""
    rt = svc.runtime
    from .worktree import ensure_agent_worktree  # noqa: PLC0415 (start-up: see the module docstring)

    panes = rt.tmux.panes()
    commands: dict[str, str] = {}
    for spec in rt.to_start(specs, panes):
        ensure_agent_worktree(svc, spec)
        commands[spec.name] = rt.prepare(spec)
        ensure_lead_plugin(spec)
    return dict(rt.start_many(specs, deadline, commands, panes))


def restart_agent(svc: Service, spec: AgentSpec, session_id: str | None) -> dict[str, Any]:
    """Restart an agent in its session with `codex resume <session_id>`, a lead
    with fleet's plugin ensured in its home first. The caller holds the agent's lease. Refused like a
    start (`control_plane_exposed`) when the config changed since so that an agent could write fleet's
    files: the watchdog restarts from a timer, with nobody looking."""
    refuse_exposed_control_plane(svc)
    rt = svc.runtime
    pane = rt.session_to_restart(spec)
    from .worktree import ensure_agent_worktree  # noqa: PLC0415 (start-up: see the module docstring)

    ensure_agent_worktree(svc, spec)
    command = rt.prepare(spec, resume=session_id)
    ensure_lead_plugin(spec)
    return rt.respawn(spec, pane, command, session_id)


def refuse_exposed_control_plane(svc: Service) -> None:
    """Refuse to start anything while fleet's own files (state dir, Codex homes, config, install,
    Codex binary, trust store) lie inside the writable roots of a configured agent that is not
    full-access (`fleet.agents.writable`): that agent could forge what fleet acts on."""
    from fleet.agents.writable import exposure_hint, exposures  # noqa: PLC0415 (start-up: see the module docstring)

    found = exposures(svc.config)
    if found:
        first = found[0].sentence()
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise ControlPlaneExposed(f"Not starting: {first}{more}.", hint=exposure_hint(found),
                                  exposures=[{"agent": e.agent, "sandbox": e.sandbox, "what": e.what,
                                              "path": str(e.path), "root": str(e.root)} for e in found])


def _sync_approve_policy(svc: Service, specs: list[AgentSpec]) -> None:
    """Give each agent's approval hook the current `[watchdog] approve` policy before it starts."""
    from fleet.agents.writable import fleet_roots  # noqa: PLC0415 (start-up: see the module docstring)
    from fleet.watchdog import policyfile  # noqa: PLC0415 (start-up: see the module docstring)

    approve = svc.config.watchdog.approve
    policyfile.sync_agents(((svc.runtime.agent_dir(spec.name), spec.cwd) for spec in specs), approve,
                           create=True, roots=fleet_roots(svc.config) if approve else ())
    if approve and svc.config.store is not None:  # the hook's copy of the leases (`fleet.leases.mirror`)
        try:
            svc.leases.refresh_mirror([spec.name for spec in specs])
        except FleetError as exc:  # the hook then leaves approvals to a person until a tick copies them
            logger.warning("could not copy the leases for the approval hook: %s", exc.message)


def _stop_here(svc: Service, *, agents: list[str] | None = None, holder: str | None = None,
               token: int | None = None) -> dict[str, Any]:
    """Stop agents concurrently; one result per agent, in the order asked; `ok` is false when any failed."""
    specs = svc.specs(agents)
    svc.check_token(specs, token)
    svc.runtime.tmux.panes()  # tmux missing or unusable fails the whole call before anything is taken
    results: dict[str, dict[str, Any]] = {}
    with contextlib.ExitStack() as stack:
        held, refused = [], []
        for spec in sorted(specs, key=lambda s: s.name):
            try:
                stack.enter_context(svc.agent_guard(spec, holder, token, operation="down",
                                                    bound=_STOP_BOUND * len(specs)))
            except FleetError as exc:
                refused.append(exc)
                results[spec.name] = {"agent": spec.name, "result": "failed", "stopped": False, "state": None,
                                      "exit_status": None, "exit_signal": None, "forced": False, "signal": None,
                                      "error": exc.to_dict()}
                continue
            held.append(spec)
        _raise_if_nothing_was_done(held, refused, [results[s.name] for s in specs if s.name in results])
        results.update({r["agent"]: dict(r) for r in svc.runtime.stop_many(held)})
    ordered = [results[s.name] for s in specs]
    return {"ok": all(r["result"] != "failed" for r in ordered), "agents": ordered}


def agent_send(svc: Service, *, agent: str, text: str, timeout: float, request_id: str | None = None,
               holder: str | None = None, token: int | None = None) -> dict[str, Any]:
    """Send under the caller's (or a transient) lease. A `request_id` is recorded in the ledger's
    durable index (scope `send:<agent>`): a retry answers with the first receipt (`duplicate`)
    without typing; the same id with another text is `request_id_conflict`. If the first call typed
    but got no receipt, the retry falls back to the journal, which finds a late receipt or sends.
    A remote agent's send runs on its host, always with a request id (`fleet.service.hosts`)."""
    if (there := forward_if_remote(svc, "agent_send", {"agent": agent, "text": text, "timeout": timeout,
                                                       "holder": holder, "token": token, "request_id": request_id},
                                   agent=agent, timeout=timeout)) is not None:
        return there
    spec = svc.config.agent(agent)
    if request_id is None:
        with svc.leased([spec], holder, token, operation="send", bound=timeout):
            return dict(svc.runtime.send(spec, text, None, timeout, holder=svc.holder_for(holder)))
    check_text(text)
    scope, key = f"send:{spec.name}", {"text": normalize(text)}
    ledger = svc.ledger
    prior = ledger.find_request(scope, request_id)
    if prior is not None and prior.result is not None and prior.sha == _sha(key):
        return {**prior.result, "duplicate": True}  # answered without a lease: nothing is typed
    with svc.leased([spec], holder, token, operation="send", bound=timeout):
        record = ledger.begin_request(scope, request_id, key)
        if not record.fresh and record.result is not None:
            return {**record.result, "duplicate": True}
        try:
            receipt = dict(svc.runtime.send(spec, text, request_id, timeout, holder=svc.holder_for(holder)))
        except (AgentBusy, AgentNotRunning):
            ledger.forget_request(scope, request_id)  # nothing was typed: a retry may send
            raise
    ledger.finish_request(scope, request_id, {**receipt, "duplicate": False})
    return receipt


def _sha(key: dict[str, Any]) -> str:
    from fleet.work.records import request_sha  # noqa: PLC0415 (start-up: see the module docstring)

    return request_sha(key)


def agent_interrupt(svc: Service, *, agent: str, holder: str | None = None,
                    token: int | None = None) -> dict[str, Any]:
    if (there := forward_if_remote(svc, "agent_interrupt", {"agent": agent, "holder": holder, "token": token},
                                   agent=agent)) is not None:
        return there
    spec = svc.config.agent(agent)
    with svc.leased([spec], holder, token, operation="interrupt", bound=_INTERRUPT_BOUND):
        return svc.runtime.interrupt(spec)


def agent_tail(svc: Service, *, agent: str, lines: int) -> dict[str, Any]:
    if (there := forward_if_remote(svc, "agent_tail", {"agent": agent, "lines": lines}, agent=agent)) is not None:
        return there
    return svc.runtime.tail(svc.config.agent(agent), lines)


def attach_argv(svc: Service, agent: str, read_only: bool) -> list[str]:
    """The tmux command line that attaches a terminal to the agent's session (not an operation:
    the CLI execs it, so it has no result to serve over MCP). A remote agent's: ssh with a terminal,
    running `fleet attach` on its host."""
    remote = svc.config.remote_agents.get(agent)
    if remote is not None:
        from fleet.hosts.channel import ssh_argv  # noqa: PLC0415 (start-up: see the module docstring)

        return ssh_argv(svc.config.hosts[remote.host], tty=True,
                        command=("attach", agent, *(("--read-only",) if read_only else ())))
    spec = svc.config.agent(agent)
    if not svc.runtime.tmux.has_session(spec.name):
        raise AgentNotRunning(f"Agent {agent!r} is not running.", hint=f"Start it with `fleet up {agent}`.",
                              agent=agent)
    return svc.runtime.tmux.attach_argv(spec.name, read_only)
