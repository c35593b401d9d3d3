"""The `fleet` program (`python -m fleet` and the `fleet` console script): the CLI, given the MCP
server that `fleet mcp` runs. The one module that wires the two surfaces together."""

from __future__ import annotations

from fleet import cli


def serve_mcp(config_path: str | None) -> None:
    """`fleet mcp`: the MCP server over stdio, with the mcp SDK it alone loads."""
    from fleet.mcp.server import serve

    serve(config_path)


def main() -> None:
    cli.main(serve_mcp=serve_mcp)


if __name__ == "__main__":
    main()
