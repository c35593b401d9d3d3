"""The `fleet store ...` commands: init (create or upgrade the shared store's schema) and status.

Both are registry operations (also MCP tools). The URL is always shown masked.
"""

from __future__ import annotations

from typing import Any, Final

import typer

from .base import JsonOpt, run

#: The help text of the `fleet store` group.
HELP: Final = "The shared store (PostgreSQL, [store] url): create or upgrade its schema, check it."


def init_cmd(as_json: JsonOpt = False) -> None:
    """Create or upgrade the shared store's schema (versioned migrations). Safe to repeat, from any host."""
    def render(r: dict[str, Any]) -> None:
        done = ", ".join(r["applied"]) if r["applied"] else "nothing to do"
        print(f"store {r['store']}: schema version {r['version']} ({done})")
    run("store_init", {}, as_json, render)


def status_cmd(as_json: JsonOpt = False) -> None:
    """Say which store holds the leases and the ledger, and whether it answers with this fleet's schema
    (exit 1 if not)."""
    def render(r: dict[str, Any]) -> None:
        if r["backend"] == "embedded":
            print(f"store: embedded (lease files and the SQLite ledger in {r['state_dir']})")
            return
        if not r["reachable"]:
            print(f"store {r['store']} (from {r['source']}): UNREACHABLE")
        elif not r["current"]:
            found = "no fleet schema" if r["version"] is None else f"schema version {r['version']}"
            print(f"store {r['store']}: {found}, this fleet needs {r['needed']} -> run `fleet store init`")
        else:
            print(f"store {r['store']}: ok, PostgreSQL {r['server_version']}, schema version {r['version']}, "
                  f"namespace {r['namespace']}, as host {r['host']}")
    result = run("store_status", {}, as_json, render)
    if not result["ok"]:
        raise typer.Exit(1)
