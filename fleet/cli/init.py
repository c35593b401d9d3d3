"""`fleet init`: write a commented fleet.toml that `fleet doctor` passes; `fleet.cli` registers it.

Not an operation, like `fleet trust`: it writes a config and trusts it, which no MCP client (a model
the user supervises) may do. The work is `fleet.service.init`; this module shows the file, asks,
and renders the result.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from .base import JsonOpt, fail, show


def _login_lines(result: dict[str, Any]) -> list[str]:
    """How each agent's home gets logged in, and the Codex homes found that could lend one."""
    lines = []
    needed = [a for a in result["agents"] if a["login"] == "needed"]
    for agent in result["agents"]:
        if agent["login"] == "has_auth":
            lines.append(f"  {agent['name']}: {agent['home']} already has an auth.json")
        elif agent["login"] in ("copy", "copied"):
            verb = "copied" if agent["login"] == "copied" else "gets a copy of"
            lines.append(f"  {agent['name']}: {agent['home']} {verb} {result['copy_auth_from']} (0600)")
    if needed:
        lines.append("Each new Codex home logs in once (Codex stops at its sign-in screen otherwise, and "
                     "`fleet doctor` cannot check a login):")
        lines += [f"  {a['login_command']}" for a in needed]
        lending = [h["path"] for h in result["codex_homes"] if h["auth"]]
        if lending:
            lines.append(f"or run init again with --copy-auth-from {lending[0]} to copy that home's auth.json "
                         "(0600) into each new home.")
    found = result["codex_homes"]
    if found:
        lines.append("Codex homes found: " + ", ".join(
            h["path"] + (" (logged in)" if h["auth"] else " (config only)") for h in found))
    return lines


def _place_lines(result: dict[str, Any]) -> list[str]:
    """Where the agents work: their worktrees of the repository, or the shared cwd and why."""
    if result["repo"] is None:
        return [f"{result['cwd_reason']} (without --role they are explorers, read-only)."]
    base = f"its current branch {result['base']!r}" if result["base"] else "the `base` you set"
    lead = " (a lead reads your checkout)" if any(a["repo"] is None for a in result["agents"]) else ""
    lines = [f"Each agent works in its own worktree of the repository {result['repo']}{lead}, under "
             f"{result['state_dir']}/worktrees, on a branch per assignment cut from {base}; your checkout is never "
             "touched."]
    return lines + [f"Note: {note}" for note in result["notes"]]


def _render_plan(result: dict[str, Any], text: str) -> None:
    print(f"fleet init will write {result['path']}:\n")
    print(text)
    for line in [*_place_lines(result), *_login_lines(result)]:
        print(line)


def _render_done(result: dict[str, Any]) -> None:
    print(f"wrote {result['path']} (fleet {result['fleet']!r}, {len(result['agents'])} agent(s), state dir "
          f"{result['state_dir']}); trusted it, so after an edit run `fleet trust {result['path']}`")
    for line in [*_place_lines(result), *_login_lines(result)]:
        print(line)
    fleet = "fleet" + (f" {result['config_option']}" if result["config_option"] else "")
    print(f"Next: `{fleet} doctor`, then `{fleet} up`. (Its plugin line is optional: `fleet up` "
          "installs the plugin in a lead's home itself; `fleet install` adds it to your own Codex.)")
    if result["repo"] is not None:
        print("Then hand out work and bring the verified work home:\n"
              f"  {fleet} assign --write src/part/ \"TASK\"   # routed to a worker, on branch fleet/<id> in its "
              "worktree\n"
              f"  {fleet} wait ID && {fleet} diff ID           # the verdict, then what the verified work changes\n"
              f"  {fleet} merge ID                           # into the base branch; a conflict changes nothing")


def init_cmd(
    agents: Annotated[int, typer.Option("--agents", help="How many agents (1-100).")] = 2,
    repo: Annotated[str | None, typer.Option(
        "--repo", help="The git repository the agents work on, each in its own worktree of it (default: the "
        "current directory). A directory outside git becomes every agent's shared cwd instead.")] = None,
    role: Annotated[list[str] | None, typer.Option(
        "--role", help="explorer, worker or lead: once for every agent, or once per agent in order "
        "(default: worker in a git repository, else explorer, read-only).", show_default=False)] = None,
    path: Annotated[str, typer.Option("--path", help="Where to write the config; never overwritten.")] = "fleet.toml",
    copy_auth_from: Annotated[str | None, typer.Option(
        "--copy-auth-from", help="A Codex home you logged in to (e.g. ~/.codex): copy its auth.json (0600) "
        "into each new agent home. Without it, init prints the `codex login` command for each.")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Write without asking.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Write a commented fleet.toml for N agents that `fleet doctor` passes, trust it, and say how
    each agent's Codex home logs in. In a git repository each agent gets its own worktree of it and
    `fleet merge` brings verified work into its branch. Shows the file and asks first unless --yes."""
    from fleet.errors import ConfirmationRequired
    from fleet.service.init import describe, plan_init, write_init

    try:
        plan = plan_init(agents=agents, roles=list(role or []), repo=repo, path=path, copy_auth_from=copy_auth_from)
        if not yes:
            if as_json or not (sys.stdin.isatty() and sys.stdout.isatty()):
                raise ConfirmationRequired(
                    f"Not writing {plan.path} without a yes: no terminal to ask in"
                    + (" (and --json prints one document)." if as_json else "."),
                    hint="Pass --yes to write it (run without --yes in a terminal to see it first).")
            show(describe(plan), False, lambda r: _render_plan(r, plan.text))
            if not typer.confirm("Write it?", default=True):
                raise typer.Abort()
        result = write_init(plan)
    except (typer.Abort, typer.Exit):
        raise
    except Exception as exc:
        fail(exc, as_json)
    show(result, as_json, _render_done)
