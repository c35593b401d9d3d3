"""The service core: one `Service` per process (a CLI call, the MCP server, a watchdog tick).

It owns the lazily built parts every operation shares (config, agent runtime, lease store) and the
one lease rule for mutating work: an operation runs under the caller's lease, or under a transient
lease on a free agent; a stale token is fenced. Handlers (`fleet.service.agents`, `.leases`, ...) are
plain functions taking the service and typed keyword arguments; `fleet.ops` validates, audits and
dispatches to them.
"""

from __future__ import annotations

import contextlib
import getpass
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fleet import audit
from fleet.config import AgentSpec, FleetConfig, load_config
from fleet.errors import FleetError, InvalidInput
from fleet.fsutil import ensure_dir

if TYPE_CHECKING:
    from fleet.agents.runtime import Runtime
    from fleet.leases import LeaseStore

logger = logging.getLogger("fleet.service")


def _safe(name: str, size: int) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)[:size]


def default_holder(surface: str, session: str | None = None) -> str:
    """`$FLEET_HOLDER`, else `<surface>:<user>` (stable for a user across CLI calls), or with a
    `session` (an MCP client name) `<surface>:<session>:<random>`, one identity per client session."""
    env = os.environ.get("FLEET_HOLDER")
    if env:
        return env
    if session is not None:
        import secrets  # ~4 ms at start-up, for MCP sessions only

        return f"{surface}:{_safe(session, 24) or 'client'}:{secrets.token_hex(4)}"
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = f"uid{os.getuid()}"
    return f"{surface}:{_safe(user, 40) or 'user'}"


@dataclass
class Service:
    """One per process. The config, runtime and lease store are built on first use, once."""

    config_path: str | None = None
    surface: str = "cli"
    holder: str = ""
    _config: FleetConfig | None = field(default=None, init=False)
    _runtime: Runtime | None = field(default=None, init=False)
    _leases: LeaseStore | None = field(default=None, init=False)

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
            from fleet.agents.runtime import Runtime

            self._runtime = Runtime(self.config)
        return self._runtime

    @property
    def leases(self) -> LeaseStore:
        if self._leases is None:
            from fleet.leases import LeaseStore

            ensure_dir(self.config.state_dir)
            self._leases = LeaseStore(self.config.state_dir, surface=self.surface)
        return self._leases

    def holder_for(self, holder: str | None) -> str:
        return holder or self.holder

    def specs(self, agents: list[str] | None) -> list[AgentSpec]:
        return self.config.select(agents)

    @contextlib.contextmanager
    def leased(self, specs: list[AgentSpec], holder: str | None, token: int | None, *,
               bound: float = 0.0) -> Iterator[None]:
        """Run the body under `holder`'s lease on every agent in `specs` (or transient ones).

        `bound` is how long the body may run (seconds); a transient lease lasts longer than that
        (`fleet.leases.transient_ttl`), so it cannot lapse while the operation drives the agent."""
        from fleet.leases.rules import transient_ttl

        if token is not None and len(specs) != 1:
            raise InvalidInput("A token fences one agent; name exactly one agent with --token.",
                               hint="Run the command once per agent, each with its own token.")
        who = self.holder_for(holder)
        with contextlib.ExitStack() as stack:
            for spec in specs:
                stack.enter_context(self.leases.guard(spec.name, who, token, ttl=transient_ttl(bound)))
            yield

    def audit_operation(self, name: str, args: dict[str, Any], outcome: str, code: str | None, ms: int) -> None:
        """Append the operation's audit record. Never raises: the action already happened, so a
        failing audit write is logged loudly instead of turning a done operation into an error."""
        holder = self.holder_for(args.get("holder"))
        agents = args.get("agents") or ([args["agent"]] if "agent" in args else None)
        try:
            state_dir = self.config.state_dir
            ensure_dir(state_dir)
            audit.record(state_dir, name, surface=self.surface, holder=holder, agents=agents, outcome=outcome,
                         code=code, ms=ms)
        except (FleetError, OSError) as exc:
            logger.error("fleet: could not write the audit record for %s (%s): %s", name, outcome, exc)
