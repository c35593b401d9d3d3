"""The `Runtime` facade: one object with every agent lifecycle call, for the service layer.

Each responsibility lives in its own module, and the facade only forwards to it:

- `observe` (the `Observer` base: paths, journal, `observe`, `status`, `tail`, `server_exposure`);
- `launch` (`prepare`, `to_start`, `start_many`, `await_ready`, `restart` and its steps);
- `send` (typing a prompt and the receipt);
- `stop` (`interrupt`, `stop`, `stop_many`).

Imports point down: `launch`, `send` and `stop` stand on `observe` (and `launch` on `stop`, to kill a
start that did not become ready), and this facade on all four. It imports `launch`, `send` and
`stop` only when one of their calls is made, so a read-only command such as `fleet status` loads
none of their code. Nothing here checks leases or the operation lock: the service layer holds both
before calling in, and it installs a lead's plugin (`fleet.service.install.ensure_lead_plugin`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from fleet.config import AgentSpec

from .observe import AgentStatus, Observer, wait_until
from .state import PaneFacts, Verdict

if TYPE_CHECKING:
    from .launch import StartResult
    from .send import Receipt
    from .stop import StopResult

__all__ = ["AgentStatus", "Runtime", "wait_until"]


class Runtime(Observer):
    """Observe, start, send to and stop one fleet's agents (see the module docstring). A timeout or
    grace left at None is the forwarded module's default (`START_TIMEOUT`, `DELIVERY_TIMEOUT`,
    `STOP_GRACE`)."""

    # ---- start (`launch`) ------------------------------------------------------------------------
    def prepare(self, spec: AgentSpec, resume: str | None = None) -> str:
        from . import launch

        return launch.prepare(self, spec, resume)

    def launch(self, spec: AgentSpec, command: str, pane: PaneFacts | None = None) -> int | None:
        from . import launch

        return launch.launch(self, spec, command, pane)

    def start_many(self, specs: list[AgentSpec], deadline: float, commands: Mapping[str, str],
                   panes: Mapping[str, PaneFacts]) -> dict[str, StartResult]:
        from . import launch

        return launch.start_many(self, specs, deadline, commands, panes)

    def to_start(self, specs: list[AgentSpec], panes: Mapping[str, PaneFacts]) -> list[AgentSpec]:
        from . import launch

        return launch.to_start(specs, panes)

    def await_ready(self, spec: AgentSpec, timeout: float | None = None) -> Verdict:
        from . import launch

        return launch.await_ready(self, spec, launch.START_TIMEOUT if timeout is None else timeout)

    def session_to_restart(self, spec: AgentSpec) -> PaneFacts:
        from . import launch

        return launch.session_to_restart(self, spec)

    def respawn(self, spec: AgentSpec, pane: PaneFacts, command: str, session_id: str | None,
                timeout: float | None = None) -> dict[str, Any]:
        from . import launch

        return launch.respawn(self, spec, pane, command, session_id,
                              launch.START_TIMEOUT if timeout is None else timeout)

    # ---- send (`send`) ---------------------------------------------------------------------------
    def send(self, spec: AgentSpec, text: str, request_id: str | None = None,
             timeout: float | None = None, holder: str | None = None) -> Receipt:
        from . import send
        from .text import DELIVERY_TIMEOUT

        return send.send(self, spec, text, request_id, DELIVERY_TIMEOUT if timeout is None else timeout, holder)

    # ---- interrupt / stop (`stop`) ---------------------------------------------------------------
    def interrupt(self, spec: AgentSpec, timeout: float = 5.0) -> dict[str, Any]:
        from . import stop

        return stop.interrupt(self, spec, timeout)

    def stop(self, spec: AgentSpec, grace: float | None = None) -> StopResult:
        from . import stop

        return stop.stop(self, spec, stop.STOP_GRACE if grace is None else grace)

    def stop_many(self, specs: list[AgentSpec]) -> list[StopResult]:
        from . import stop

        return stop.stop_many(self, specs)
