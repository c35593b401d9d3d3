"""`fleet usage`: the tokens each agent and each assignment used (the `fleet_usage` operation)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from .base import JsonOpt, run


def _figures(u: dict[str, Any]) -> str:
    return (f"{u['input']} in ({u['cached_input']} cached), {u['output']} out ({u['reasoning']} reasoning), "
            f"{u['turns']} turns")


def usage_cmd(agent: Annotated[str | None, typer.Option(help="Only this agent.")] = None,
              since: Annotated[str | None, typer.Option(help="Only since this long ago (e.g. 1h, 2d).")] = None,
              as_json: JsonOpt = False) -> None:
    """Tokens used per agent and per assignment: input (cached), output (reasoning), turns."""
    def render(r: dict[str, Any]) -> None:
        for a in r["agents"]:
            print(f"{a['name']}: {_figures(a['usage'])}")
        for a in r["assignments"]:
            print(f"{a['id']} ({a['agent']}, {a['state']}): {_figures(a['usage'])}")
        print(f"total: {_figures(r['total'])}")

    run("fleet_usage", {"agent": agent, "since": since}, as_json, render)
