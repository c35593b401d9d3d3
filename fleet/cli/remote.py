"""`fleet remote-session` (hidden): fleet's operations as JSON lines on stdin/stdout, for another
fleet that reaches this host over ssh (`fleet.hosts.channel`; the protocol is `fleet.hosts.protocol`).

Each request runs through the registry (`fleet.ops.invoke`) exactly as the CLI and MCP run it (and
may name one of its internal operations, `fleet.ops.INTERNAL`), on a `Service` of its own (surface
`remote`), a few at a time; answers go out as they finish. A line it cannot read is answered with an
error and the session goes on; it ends at the end of its input, after the requests under way have
finished (an operation is never cut halfway because its caller went away). Nothing but answers is
written to stdout.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any, Final

import typer

from .base import state

if TYPE_CHECKING:
    from fleet.service import Service

#: Requests one session runs at once; more wait their turn.
WORKERS: Final = 4


def remote_session_cmd() -> None:
    """Serve fleet's operations as JSON lines on stdin/stdout (what a remote fleet runs over ssh)."""
    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but answers may reach the channel
    raise typer.Exit(serve(sys.stdin.buffer, out, state["config"]))


def _with_service(config_path: str | None, use: Callable[[Service], dict[str, Any]]) -> dict[str, Any]:
    """`use` on a `Service` of its own (surface `remote`), closed after."""
    from fleet.service import Service

    svc = Service(config_path=config_path, surface="remote")
    try:
        return use(svc)
    finally:
        svc.close()


def _ping(config_path: str | None) -> dict[str, Any]:
    """The `ping` a session answers itself: fleet's version and the agents its config defines."""
    from fleet import __version__

    return _with_service(config_path, lambda svc: {"version": __version__, "agents": sorted(svc.config.agents)})


def _run(config_path: str | None, op: str, args: dict[str, Any]) -> dict[str, Any]:
    from fleet import ops

    # another fleet: its internal operations too
    return _with_service(config_path, lambda svc: ops.invoke(svc, op, args, internal=True))


def serve(inp: IO[bytes], out: IO[bytes], config_path: str | None, workers: int = WORKERS) -> int:
    """Answer requests from `inp` on `out` until `inp` ends; returns the exit status (0)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from fleet import __version__
    from fleet.errors import FleetError, InternalError, InvalidInput
    from fleet.hosts.protocol import MAX_REQUEST, PING, answer, encode, hello, parse_request

    lock = threading.Lock()

    def reply(line: bytes) -> None:
        with lock:
            try:
                out.write(line)
                out.flush()
            except (OSError, ValueError):  # the caller went away: the work is done, the answer lost
                pass

    def handle(rid: str | int, op: str, args: dict[str, Any]) -> None:
        try:
            result = _ping(config_path) if op == PING else _run(config_path, op, args)
        except FleetError as exc:
            reply(answer(rid, error=exc))
        except Exception as exc:  # a bug in one request never ends the session
            reply(answer(rid, error=InternalError(f"Unexpected {type(exc).__name__}: {exc}.",
                                                  hint="This is a bug in fleet; report it.")))
        else:
            try:
                reply(answer(rid, result))
            except ValueError as exc:  # not JSON (a non-finite number): say so rather than hang the caller
                reply(answer(rid, error=InternalError(f"The result cannot be sent: {exc}.",
                                                      hint="This is a bug in fleet; report it.")))

    reply(encode(hello(__version__)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fleet-session") as pool:
        while True:
            line = inp.readline(MAX_REQUEST + 1)
            if not line:
                break
            if len(line) > MAX_REQUEST:
                while line and not line.endswith(b"\n"):  # skip the rest of the overlong line
                    line = inp.readline(MAX_REQUEST + 1)
                reply(answer(None, error=InvalidInput(f"remote-session: a request line of more than {MAX_REQUEST} "
                                                      "bytes.", hint="Keep requests under the bound.")))
                continue
            if not line.strip():
                continue
            try:
                req = parse_request(line)
            except FleetError as exc:
                rid = exc.data.pop("id", None)
                reply(answer(rid, error=exc))
                continue
            pool.submit(handle, req.id, req.op, req.args)
    return 0
