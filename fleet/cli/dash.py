"""`fleet dash`: the live cockpit (`fleet.dash`), in this terminal or, with `--web`, in a browser.

The dashboard is a surface of the CLI's own layer, so this module does not import it: `base.dash_surface`
asks the program that wires the surfaces together (`fleet.__main__`) for it.
"""

from __future__ import annotations

from typing import Annotated

import typer

from .base import dash_surface, fail, run_dash, state


def dash_cmd(
    web: Annotated[bool, typer.Option(
        "--web", help="Serve the same cockpit to a browser; the first line printed is its URL, with a "
        "new token each start (a request without it gets 403).")] = False,
    host: Annotated[str, typer.Option(
        "--host", help="With --web: the address to bind (default loopback only).")] = "127.0.0.1",
    port: Annotated[int | None, typer.Option(
        "--port", help="With --web: the port (default: a free one).", min=1, max=65535)] = None,
    read_only: Annotated[bool, typer.Option(
        "--read-only", help="Show everything, act on nothing (no approve, send, cancel, start, stop).")] = False,
    expose_control: Annotated[bool, typer.Option(
        "--i-know-this-exposes-control", help="With --web on a non-loopback --host: allow actions "
        "anyway (anyone with the URL can approve commands and type into agents).")] = False,
) -> None:
    """The live cockpit: agents, leases, assignments, approvals, the watchdog (q quits, ? lists keys)."""
    if not web:
        raise typer.Exit(run_dash(read_only=read_only))
    dash = dash_surface()
    try:
        code = int(dash.serve_web(state["config"], host=host, port=port, read_only=read_only,
                                  expose_control=expose_control))
    except KeyboardInterrupt:
        code = 0
    except Exception as exc:
        fail(exc, False)
    raise typer.Exit(code)
