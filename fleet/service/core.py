"""The service core: one `Service` per process (a CLI call, the MCP server, a watchdog tick).

It owns the lazily built parts every operation shares (config, agent runtime, lease store, the
shared store when `[store]` names one) and the
one rule for mutating work on an agent: it runs holding the agent's operation lock (one operation
at a time per agent, whoever the holder; see `fleet.agents.oplock`) and, inside it, the caller's
lease or a transient lease on a free agent; a stale token is fenced. Handlers
(`fleet.service.agents`, `.leases`, ...) are plain functions taking the service and typed keyword
arguments; `fleet.ops` validates, audits and dispatches to them.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fleet import audit
from fleet.agents.oplock import OP_WAIT, op_lock
from fleet.config import AgentSpec, FleetConfig, load_config
from fleet.errors import AgentBusy, ConfigError, FleetError, InvalidInput, StateDirError
from fleet.fsutil import check_state_tree, ensure_dir
from fleet.logs import LazyLogger

if TYPE_CHECKING:
    from fleet.agents.runtime import Runtime
    from fleet.audit import AuditSink
    from fleet.hosts.channel import Hosts
    from fleet.leases.backend import LeaseBackend
    from fleet.store.db import Database
    from fleet.work.ledgerbackend import LedgerBackend

logger = LazyLogger("fleet.service")


def _safe(name: str, size: int) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)[:size]


def _login_name() -> str:
    """The login name as `getpass.getuser()` finds it (whose import costs ~1 ms of every CLI call)."""
    for key in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        if name := os.environ.get(key):
            return name
    import pwd

    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return f"uid{os.getuid()}"


def default_holder(surface: str, session: str | None = None) -> str:
    """`$FLEET_HOLDER`, else `<surface>:<user>` (stable for a user across CLI calls), or with a
    `session` (an MCP client name) `<surface>:<session>:<random>`, one identity per client session."""
    env = os.environ.get("FLEET_HOLDER")
    if env:
        return env
    if session is not None:
        import secrets  # ~4 ms at start-up, for MCP sessions only

        return f"{surface}:{_safe(session, 24) or 'client'}:{secrets.token_hex(4)}"
    user = _login_name()
    return f"{surface}:{_safe(user, 40) or 'user'}"


@dataclass
class Service:
    """One per process. The config, runtime and lease store are built on first use, once."""

    config_path: str | None = None
    surface: str = "cli"
    holder: str = ""
    #: Whether an assignment's `--check` commands run in a detached verifier (`fleet.service.tracking`)
    #: or in this process; the watchdog's tick turns it off (a oneshot unit's children die with it).
    background_checks: bool = True
    _config: FleetConfig | None = field(default=None, init=False)
    _runtime: Runtime | None = field(default=None, init=False)
    _leases: LeaseBackend | None = field(default=None, init=False)
    _store: Database | None = field(default=None, init=False)
    _audit_sinks: tuple[AuditSink, ...] | None = field(default=None, init=False)
    _ledger: LedgerBackend | None = field(default=None, init=False)
    _hosts: Hosts | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.holder = self.holder or default_holder(self.surface)

    @property
    def config(self) -> FleetConfig:
        if self._config is None:
            config = load_config(self.config_path)
            check_state_tree(config.state_dir, config.agents)  # another's state dir is refused, reads too
            self._config = config
        return self._config

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            from fleet.agents.runtime import Runtime

            self._runtime = Runtime(self.config)
        return self._runtime

    @property
    def leases(self) -> LeaseBackend:
        """Lease files under the state dir, or the shared store's rows when `[store] url` is set."""
        if self._leases is None:
            from fleet.leases.files import shared_marker

            marker = shared_marker(self.config.state_dir)
            if self.config.store is not None:
                from fleet.leases.pg import PgLeaseStore

                self._leases = PgLeaseStore(self.store, self.config.state_dir, surface=self.surface)
                if not marker.exists():  # tells the approval hook it cannot see the leases (fails closed)
                    ensure_dir(marker.parent)
                    marker.touch(0o600)
            else:
                from fleet.leases import LeaseStore

                self._refuse_without_store()
                self._leases = LeaseStore(self.config.state_dir, surface=self.surface)
        return self._leases

    def _refuse_without_store(self) -> None:
        """A process without the store's URL must not quietly keep state of its own for a fleet whose
        leases and ledger are in the shared store (`SHARED_STORE_MARKER`, written by the first process
        that used the store): a lead's fleet server, a watchdog unit or a shell that lacks the
        variable would be a second brain, and the approval hook would read lease files nobody writes."""
        from fleet.errors import StoreNotConfigured
        from fleet.leases.files import shared_marker

        marker = shared_marker(self.config.state_dir)
        if marker.exists():
            raise StoreNotConfigured(
                f"This fleet keeps its leases and assignments in the shared store, but this process has no "
                f"store configured (no `[store] url` in {self.config.path}, no $FLEET_STORE_URL).",
                hint="Give this process the same store as the rest of the fleet ($FLEET_STORE_URL, or `[store] "
                     "url`); the fleet's tmux server, its agents and the watchdog's unit have the environment they "
                     f"were started in. If the fleet moved back to files on purpose, remove {marker}.",
                path=str(marker))

    @property
    def store(self) -> Database:
        """The shared store (`[store]`), connected on first use; only asked for when one is configured."""
        if self._store is None:
            settings = self.config.store
            if settings is None:
                raise ConfigError("No shared store is configured: fleet keeps its state in files here.",
                                  hint='Set `[store] url = "postgresql://..."` in fleet.toml or $FLEET_STORE_URL.',
                                  path=str(self.config.path), key="$.store.url")
            from fleet.store.db import Database

            self._store = Database(settings)
        return self._store

    @property
    def audit_sinks(self) -> tuple[AuditSink, ...]:
        """Where audit records go besides `audit.jsonl`: the shared store's table with `[store]`."""
        if self._audit_sinks is None:
            self._audit_sinks = ()
            if self.config.store is not None:
                from fleet.store.auditlog import PgAuditSink

                self._audit_sinks = (PgAuditSink(self.store),)
        return self._audit_sinks

    @property
    def ledger(self) -> LedgerBackend:
        """The assignment ledger, opened on first use, closed with `close()`: `<state_dir>/fleet.db`, or
        the shared store's rows when `[store] url` is set (as is the watchdog's memory, `.watchdogstore`)."""
        if self._ledger is None:
            if self.config.store is not None:
                from fleet.work.pgledger import PgLedger

                self._ledger = PgLedger(self.store, self.config.state_dir)
            else:
                from fleet.work.ledger import Ledger

                self._refuse_without_store()
                self._ledger = Ledger(self.config.state_dir)
        return self._ledger

    @property
    def hosts(self) -> Hosts:
        """The config's `[hosts]` (`fleet.hosts`): the process's channels, opened on first use and kept
        for the process's life (not closed by `close`)."""
        if self._hosts is None:
            from fleet import __version__
            from fleet.hosts.channel import Hosts

            self._hosts = Hosts(self.config.hosts, __version__)
        return self._hosts

    def close(self) -> None:
        """Close what this service opened (the ledger, the store's connections). Safe to call twice."""
        if self._ledger is not None:
            self._ledger.close()
            self._ledger = None
        if self._store is not None:
            self._store.close()
            self._store = None
        self._audit_sinks = None

    def holder_for(self, holder: str | None) -> str:
        return holder or self.holder

    def specs(self, agents: list[str] | None) -> list[AgentSpec]:
        return self.config.select(agents)

    @contextlib.contextmanager
    def leased(self, specs: list[AgentSpec], holder: str | None, token: int | None, *,
               operation: str = "operation", wait: float = OP_WAIT, bound: float = 0.0) -> Iterator[None]:
        """Run the body holding, for every agent in `specs`, its operation lock and `holder`'s lease
        (or a transient one). Agents are taken in name order, so two calls never wait on each
        other crosswise; every failure (`agent_busy`, `lease_held`, `lease_lost`) raises before the
        body runs, and whatever was taken is let go. `bound` is how long the body may run (seconds):
        a transient lease outlives it (`fleet.leases.rules.transient_ttl`)."""
        self.check_token(specs, token)
        with contextlib.ExitStack() as stack:
            for spec in sorted(specs, key=lambda s: s.name):
                stack.enter_context(self.agent_guard(spec, holder, token, operation=operation, wait=wait,
                                                     bound=bound))
            yield

    def check_token(self, specs: list[AgentSpec], token: int | None) -> None:
        if token is not None and len(specs) != 1:
            raise InvalidInput("A token fences one agent; name exactly one agent with --token.",
                               hint="Run the command once per agent, each with its own token.")

    @contextlib.contextmanager
    def agent_guard(self, spec: AgentSpec, holder: str | None, token: int | None, *, operation: str,
                    wait: float = OP_WAIT, bound: float = 0.0) -> Iterator[None]:
        """One agent's operation lock, then the lease, for the whole body.

        The lock comes first and goes last: an operation's transient lease is ended before the next
        operation (same holder or not) can begin, so it is never freed under a running operation.
        When another operation is running and the agent is leased to someone else, `lease_held` is
        raised at once rather than after the wait.
        """
        from fleet.leases.rules import transient_ttl

        who = self.holder_for(holder)
        agent_dir = ensure_dir(self.config.state_dir / "agents" / spec.name)
        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(op_lock(agent_dir, spec.name, operation=operation, holder=who, wait=0))
            except AgentBusy:
                if wait <= 0:
                    raise
                self._refuse_other_holder(spec.name, who)
                stack.enter_context(op_lock(agent_dir, spec.name, operation=operation, holder=who, wait=wait))
            stack.enter_context(self.leases.guard(spec.name, who, token, ttl=transient_ttl(bound)))
            yield

    def _refuse_other_holder(self, agent: str, who: str) -> None:
        from fleet.leases.rules import lease_held_error, lease_state

        lease = self.leases.get(agent)
        now = time.time()
        if lease is not None and lease.holder != who and lease_state(lease, now) == "held":
            raise lease_held_error(lease, now)

    def audit_operation(self, name: str, args: dict[str, Any], outcome: str, code: str | None, ms: int) -> None:
        """Append the operation's audit record. Never raises: the action already happened, so a
        failing audit write is logged loudly instead of turning a done operation into an error."""
        holder = self.holder_for(args.get("holder"))
        agents = args.get("agents") or ([args["agent"]] if "agent" in args else None)
        try:
            try:
                state_dir = self.config.state_dir
            except StateDirError as exc:  # refused as unsafe: the caller already has that error, and no
                logger.debug("unsafe state dir: %s is not audited (%s)", name, exc.code)  # record goes there
                return
            ensure_dir(state_dir)
            # An operation the store just failed: its record stays local (no second connect timeout).
            sinks = self.audit_sinks if code != "store_unavailable" else ()
            audit.record(state_dir, name, sinks=sinks, surface=self.surface, holder=holder,
                         agents=agents, outcome=outcome, code=code, ms=ms)
        except ConfigError as exc:  # no or no valid fleet.toml (`fleet install` before one exists): no
            # state dir to audit in, and the caller already has the config error
            logger.debug("no usable fleet config: %s is not audited (%s)", name, exc.code)
        except (FleetError, OSError) as exc:
            logger.error("fleet: could not write the audit record for %s (%s): %s", name, outcome, exc)
