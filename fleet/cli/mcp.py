"""`fleet mcp`: serve the MCP surface over stdio.

The CLI and the MCP server are surfaces of one layer, so the CLI does not import the server: the
program that wires the two together (`fleet.__main__`) passes it to `fleet.cli.main`, which keeps it
in `state["serve_mcp"]`.
"""

from __future__ import annotations

from fleet.errors import InternalError

from .base import fail, state


def mcp_cmd() -> None:
    """Serve the team-lead tools over stdio (MCP). stdout carries only the protocol."""
    serve = state["serve_mcp"]
    if serve is None:
        fail(InternalError("This program has no MCP server to run.",
                           hint="Run `fleet mcp` or `python -m fleet mcp`."), False)
    serve(state["config"])
