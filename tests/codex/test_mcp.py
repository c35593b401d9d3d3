"""`fleet mcp` through the official MCP Python SDK client with real Codex behind it: one start -> send
-> completed turn -> stop against the mock model. (The tool list, validation and the Inspector CLI,
which need no Codex, are in tests/test_mcp.py.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conftest import wait_until
from mcpclient import errlog, mcp_session

__all__ = ["errlog"]  # a fixture from mcpclient: pytest finds it in this module by name


def test_start_send_complete_stop_through_mcp(fleet_factory: Any, mock_model: Any, errlog: Path) -> None:
    fleet = fleet_factory(1, model=mock_model)
    with mcp_session(fleet.path, errlog) as mcp:
        started = mcp.ok("agent_start", {"agents": ["agent-1"]})
        assert started["agents"][0]["agent"] == "agent-1"
        assert started["agents"][0]["state"] == "idle"

        def status() -> dict[str, Any]:
            result = mcp.ok("fleet_status", {"agents": ["agent-1"]})
            [row] = result["agents"]
            return dict(zip(result["columns"], row, strict=True))

        assert status()["state"] == "idle"

        receipt = mcp.ok("agent_send", {"agent": "agent-1", "text": "Say hello through MCP."})
        assert receipt["delivered"] is True
        assert receipt["agent"] == "agent-1"
        assert receipt["turn_id"]

        def completed() -> dict[str, Any] | None:
            entry = fleet.status("agent-1")  # the CLI's complete form has the turn id and message
            last = entry.get("last_turn") or {}
            done = entry["state"] == "idle" and last.get("outcome") == "completed" \
                and last.get("turn_id") == receipt["turn_id"]
            return entry if done else None

        entry = wait_until(completed, timeout=30, interval=0.2)
        assert entry["last_turn"]["last_message"] == "Done."
        assert (status()["state"], status()["last"]) == ("idle", "completed")
        assert "Say hello through MCP." in mock_model.model.user_prompts()

        stopped = mcp.ok("agent_stop", {"agents": ["agent-1"]})
        assert stopped["agents"][0]["agent"] == "agent-1"
        assert status()["state"] in ("stopped", "exited")
        assert fleet.status("agent-1")["pid"] is None
