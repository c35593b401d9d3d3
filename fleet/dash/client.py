"""The dashboard's one way into fleet: registry operations under the holder `dash:<user>`.

Like the CLI and the MCP server, the dashboard holds no logic of its own: every read and every
action is `fleet.ops.invoke` on a `Service` of surface `dash` (so audit records say `dash` and
leases are taken as `dash:<user>`, or `$FLEET_HOLDER`). Reads share one long-lived `Service`, used
by one poller thread at a time; each action gets a fresh one (it may run while a poll does).

Refreshing cheaply: no operation says "has anything changed?", so `Poller` asks the ledger's event
cursor (`fleet_events`, one indexed query) every poll and re-reads the assignments only when the
cursor moved; it reads `fleet_status` every poll (agent state comes from journals, tmux pane facts and
screen text for approval menus and usage-limit banners, and only status reads all three), the
selected agent's screen every poll, and `watchdog_status` (which asks systemd) only every
`WATCHDOG_EVERY` seconds or after a tick.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Final

from fleet import ops
from fleet.service import Service

#: How often the watchdog's status is read: it runs `systemctl`, and ticks are minutes apart.
WATCHDOG_EVERY: Final = 15.0
#: Ledger events read per `fleet_events` call, and the most a poll passes on (the log shows fewer).
EVENT_PAGE: Final = 1000
#: Lines of the selected agent's screen shown in the pane region.
PANE_LINES: Final = 40


@dataclass
class Snapshot:
    """What one poll read. `assignments` and `watchdog` are None when not re-read this time."""

    status: dict[str, Any]
    events: list[dict[str, Any]]
    cursor: int
    assignments: list[dict[str, Any]] | None
    watchdog: dict[str, Any] | None
    pane: list[str] | None
    pane_agent: str | None
    errors: list[str] = field(default_factory=list)
    ms: float = 0.0


def error_line(exc: BaseException) -> str:
    """An exception as the one line the dashboard shows: `code: message (hint)`."""
    from fleet.errors import FleetError, InternalError

    err = exc if isinstance(exc, FleetError) else InternalError(
        f"Unexpected {type(exc).__name__}: {exc}.", hint="This is a bug in fleet; run `fleet status` to compare.")
    hint = f" ({err.hint})" if err.hint else ""
    return f"{err.code}: {err.message}{hint}"


class Client:
    """Registry calls for the dashboard. `call` is thread-safe (a fresh `Service` per call)."""

    def __init__(self, config_path: str | None) -> None:
        self.config_path = config_path
        self._reader: Service | None = None
        self._read_lock = threading.Lock()

    def service(self) -> Service:
        return Service(config_path=self.config_path, surface="dash")

    @property
    def holder(self) -> str:
        return self.service().holder

    def call(self, op: str, args: dict[str, Any]) -> dict[str, Any]:
        """Run one operation (an action) on its own `Service`; raises what the operation raises."""
        svc = self.service()
        try:
            return ops.invoke(svc, op, args)
        finally:
            svc.close()

    def read(self, op: str, args: dict[str, Any]) -> dict[str, Any]:
        """Run a read-only operation on the shared reader `Service` (one at a time)."""
        with self._read_lock:
            if self._reader is None:
                self._reader = self.service()
            try:
                return ops.invoke(self._reader, op, args)
            except Exception:
                self._reader.close()  # start afresh next time: a config or ledger fault may be mended
                self._reader = None
                raise

    def close(self) -> None:
        with self._read_lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None

    def attach_argv(self, agent: str) -> list[str]:
        """The command line `fleet attach` runs for `agent` (the fleet's tmux socket and session)."""
        from fleet.service.agents import attach_argv

        svc = self.service()
        try:
            return attach_argv(svc, agent, False)
        finally:
            svc.close()


def attach_env() -> dict[str, str]:
    """The environment for tmux attach: without `TMUX`, so it works from inside another tmux."""
    return {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}


class Poller:
    """The dashboard's reads, from the cheap ones to the dear ones; see the module docstring."""

    def __init__(self, client: Client, clock: Any = time.monotonic) -> None:
        self.client = client
        self.cursor = 0
        self._clock = clock
        self._watchdog_at: float | None = None
        self._first = True

    def want_watchdog(self) -> None:
        """Read the watchdog's status on the next poll (after a tick)."""
        self._watchdog_at = None

    def poll(self, pane_agent: str | None) -> Snapshot:
        started = time.perf_counter()
        errors: list[str] = []
        status: dict[str, Any] = {"agents": []}
        try:
            status = self.client.read("fleet_status", {})
        except Exception as exc:
            errors.append(error_line(exc))
        events: list[dict[str, Any]] = []
        start = self.cursor
        try:
            while True:  # catch up page by page (the first poll reads the whole ledger's events once)
                got = self.client.read("fleet_events", {"since": self.cursor, "limit": EVENT_PAGE})
                events = (events + got["events"])[-EVENT_PAGE:]
                self.cursor = got["cursor"]
                if len(got["events"]) < EVENT_PAGE:
                    break
        except Exception as exc:
            errors.append(error_line(exc))
        moved = self.cursor != start
        assignments = None
        if moved or self._first:
            try:
                assignments = self.client.read("assignment_list", {"limit": 50})["assignments"]
                self._first = False
            except Exception as exc:
                errors.append(error_line(exc))
        watchdog = None
        now = self._clock()
        if self._watchdog_at is None or now - self._watchdog_at >= WATCHDOG_EVERY:
            self._watchdog_at = now
            try:
                watchdog = self.client.read("watchdog_status", {"ticks": 10})
            except Exception as exc:
                errors.append(error_line(exc))
        pane = None
        if pane_agent is not None:
            state = next((a.get("state") for a in status.get("agents", []) if a.get("name") == pane_agent), None)
            if state not in (None, "stopped"):
                try:
                    pane = self.client.read("agent_tail", {"agent": pane_agent, "lines": PANE_LINES})["lines"]
                except Exception as exc:
                    pane = [error_line(exc)]
            else:
                pane = ["(stopped: no screen)"]
        return Snapshot(status=status, events=events, cursor=self.cursor, assignments=assignments,
                        watchdog=watchdog, pane=pane, pane_agent=pane_agent, errors=errors,
                        ms=(time.perf_counter() - started) * 1000)
