"""The `fleet` program (`python -m fleet` and the `fleet` console script): the CLI, given the MCP
server that `fleet mcp` runs and the dashboard `fleet dash` runs. The one module that wires the
surfaces together; each loads only when its command runs."""

from __future__ import annotations

from types import ModuleType

from fleet import cli


def serve_mcp(config_path: str | None) -> None:
    """`fleet mcp`: the MCP server over stdio, with the mcp SDK it alone loads."""
    from fleet.mcp.server import serve

    serve(config_path)


def load_dash() -> ModuleType:
    """`fleet dash` and `fleet attach` without an agent: the dashboard (Textual loads in its `run`)."""
    import fleet.dash

    return fleet.dash


def main() -> None:
    cli.main(serve_mcp=serve_mcp, load_dash=load_dash)


if __name__ == "__main__":
    main()
