"""What every command of the `fleet` CLI shares: the typer app, the common options, the global
callback, calling an operation and rendering its result, and the one error renderer.

A command turns its arguments into the operation's input and calls `run`, which calls `ops.invoke`
and renders the result: a readable form on stdout, or with `--json` exactly one JSON document on
stdout. Errors are rendered once, in `report`: one line on stderr, a non-zero exit (3 for lease
conflicts) and, with `--json`, `{"error": {...}}` on stdout. typer's own usage errors (a bad value, a
missing argument, an unknown option) go through the same function as `invalid_input`, exit 2.

The command modules import from here and from nothing else in `fleet.cli`; `fleet.cli` registers
them on `app`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Annotated, Any, NoReturn

import typer

from fleet import __version__

from .params import PlainGroup

app = typer.Typer(
    cls=PlainGroup,
    name="fleet",
    help="Supervise a fleet of named Codex CLI agents in tmux: exact state, receipts, leases, MCP tools.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

#: Set for the one command a process runs: `config`, the global `--config` (by the callback); and the
#: other surfaces, which the CLI does not import (they are of its layer): `serve_mcp`, the MCP server
#: `fleet mcp` runs, and `load_dash`, which loads the dashboard for `fleet dash` and `fleet attach`
#: without an agent (both by `fleet.cli.main`, from the program that wires the surfaces together,
#: `fleet.__main__`).
state: dict[str, Any] = {"config": None, "serve_mcp": None, "load_dash": None}

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
HolderOpt = Annotated[str | None, typer.Option(
    "--holder", help="Lease holder (default: $FLEET_HOLDER, else cli:<user>).")]
TokenOpt = Annotated[int | None, typer.Option(
    "--token", help="Fencing token from `fleet claim`; a stale token is refused (lease_lost).")]
AgentsArg = Annotated[list[str] | None, typer.Argument(help="Agent names (default: all).", show_default=False)]
AgentArg = Annotated[str, typer.Argument(help="Agent name.")]


def _version(value: bool) -> None:
    if value:
        print(f"fleet {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    config: Annotated[str | None, typer.Option(
        "--config", "-c", help="Path to fleet.toml (default: $FLEET_CONFIG, else ./fleet.toml once you "
        "ran `fleet trust`, else ~/.config/fleet/fleet.toml).")] = None,
    version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version and exit.")] = False,
) -> None:
    """Global options come before the command: `fleet --config f.toml status`."""
    state["config"] = config


def service() -> Any:
    """A `Service` for the `--config` given; the caller closes it."""
    from fleet.service import Service

    return Service(config_path=state["config"], surface="cli")


def invoke(op: str, args: dict[str, Any]) -> dict[str, Any]:
    from fleet import ops

    svc = service()
    try:
        return ops.invoke(svc, op, args)
    finally:
        svc.close()


def report(exc: Exception, as_json: bool) -> int:
    """Print `exc` the one way the CLI prints errors; return the exit status."""
    from fleet.errors import FleetError, InternalError

    err = exc if isinstance(exc, FleetError) else InternalError(
        f"Unexpected {type(exc).__name__}: {exc}.",
        hint="This is a bug in fleet; rerun with FLEET_DEBUG=1 for a traceback and report it.")
    if os.environ.get("FLEET_DEBUG") and not isinstance(exc, FleetError):
        import traceback

        traceback.print_exception(exc)
    from fleet.untrusted import escape_terminal, json_text  # an error may quote an agent's words

    if as_json:
        print(json_text({"error": err.to_dict()}))
    hint = f" ({err.hint})" if err.hint else ""
    print(escape_terminal(f"fleet: {err.code}: {err.message}{hint}"), file=sys.stderr)
    return err.exit_status


def fail(exc: Exception, as_json: bool) -> NoReturn:
    """Render `exc` (`report`) and exit with its status."""
    raise typer.Exit(report(exc, as_json))


def show(result: Any, as_json: bool, render: Callable[[Any], Any] | None) -> None:
    """Print a result: one JSON document with `--json` or without a `render`, else `render`'s lines,
    escaped on their way to the terminal."""
    from fleet.untrusted import escaping_stdout, json_text  # agent text never reaches a terminal raw

    if as_json or render is None:
        print(json_text(result))
    else:
        with escaping_stdout():
            render(result)


def run(op: str, args: dict[str, Any], as_json: bool, render: Any = None) -> dict[str, Any]:
    """Run operation `op` with the `args` given (a `None` or `[]` is an argument left out), print its
    result (`show`) and return it; any error is rendered by `report` and exits."""
    args = {k: v for k, v in args.items() if v is not None and v != []}
    try:
        result: dict[str, Any] = invoke(op, args)
    except typer.Exit:
        raise
    except Exception as exc:
        fail(exc, as_json)
    show(result, as_json, render)
    return result


def dash_surface() -> Any:
    """The dashboard (`fleet.dash`), from the program that wires the surfaces (`state["load_dash"]`)."""
    load = state["load_dash"]
    if load is None:
        from fleet.errors import InternalError

        fail(InternalError("This program has no dashboard to run.",
                           hint="Run `fleet dash` or `python -m fleet dash`."), False)
    return load()


def run_dash(*, picker: bool = False, read_only: bool = False) -> int:
    """Run the dashboard in this terminal (`picker`: `fleet attach` without an agent) and return its
    exit status; an error before it starts (no config, an untrusted one) is rendered by `report`."""
    dash = dash_surface()
    try:
        return int(dash.run(state["config"], picker=picker, read_only=read_only))
    except Exception as exc:
        fail(exc, False)
