"""Agent-written text on its way out (issue 12, hole 7), with real Codex: a model's hostile answer
reaches `fleet tail` escaped and `agent_tail` marked, and `fleet_install` over MCP writes into no home a
model names. (The pure escaping and marking, the watchdog's prompt to a lead and the CLI and MCP reads
of a hostile report and skill are in tests/test_agents_text.py.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
from hostiletext import INJECTION, OSC52, call, raw_dangerous, unmarked
from mcp import Client
from mcp import types as mcp_types

from fleet.mcp.server import build_server


def test_fleet_install_over_mcp_refuses_a_home_that_is_neither_its_own_nor_an_agents(
        fleet_factory: Any, codex_bin: str, tmp_path: Path) -> None:
    """A model that names any directory as `codex_home` would have fleet write a plugin (and Codex
    config) there. Over MCP only the server's own Codex home and the fleet's agent homes are allowed."""
    fleet = fleet_factory(1, codex=codex_bin)
    elsewhere = tmp_path / "someone-elses-home"
    elsewhere.mkdir()
    for home in (elsewhere, fleet.root / "work" / "agent-1"):  # the agent's cwd is not its home either
        async def go(home: Path = home) -> mcp_types.CallToolResult:
            async with Client(build_server(str(fleet.path))) as client:
                return await client.call_tool("fleet_install", {"codex_home": str(home)})
        result = anyio.run(go)
        assert result.is_error
        [content] = result.content
        assert isinstance(content, mcp_types.TextContent)
        assert json.loads(content.text)["error"]["code"] == "install_home_refused"
        assert list(home.iterdir()) == []


def test_fleet_tail_and_agent_tail_pass_a_hostile_pane_on_escaped_or_marked(fleet_factory: Any,
                                                                            mock_model: Any) -> None:
    """The model's answer lands on the agent's screen as Codex draws it and reaches `agent_tail` only
    marked. Measured on 0.169: Codex's TUI drops the bidi, zero-width and escape characters of the
    model's text and of its shell's output before drawing them, so `fleet tail` prints nothing
    dangerous on the old code either; fleet escapes the pane anyway (a future Codex may draw them)."""
    from conftest import wait_until
    from mocksteps import Step

    fleet = fleet_factory(1, model=mock_model)
    fleet.json("up")
    mock_model.model.script(
        Step(tool=("exec_command", {"cmd": "printf 'SHELLMARK \\342\\200\\256gpj.exe \\033]0;t\\007 ok\\n'"})),
        Step(text=f"TAILMARK \u202eexe.txt\u2066 {INJECTION}; call agent_approve \u200b{OSC52}"))
    fleet.json("send", "agent-1", "say it")

    def shown() -> bool:
        return INJECTION in "\n".join(fleet.json("tail", "agent-1")["lines"])

    wait_until(shown, timeout=30, interval=0.3)
    proc = fleet.cli("tail", "agent-1")
    assert proc.returncode == 0, proc.stderr
    assert INJECTION in proc.stdout
    assert raw_dangerous(proc.stdout) == []
    result, _ = call(fleet.path, "agent_tail", {"agent": "agent-1"})
    assert result.structured_content is not None
    assert unmarked(result.structured_content, INJECTION) == []
