"""`fleet install`: the CLI command of the `fleet_install` operation.

In a module of its own, like the commands of every capability; `fleet.cli` registers it.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from .base import JsonOpt, run


def _render(result: dict[str, Any]) -> None:
    home = result["codex_home"]
    verb = "removed from" if result["action"] == "uninstall" else "installed in"
    if result["changed"]:
        print(f"{result['plugin']} {result['version']} {verb} {home}: {', '.join(result['changes'])}")
    else:
        state = "installed" if result["installed"] else "not installed"
        print(f"{result['plugin']} {result['version']} already {state} in {home}: nothing to do")
    if result["installed"]:
        print(f"MCP server: {' '.join(result['mcp_command'])}")
        print("Start `codex` and ask for `$fleet-lead`; `fleet doctor` shows where the plugin is installed.")


def install_cmd(
    codex_home: Annotated[str | None, typer.Option(
        "--codex-home", help="The Codex home (default: $CODEX_HOME, else ~/.codex).")] = None,
    uninstall: Annotated[bool | None, typer.Option(
        "--uninstall", help="Remove the plugin instead.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Install fleet's Codex plugin (MCP tools, fleet-lead and fleet-report skills) with Codex's own
    `codex plugin` commands; running it again changes nothing."""
    run("fleet_install", {"codex_home": codex_home, "uninstall": uninstall}, as_json, _render)
