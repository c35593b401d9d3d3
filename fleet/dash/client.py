"""The dashboard's one way into fleet: registry operations under the holder `dash:<user>`.

Like the CLI and the MCP server, the dashboard holds no logic of its own: every read and every
action is `fleet.ops.invoke` on a `Service` of surface `dash` (so audit records say `dash` and
leases are taken as `dash:<user>`, or `$FLEET_HOLDER`). Reads share one long-lived `Service`, used
by one poller thread at a time; each action gets a fresh one (it may run while a poll does).

Refreshing cheaply: no operation says "has anything changed?", so `Poller` does it in two parts.
It asks the ledger's event cursor (`fleet_events`, one indexed query) every poll and re-reads the
assignments only when the cursor moved. It re-reads `fleet_status` when an agent's journal changed
(size or mtime of `<state_dir>/agents/<name>/events.jsonl`, the layout DESIGN.md documents: every
hook, send, launch and stop lands there), and at least every `STATUS_EVERY` seconds regardless,
because some states have no journal event (a crashed pane, a trust prompt or a usage-limit banner on
the screen, a turn end only the rollout recorded). The selected agent's screen is read every poll
while it is busy, every `STATUS_EVERY` seconds while it is idle; `watchdog_status` (which asks
systemd) only every `WATCHDOG_EVERY` seconds or after a tick.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Final

from fleet import ops
from fleet.agents.journal import journal_file
from fleet.errors import FleetError, InternalError
from fleet.service import Service
from fleet.service.agents import attach_argv

#: How often the watchdog's status is read: it runs `systemctl`, and ticks are minutes apart.
WATCHDOG_EVERY: Final = 15.0
#: The longest the dashboard goes without reading `fleet_status` when no journal changed: how late a
#: state with no journal event (a crash, a screen-only prompt) may show.
STATUS_EVERY: Final = 3.0
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

    def journal_stamps(self) -> tuple[tuple[str, int, int], ...] | None:
        """Size and mtime of every agent's journal (None when the config cannot be read): a stat per
        agent, what the poller compares to tell whether `fleet_status` needs reading again."""
        with self._read_lock:
            try:
                if self._reader is None:
                    self._reader = self.service()
                config = self._reader.config
            except Exception:
                return None
        out = []
        for name in config.agents:
            try:
                st = os.stat(journal_file(config.state_dir, name))
                out.append((name, st.st_size, st.st_mtime_ns))
            except OSError:
                out.append((name, -1, -1))
        return tuple(out)

    def close(self) -> None:
        """Close the reading Service, unless a poll still reads with it (it ends with the process)."""
        if not self._read_lock.acquire(timeout=1.0):
            return
        try:
            if self._reader is not None:
                self._reader.close()
                self._reader = None
        finally:
            self._read_lock.release()

    def attach_argv(self, agent: str) -> list[str]:
        """The command line `fleet attach` runs for `agent` (the fleet's tmux socket and session)."""
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
        self._status_at: float | None = None
        self._stamps: tuple[tuple[str, int, int], ...] | None = None
        self._status: dict[str, Any] = {"agents": []}
        self._pane_agent: str | None = None
        self._pane_at: float | None = None
        self._first = True

    def want_watchdog(self) -> None:
        """Read the watchdog's status on the next poll (after a tick)."""
        self._watchdog_at = None

    def want_status(self) -> None:
        """Read `fleet_status` on the next poll (after an action)."""
        self._status_at = None

    def _read_status(self, errors: list[str]) -> dict[str, Any]:
        now = self._clock()
        stamps = self.client.journal_stamps()
        fresh = self._status_at is not None and now - self._status_at < STATUS_EVERY
        if fresh and stamps is not None and stamps == self._stamps:
            return self._status
        try:
            self._status = self.client.read("fleet_status", {})
            self._status_at, self._stamps = now, stamps
        except Exception as exc:
            errors.append(error_line(exc))
            self._status_at = None
        return self._status

    def poll(self, pane_agent: str | None) -> Snapshot:
        started = time.perf_counter()
        errors: list[str] = []
        status = self._read_status(errors)
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
        return Snapshot(status=status, events=events, cursor=self.cursor, assignments=assignments,
                        watchdog=watchdog, pane=self._read_pane(pane_agent, status), pane_agent=pane_agent,
                        errors=errors, ms=(time.perf_counter() - started) * 1000)

    def _read_pane(self, agent: str | None, status: dict[str, Any]) -> list[str] | None:
        """The agent's screen: every poll while it is busy or just selected, else every `STATUS_EVERY`
        seconds (an idle Codex screen changes only when someone types in it)."""
        if agent is None:
            return None
        state = next((a.get("state") for a in status.get("agents", []) if a.get("name") == agent), None)
        if state in (None, "stopped"):
            return ["(stopped: no screen)"]
        now = self._clock()
        quiet = state in ("idle", "exited", "limited")
        if quiet and self._pane_agent == agent and self._pane_at is not None and now - self._pane_at < STATUS_EVERY:
            return None
        self._pane_agent, self._pane_at = agent, now
        try:
            lines: list[str] = self.client.read("agent_tail", {"agent": agent, "lines": PANE_LINES})["lines"]
        except Exception as exc:
            return [error_line(exc)]
        return lines
