"""The service layer: every operation's logic, once. Adapters call `Service.invoke(name, args)`.

invoke = validate (the operation's schema) -> lease check (mutating operations run under the
caller's lease, or a transient one on a free agent; a stale token is fenced) -> act (runtime) ->
audit (`audit.jsonl`: time, surface, holder, operation, outcome, error code) -> typed result.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from . import audit, ops
from .config import AgentSpec, FleetConfig, load_config
from .errors import FleetError, InvalidInput, StartFailed
from .fsutil import ensure_dir
from .runtime import DELIVERY_TIMEOUT, START_TIMEOUT, Runtime


def _safe(name: str, size: int) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)[:size]


def default_holder(surface: str, session: str | None = None) -> str:
    """`$FLEET_HOLDER`, else `<surface>:<user>` (stable for a user across CLI calls), or with a
    `session` (an MCP client name) `<surface>:<session>:<random>`, one identity per client session."""
    env = os.environ.get("FLEET_HOLDER")
    if env:
        return env
    if session is not None:
        return f"{surface}:{_safe(session, 24) or 'client'}:{secrets.token_hex(4)}"
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = f"uid{os.getuid()}"
    return f"{surface}:{_safe(user, 40) or 'user'}"


@dataclass
class Service:
    """One per process (CLI call or MCP server). The config is loaded lazily, once."""

    config_path: str | None = None
    surface: str = "cli"
    holder: str = ""
    _config: FleetConfig | None = field(default=None, init=False)
    _runtime: Runtime | None = field(default=None, init=False)
    _leases: Any = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.holder = self.holder or default_holder(self.surface)

    @property
    def config(self) -> FleetConfig:
        if self._config is None:
            self._config = load_config(self.config_path)
        return self._config

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            ensure_dir(self.config.state_dir)
            self._runtime = Runtime(self.config)
        return self._runtime

    @property
    def leases(self) -> Any:
        if self._leases is None:
            from .leases import LeaseStore

            ensure_dir(self.config.state_dir)
            self._leases = LeaseStore(self.config.state_dir, surface=self.surface)
        return self._leases

    # ---- the one entry point --------------------------------------------------------------------
    def invoke(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        op = ops.get(name)
        op.validate(args)
        handler: Callable[[dict[str, Any]], dict[str, Any]] = getattr(self, "_op_" + name)
        if op.tier == "readonly":
            return handler(args)
        holder = args.get("holder") or self.holder
        started = time.monotonic()
        try:
            result = handler(args)
        except FleetError as exc:
            self._audit(name, args, holder, "error", exc.code, started)
            raise
        self._audit(name, args, holder, "ok", None, started)
        return result

    def _audit(self, name: str, args: dict[str, Any], holder: str, outcome: str, code: str | None,
               started: float) -> None:
        try:
            state_dir = self.config.state_dir
            ensure_dir(state_dir)
        except FleetError:
            return  # no usable config or state dir: nothing to audit into
        agents = args.get("agents") or ([args["agent"]] if "agent" in args else None)
        audit.record(state_dir, name, surface=self.surface, holder=holder, agents=agents, outcome=outcome,
                     code=code, ms=int((time.monotonic() - started) * 1000))

    @contextlib.contextmanager
    def _leased(self, specs: list[AgentSpec], args: dict[str, Any]) -> Iterator[None]:
        token = args.get("token")
        if token is not None and len(specs) != 1:
            raise InvalidInput("A token fences one agent; name exactly one agent with --token.",
                               hint="Run the command once per agent, each with its own token.")
        holder = args.get("holder") or self.holder
        with contextlib.ExitStack() as stack:
            for spec in specs:
                stack.enter_context(self.leases.guard(spec.name, holder, token))
            yield

    def _specs(self, args: dict[str, Any]) -> list[AgentSpec]:
        if "agent" in args:
            return [self.config.agent(args["agent"])]
        return self.config.select(args.get("agents"))

    # ---- handlers: one per operation -----------------------------------------------------------
    def _op_fleet_status(self, args: dict[str, Any]) -> dict[str, Any]:
        specs = self._specs(args)
        agents: list[dict[str, Any]] = [dict(s) for s in self.runtime.status(specs)]
        for entry in agents:
            try:
                entry["lease"] = self.leases.info(entry["name"])
            except FleetError as exc:
                entry["lease"] = {"state": "corrupt", "error": exc.to_dict()}
        return {"fleet": self.config.name, "agents": agents}

    def _op_agent_start(self, args: dict[str, Any]) -> dict[str, Any]:
        specs = self._specs(args)
        timeout = float(args.get("timeout", START_TIMEOUT))
        rt = self.runtime
        results: dict[str, dict[str, Any]] = {}
        failures: list[dict[str, Any]] = []
        with self._leased(specs, args):
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

    def _op_agent_stop(self, args: dict[str, Any]) -> dict[str, Any]:
        specs = self._specs(args)
        with self._leased(specs, args):
            return {"agents": [self.runtime.stop(spec) for spec in specs]}

    def _op_agent_send(self, args: dict[str, Any]) -> dict[str, Any]:
        [spec] = self._specs(args)
        holder = args.get("holder") or self.holder
        with self._leased([spec], args):
            receipt = self.runtime.send(spec, args["text"], args.get("request_id"),
                                        float(args.get("timeout", DELIVERY_TIMEOUT)), holder=holder)
        return dict(receipt)

    def _op_agent_interrupt(self, args: dict[str, Any]) -> dict[str, Any]:
        [spec] = self._specs(args)
        with self._leased([spec], args):
            return self.runtime.interrupt(spec)

    def _op_agent_tail(self, args: dict[str, Any]) -> dict[str, Any]:
        [spec] = self._specs(args)
        return self.runtime.tail(spec, int(args.get("lines", 40)))

    def _op_fleet_doctor(self, args: dict[str, Any]) -> dict[str, Any]:
        from .doctor import run_checks

        return run_checks(self)

    def _op_agent_claim(self, args: dict[str, Any]) -> dict[str, Any]:
        spec = self.config.agent(args["agent"])
        return dict(self.leases.claim(spec.name, args.get("holder") or self.holder,
                                      ttl=float(args.get("ttl", 1800)), wait=float(args.get("wait", 0))))

    def _op_agent_release(self, args: dict[str, Any]) -> dict[str, Any]:
        spec = self.config.agent(args["agent"])
        return dict(self.leases.release(spec.name, args.get("holder") or self.holder,
                                        force=bool(args.get("force", False))))

    def _op_fleet_leases(self, args: dict[str, Any]) -> dict[str, Any]:
        out = []
        for name in self.config.agents:
            try:
                out.append(dict(self.leases.info(name)))
            except FleetError as exc:
                out.append({"agent": name, "state": "corrupt", "error": exc.to_dict()})
        return {"leases": out}

    def _op_lease_repair(self, args: dict[str, Any]) -> dict[str, Any]:
        spec = self.config.agent(args["agent"])
        return dict(self.leases.repair(spec.name, args.get("holder") or self.holder))

    # ---- not operations: helpers for adapters ----------------------------------------------------
    def attach_argv(self, agent: str, read_only: bool) -> list[str]:
        spec = self.config.agent(agent)
        if not self.runtime.tmux.has_session(spec.name):
            from .errors import AgentNotRunning

            raise AgentNotRunning(f"Agent {agent!r} is not running.", hint=f"Start it with `fleet up {agent}`.",
                                  agent=agent)
        return self.runtime.tmux.attach_argv(spec.name, read_only)
