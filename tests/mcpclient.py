"""The official MCP Python SDK client on a real `python -m fleet mcp` over stdio, driven from the
synchronous test thread (so tests can poll with `wait_until`), and the `errlog` fixture that keeps
the server's stderr and shows it when a test fails."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp import types as mcp_types

#: The environment the server needs from the test (isolated_env sets these to temp paths).
PASSED_ENV = ("HOME", "XDG_STATE_HOME", "TMUX_TMPDIR", "FLEET_OFFLINE", "LANG", "LC_ALL", "TERM")


def server_env() -> dict[str, str]:
    return {k: os.environ[k] for k in PASSED_ENV if k in os.environ}


@dataclass
class SyncSession:
    """An MCP client session driven from the (synchronous) test thread through a blocking portal,
    so tests can poll with `wait_until`."""

    portal: anyio.from_thread.BlockingPortal
    session: ClientSession

    def list_tools(self) -> list[mcp_types.Tool]:
        return self.portal.call(self.session.list_tools).tools

    def call(self, name: str, args: dict[str, Any] | None = None) -> mcp_types.CallToolResult:
        async def go() -> mcp_types.CallToolResult:
            with anyio.fail_after(100):
                return await self.session.call_tool(name, args or {})
        return self.portal.call(go)

    def ok(self, name: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        """Call a tool that must succeed; return its structured content (checked against the text)."""
        result = self.call(name, args)
        text = tool_text(result)
        assert not result.is_error, f"{name}({args}) failed: {text}"
        assert result.structured_content is not None, f"{name}: no structured content"
        assert json.loads(text) == result.structured_content
        return result.structured_content

    def error(self, name: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        """Call a tool that must fail; return the `error` object of its JSON text."""
        result = self.call(name, args)
        text = tool_text(result)
        assert result.is_error, f"{name}({args}) unexpectedly succeeded: {text}"
        payload = json.loads(text)
        assert set(payload["error"]) >= {"code", "message", "hint"}, payload
        return payload["error"]  # type: ignore[no-any-return]


def tool_text(result: mcp_types.CallToolResult) -> str:
    [content] = result.content
    assert isinstance(content, mcp_types.TextContent), content
    return content.text


@contextlib.contextmanager
def mcp_session(config: Path | None, errlog: Path, cwd: Path | None = None) -> Iterator[SyncSession]:
    """Launch `python -m fleet --config CONFIG mcp` and connect the official SDK client to it; with no
    CONFIG, `python -m fleet mcp` in `cwd`, as the Codex plugin starts it."""
    named = ["--config", str(config)] if config is not None else []
    params = StdioServerParameters(command=sys.executable, args=["-m", "fleet", *named, "mcp"], env=server_env(),
                                   cwd=None if cwd is None else str(cwd))

    @contextlib.asynccontextmanager
    async def connect() -> AsyncIterator[ClientSession]:
        with errlog.open("a") as log:
            async with stdio_client(params, errlog=log) as (read, write), \
                    ClientSession(read, write) as session:
                with anyio.fail_after(30):
                    await session.initialize()
                yield session

    with anyio.from_thread.start_blocking_portal() as portal, \
            portal.wrap_async_context_manager(connect()) as session:
        yield SyncSession(portal, session)


@pytest.fixture
def errlog(tmp_path: Path) -> Iterator[Path]:
    """The servers' stderr; shown when a test fails."""
    path = tmp_path / "mcp-stderr.log"
    path.touch()
    yield path
    text = path.read_text()
    if text.strip():
        print(f"--- MCP server stderr ---\n{text}")
