"""`fleet mcp` through real MCP clients: the official Python SDK client over stdio, and the MCP
Inspector CLI (a third-party Node client).

Checked here: the tool list is exactly the operation registry, with its exact input schemas, an
output schema and annotations from the tier; strict validation (no coercion, no unknown keys) is
the gate and a bad call never takes the server down; structured content matches the text content;
the per-session default lease holder. (One real start -> send -> completed turn -> stop with real
Codex is in tests/codex/test_mcp.py.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO
from mcpclient import errlog, mcp_session, server_env, tool_text

from fleet import ops

TOOLS = {
    "fleet_status", "agent_start", "agent_stop", "agent_send", "agent_interrupt", "agent_tail",
    "fleet_doctor", "agent_claim", "agent_release", "fleet_leases", "lease_repair", "ledger_repair", "fleet_install",
    "skill_list", "assignment_create", "assignment_list", "assignment_get", "assignment_wait", "assignment_cancel",
    "fleet_events", "fleet_dispatch", "assignment_diff", "assignment_merge", "worktree_list", "worktree_prune",
    "fleet_usage", "watchdog_tick", "watchdog_status", "agent_approve", "agent_deny", "store_init", "store_status",
    "fleet_hosts",
}
INSPECTOR_BIN = "mcp-inspector"
INSPECTOR_DEFAULT = REPO / ".codex-cli" / "node_modules" / ".bin" / INSPECTOR_BIN

__all__ = ["errlog"]  # a fixture from mcpclient: pytest finds it in this module by name

# ---- the tool list is the registry ------------------------------------------------------------

def test_tools_are_exactly_the_registry(fleet_factory: Any, errlog: Path) -> None:
    fleet = fleet_factory(1)
    with mcp_session(fleet.path, errlog) as mcp:
        tools = {t.name: t for t in mcp.list_tools()}
    assert set(tools) == TOOLS == set(ops.REGISTRY)
    for name, tool in tools.items():
        op = ops.REGISTRY[name]
        assert tool.input_schema == op.input_schema, name
        assert tool.input_schema["additionalProperties"] is False, name
        assert tool.output_schema is not None, name
        assert tool.output_schema == op.output_schema, name
        assert tool.description == op.summary, name
        ann = tool.annotations
        assert ann is not None, name
        assert ann.read_only_hint is (op.tier == "readonly"), name
        assert ann.destructive_hint is (op.tier == "destructive"), name


# ---- strict validation; a bad call never takes the server down --------------------------------

def test_strict_validation_and_server_survives_bad_calls(fleet_factory: Any, errlog: Path) -> None:
    fleet = fleet_factory(1)
    with mcp_session(fleet.path, errlog) as mcp:
        err = mcp.error("agent_tail", {"agent": "agent-1", "lines": "5"})  # no coercion
        assert err["code"] == "invalid_input"
        assert "lines" in err["message"]

        err = mcp.error("agent_tail", {"agent": "agent-1", "lines": 5, "colour": "red"})  # unknown key
        assert err["code"] == "invalid_input"
        assert "colour" in err["message"]

        err = mcp.error("fleet_status", {"agents": "agent-1"})  # a string is not a list
        assert err["code"] == "invalid_input"

        err = mcp.error("agent_send", {"agent": "agent-1"})  # required key missing
        assert err["code"] == "invalid_input"

        err = mcp.error("agent_tail", {"agent": "nope"})
        assert err["code"] == "unknown_agent"
        assert err["hint"]

        # a stopped agent: an expected failure, still a clean tool error
        err = mcp.error("agent_tail", {"agent": "agent-1", "lines": 5})
        assert err["code"] == "agent_not_running"

        status = mcp.ok("fleet_status")  # the same server still answers
        assert [row[:2] for row in status["agents"]] == [["agent-1", "stopped"]]


def test_structured_content_matches_text(fleet_factory: Any, errlog: Path) -> None:
    fleet = fleet_factory(2)
    with mcp_session(fleet.path, errlog) as mcp:
        result = mcp.call("fleet_status", {"agents": ["agent-2"]})
        assert not result.is_error
        assert result.structured_content == json.loads(tool_text(result))
        assert result.structured_content["fleet"] == fleet.name
        assert [row[0] for row in result.structured_content["agents"]] == ["agent-2"]
        doctor = mcp.call("fleet_doctor")
        assert doctor.structured_content == json.loads(tool_text(doctor))
        assert {"ok", "checks"} <= set(doctor.structured_content or {})


# ---- the MCP default holder -----------------------------------------------------------------

def test_mcp_session_holder_claims_renews_and_excludes_others(fleet_factory: Any, errlog: Path) -> None:
    fleet = fleet_factory(1)
    with mcp_session(fleet.path, errlog) as first:
        claim = first.ok("agent_claim", {"agent": "agent-1", "ttl": 600})
        assert claim["holder"].startswith("mcp:")
        assert claim["status"] != "renewed"
        again = first.ok("agent_claim", {"agent": "agent-1", "ttl": 600})
        assert again["status"] == "renewed"
        assert again["holder"] == claim["holder"]
        assert again["token"] == claim["token"]

        with mcp_session(fleet.path, errlog) as second:  # another client session: another holder
            err = second.error("agent_claim", {"agent": "agent-1"})
            assert err["code"] == "lease_held"
            assert err.get("holder") == claim["holder"]
            leases = second.ok("fleet_leases")["leases"]
            assert [row[:3] for row in leases] == [["agent-1", "held", claim["holder"]]]

        released = first.ok("agent_release", {"agent": "agent-1"})
        assert released["released"] is True


# ---- a third-party client: the MCP Inspector CLI --------------------------------------------

@pytest.fixture
def inspector() -> str:
    path = os.environ.get("FLEET_TEST_INSPECTOR") or str(INSPECTOR_DEFAULT)
    if not os.access(path, os.X_OK):
        pytest.fail(f"The MCP Inspector CLI is not installed at {path}: run `scripts/setup` first "
                    "(or point FLEET_TEST_INSPECTOR at an `mcp-inspector` binary).")
    return path


def run_inspector(inspector: str, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # The Inspector takes `--config` for itself, so the server finds its config through FLEET_CONFIG.
    env = {**server_env(), "FLEET_CONFIG": str(config)}
    env_args = [arg for k, v in env.items() for arg in ("-e", f"{k}={v}")]
    return subprocess.run(
        [inspector, "--cli", *env_args, sys.executable, "-m", "fleet", "mcp", *args],
        capture_output=True, text=True, timeout=60, check=False, stdin=subprocess.DEVNULL,
    )


def test_inspector_lists_tools_and_calls_them(inspector: str, fleet_factory: Any) -> None:
    fleet = fleet_factory(1)

    listed = run_inspector(inspector, fleet.path, "--method", "tools/list")
    assert listed.returncode == 0, listed.stderr + listed.stdout
    tools = {t["name"]: t for t in json.loads(listed.stdout)["tools"]}
    assert set(tools) == TOOLS
    for name, tool in tools.items():
        assert tool["inputSchema"] == ops.REGISTRY[name].input_schema, name
        assert "outputSchema" in tool, name

    called = run_inspector(inspector, fleet.path, "--method", "tools/call", "--tool-name", "fleet_status")
    assert called.returncode == 0, called.stderr + called.stdout
    result = json.loads(called.stdout)
    assert not result.get("isError")
    assert result["structuredContent"]["fleet"] == fleet.name

    bad = run_inspector(inspector, fleet.path, "--method", "tools/call", "--tool-name", "agent_tail",
                        "--tool-arg", "agent=nope")
    assert bad.returncode != 0, bad.stdout
    assert "unknown_agent" in bad.stdout + bad.stderr


def test_inspector_finds_the_config_after_a_double_dash(inspector: str, fleet_factory: Any) -> None:
    """The other way to give the server its config: everything after `--` is the server's command line."""
    fleet = fleet_factory(1)
    env_args = [arg for k, v in server_env().items() for arg in ("-e", f"{k}={v}")]
    called = subprocess.run(
        [inspector, "--cli", *env_args, "--method", "tools/call", "--tool-name", "fleet_status",
         "--", sys.executable, "-m", "fleet", "--config", str(fleet.path), "mcp"],
        capture_output=True, text=True, timeout=60, check=False, stdin=subprocess.DEVNULL)
    assert called.returncode == 0, called.stderr + called.stdout
    assert json.loads(called.stdout)["structuredContent"]["fleet"] == fleet.name
