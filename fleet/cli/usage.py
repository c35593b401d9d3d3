"""`fleet usage`: the tokens each agent and each assignment used (the `fleet_usage` operation)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from fleet.tokens import format_tokens

from .base import JsonOpt, run


def budget_line(budget: int, use: dict[str, Any] | None) -> str:
    """`200k, 150k used (75%), 50k left` or `200k, 230k used (115%), OVER by 30k`."""
    if not use:
        return format_tokens(budget)
    used, left = int(use["used"]), int(use["left"])
    tail = f"OVER by {format_tokens(-left)}" if use.get("over") else f"{format_tokens(left)} left"
    return f"{format_tokens(budget)}, {format_tokens(used)} used ({used * 100 // budget}%), {tail}"


def _figures(u: dict[str, Any]) -> str:
    return (f"{u['input']} in ({u['cached_input']} cached), {u['output']} out ({u['reasoning']} reasoning), "
            f"{u['turns']} turns")


def usage_cmd(agent: Annotated[str | None, typer.Option(help="Only this agent.")] = None,
              since: Annotated[str | None, typer.Option(help="Only since this long ago (e.g. 1h, 2d).")] = None,
              as_json: JsonOpt = False) -> None:
    """Tokens used per agent and per assignment: input (cached), output (reasoning), turns; an
    assignment's budget with what it used against it (input + output)."""
    def render(r: dict[str, Any]) -> None:
        for a in r["agents"]:
            print(f"{a['name']}: {_figures(a['usage'])}")
        for a in r["assignments"]:
            budget = f"; budget {budget_line(a['budget'], a.get('budget_use'))}" if a.get("budget") else ""
            print(f"{a['id']} ({a['agent']}, {a['state']}): {_figures(a['usage'])}{budget}")
        print(f"total: {_figures(r['total'])}")

    run("fleet_usage", {"agent": agent, "since": since}, as_json, render)
