"""`fleet trust`: the user's say-so for a `./fleet.toml`; `fleet.cli` registers it.

Not an operation on purpose: the MCP server must never offer it, or the model the user is
supervising (or a repository's AGENTS.md it read) could trust the config it wrote.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from .base import JsonOpt, fail, show


def _render(result: dict[str, Any]) -> None:
    if result["action"] == "list":
        for rec in result["trusted"]:
            print(f"{rec['path']}  {rec['sha256'][:19]}...")
        if not result["trusted"]:
            print("No fleet.toml is trusted.")
        return
    if result["action"] == "revoke":
        print(f"{result['path']}: " + ("no longer trusted" if result["revoked"] else "was not trusted"))
        return
    print(f"trusted {result['path']} ({result['sha256'][:19]}...); editing it needs `fleet trust` again")
    about = result["config"]
    if "error" in about:
        print(f"note: it is not a valid config yet: {about['error']['message']}")
    else:
        print(f"fleet {about['fleet']!r}, state dir {about['state_dir']}, agents {', '.join(about['agents'])}")
        print(f"programs it names: {', '.join(about['programs'])}")


def trust_cmd(
    path: Annotated[str, typer.Argument(help="The config to trust (default ./fleet.toml).")] = "fleet.toml",
    revoke: Annotated[bool, typer.Option("--revoke", help="Forget it instead.")] = False,
    list_all: Annotated[bool, typer.Option("--list", help="List the trusted configs.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Trust a fleet.toml found in the current directory, with its exact content (like `direnv allow`).

    fleet uses a ./fleet.toml only after this; a changed file must be trusted again. --config and
    $FLEET_CONFIG (named by you) and ~/.config/fleet/fleet.toml need no trust. The record is kept in
    your own state ($XDG_STATE_HOME/fleet/trusted-configs.json), never in the repository."""
    from fleet.config import describe
    from fleet.config import trust as config_trust

    target = Path(path).expanduser()
    try:
        if list_all:
            result: dict[str, Any] = {"action": "list", "trusted": config_trust.trusted()}
        elif revoke:
            result = {"action": "revoke", "path": str(target.absolute()), "revoked": config_trust.revoke(target)}
        else:
            record = config_trust.trust(target)
            result = {"action": "trust", **record, "config": describe(Path(record["path"]))}
    except Exception as exc:
        fail(exc, as_json)
    show(result, as_json, _render)  # escaped: the file judged may be a hostile repository's
