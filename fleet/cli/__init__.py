"""The `fleet` command line: a thin adapter over the operation registry.

`base` holds what every command shares (the app, the options, running an operation and the one error
renderer, `base.report`), `params` typer without pydantic; each other module holds the commands of
one capability and imports only `base`. This module alone registers them on the app, in the order
`fleet --help` lists them, and runs the one command a call names (`main`).

Start-up is most of a CLI call, so this package imports typer and nothing heavy: commands are
`params.PlainCommand`s (no pydantic), the registry loads only the handler it runs, and mcp,
libtmux, filelock and jsonschema load inside the code paths that need them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import typer

from . import agents, dash, init, install, leases, mcp, remote, store, trust, usage, watchdog, work, worktrees
from .base import app, report, state
from .params import PlainCommand, PlainGroup, usage_error

#: Every top-level command, in the order `fleet --help` lists them.
COMMANDS: tuple[tuple[str, Callable[..., None]], ...] = (
    ("init", init.init_cmd),
    ("status", agents.status_cmd),
    ("up", agents.up_cmd),
    ("down", agents.down_cmd),
    ("send", agents.send_cmd),
    ("interrupt", agents.interrupt_cmd),
    ("tail", agents.tail_cmd),
    ("attach", agents.attach_cmd),
    ("dash", dash.dash_cmd),
    ("doctor", agents.doctor_cmd),
    ("claim", leases.claim_cmd),
    ("release", leases.release_cmd),
    ("leases", leases.leases_cmd),
    ("lease-repair", leases.lease_repair_cmd),
    ("ledger-repair", work.ledger_repair_cmd),
    ("mcp", mcp.mcp_cmd),
    ("skills", work.skills_cmd),
    ("assign", work.assign_cmd),
    ("assignments", work.assignments_cmd),
    ("show", work.show_cmd),
    ("wait", work.wait_cmd),
    ("cancel", work.cancel_cmd),
    ("events", work.events_cmd),
    ("usage", usage.usage_cmd),
    ("dispatch", work.dispatch_cmd),
    ("diff", worktrees.diff_cmd),
    ("merge", worktrees.merge_cmd),
    ("worktrees", worktrees.worktrees_cmd),
    ("worktree-prune", worktrees.worktree_prune_cmd),
    ("install", install.install_cmd),
    ("trust", trust.trust_cmd),
    ("approve", watchdog.approve_cmd),
    ("deny", watchdog.deny_cmd),
    ("hosts", agents.hosts_cmd),
)

#: The commands of `fleet watchdog`, in the order `fleet watchdog --help` lists them.
WATCHDOG_COMMANDS: tuple[tuple[str, Callable[..., None]], ...] = (
    ("tick", watchdog.tick_cmd),
    ("status", watchdog.status_cmd),
    ("run", watchdog.run_cmd),
    ("install", watchdog.install_cmd),
    ("uninstall", watchdog.uninstall_cmd),
)

#: The commands of `fleet store`.
STORE_COMMANDS: tuple[tuple[str, Callable[..., None]], ...] = (
    ("init", store.init_cmd),
    ("status", store.status_cmd),
)



def _register() -> None:
    for name, command in COMMANDS:
        app.command(name, cls=PlainCommand)(command)
    app.command("remote-session", cls=PlainCommand, hidden=True)(remote.remote_session_cmd)
    group = typer.Typer(cls=PlainGroup, help=watchdog.HELP, no_args_is_help=True, rich_markup_mode=None)
    for name, command in WATCHDOG_COMMANDS:
        group.command(name, cls=PlainCommand)(command)
    app.add_typer(group, name="watchdog")
    stores = typer.Typer(cls=PlainGroup, help=store.HELP, no_args_is_help=True, rich_markup_mode=None)
    for name, command in STORE_COMMANDS:
        stores.command(name, cls=PlainCommand)(command)
    app.add_typer(stores, name="store")


_register()


def _wants_json(args: list[str]) -> bool:
    return "--json" in args[: args.index("--")] if "--" in args else "--json" in args


def _command_name(args: list[str]) -> str | None:
    """The command `args` run: the first word after the global options."""
    i = 0
    while i < len(args):
        if args[i] in ("--config", "-c"):
            i += 2
        elif args[i].startswith("-"):
            i += 1
        else:
            return args[i]
    return None


def _click_command(args: list[str]) -> Any:
    """The command line parser for `args`: when they name a command, a group holding only that
    one (typer builds each command from its signature, ~0.5 ms apiece, and a call runs one); with
    only global options (`--version`), none; otherwise (help, a typo) the whole CLI."""
    import copy

    import typer.main

    name = _command_name(args)
    chosen = [c for c in app.registered_commands if c.name == name]
    groups = [g for g in app.registered_groups if g.name == name]  # `fleet watchdog ...`
    if not chosen and not groups and (name is not None or not args or "--help" in args):
        return typer.main.get_command(app)  # help, a typo: everything
    one = copy.copy(app)
    one.registered_commands = chosen
    one.registered_groups = groups
    return typer.main.get_command(one)


def main(argv: list[str] | None = None, *, serve_mcp: Callable[[str | None], None] | None = None,
         load_dash: Callable[[], Any] | None = None) -> None:
    """Run the command `argv` (default: the process's arguments) names, exit with its status. A
    usage error typer finds comes out as fleet's `invalid_input` error (exit 2), like every other
    error. `serve_mcp(config_path)` is what `fleet mcp` runs (see `fleet.cli.mcp`); `load_dash()` returns
    the dashboard (`fleet.dash`: `run`, `serve_web`) for `fleet dash` (see `fleet.cli.dash`)."""
    state["serve_mcp"] = serve_mcp
    state["load_dash"] = load_dash
    args = sys.argv[1:] if argv is None else argv
    command = _click_command(args)
    try:
        status = command.main(args=args, prog_name="fleet", standalone_mode=False)
    except typer.Abort:
        print("fleet: aborted.", file=sys.stderr)
        status = 1
    except typer.TyperException as exc:  # click's usage errors
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare `fleet`: the help text, exit 2
            print(exc.format_message() if hasattr(exc, "format_message") else exc, file=sys.stderr)
            status = 2
        else:
            status = report(usage_error(exc), _wants_json(args))
    sys.exit(status if isinstance(status, int) else 0)


__all__ = ["COMMANDS", "STORE_COMMANDS", "WATCHDOG_COMMANDS", "app", "main"]
