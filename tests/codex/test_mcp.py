"""`fleet mcp` through real MCP clients: the official Python SDK client over stdio, and the MCP
Inspector CLI (a third-party Node client).

Checked here: the tool list is exactly the operation registry, with its exact input schemas, an
output schema and annotations from the tier; strict validation (no coercion, no unknown keys) is
the gate and a bad call never takes the server down; structured content matches the text content;
one real start -> send -> completed turn -> stop through MCP with real Codex against the mock model;
the per-session default lease holder.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, wait_until
from test_mcp import mcp_session

TOOLS = {
    "fleet_status", "agent_start", "agent_stop", "agent_send", "agent_interrupt", "agent_tail",
    "fleet_doctor", "agent_claim", "agent_release", "fleet_leases", "lease_repair", "ledger_repair", "fleet_install",
    "skill_list", "assignment_create", "assignment_list", "assignment_get", "assignment_wait", "assignment_cancel",
    "fleet_events", "fleet_dispatch", "assignment_diff", "assignment_merge", "worktree_list", "worktree_prune",
    "watchdog_tick", "watchdog_status", "agent_approve", "agent_deny",
}
INSPECTOR_BIN = "mcp-inspector"
INSPECTOR_DEFAULT = REPO / ".codex-cli" / "node_modules" / ".bin" / INSPECTOR_BIN
#: The environment the server needs from the test (isolated_env sets these to temp paths).
PASSED_ENV = ("HOME", "XDG_STATE_HOME", "TMUX_TMPDIR", "FLEET_OFFLINE", "LANG", "LC_ALL", "TERM")


@pytest.fixture
def errlog(tmp_path: Path) -> Iterator[Path]:
    """The servers' stderr; shown when a test fails."""
    path = tmp_path / "mcp-stderr.log"
    path.touch()
    yield path
    text = path.read_text()
    if text.strip():
        print(f"--- MCP server stderr ---\n{text}")


# ---- the tool list is the registry ------------------------------------------------------------

# ---- strict validation; a bad call never takes the server down --------------------------------

# ---- one real round trip with real Codex ----------------------------------------------------

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


# ---- the MCP default holder -----------------------------------------------------------------

# ---- a third-party client: the MCP Inspector CLI --------------------------------------------

@pytest.fixture
def inspector() -> str:
    path = os.environ.get("FLEET_TEST_INSPECTOR") or str(INSPECTOR_DEFAULT)
    if not os.access(path, os.X_OK):
        pytest.fail(f"The MCP Inspector CLI is not installed at {path}: run `scripts/setup` first "
                    "(or point FLEET_TEST_INSPECTOR at an `mcp-inspector` binary).")
    return path


