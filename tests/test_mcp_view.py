"""What a model reads over MCP: compact results (`fleet.mcp.views`), measured through the real server."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import anyio
from hypothesis import given
from hypothesis import strategies as st
from mcp import Client
from mcp import types as mcp_types

from fleet.fsutil import append_jsonl
from fleet.leases import LeaseStore
from fleet.mcp.server import INSTRUCTIONS, SEARCH, build_server
from fleet.mcp.views import LEASE_COLUMNS, STATUS_COLUMNS, leases_view, prune, status_view, view

#: The issue's bound for `fleet_status` of 20 agents, as JSON over MCP.
STATUS_BUDGET = 2048

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=20,
)


def has_empty_member(value: Any) -> bool:
    if isinstance(value, dict):
        return any(v in (None, "", [], {}) or has_empty_member(v) for v in value.values())
    if isinstance(value, list):
        return any(has_empty_member(v) for v in value)
    return False


@given(json_values)
def test_pruning_leaves_no_empty_member_and_is_idempotent(value: Any) -> None:
    once = prune(value)
    assert not has_empty_member(once)
    assert prune(once) == once


@given(st.dictionaries(st.text(max_size=6), st.booleans() | st.integers() | st.text(min_size=1, max_size=6),
                       max_size=6))
def test_pruning_keeps_every_non_empty_scalar_including_false_and_zero(value: dict[str, Any]) -> None:
    assert prune(value) == value


def status_entry(name: str, **over: Any) -> dict[str, Any]:
    entry = {"name": name, "state": "idle", "detail": None, "role": "worker", "sandbox": "workspace-write",
             "pid": 123, "home": f"/h/{name}", "cwd": f"/w/{name}", "since": 1000.0,
             "last_turn": {"turn_id": "t1", "started_at": 990.0, "ended_at": 995.0, "outcome": "completed",
                           "prompt_chars": 5, "last_message": "Done."},
             "exit_status": None, "exit_signal": None,
             "lease": {"agent": name, "state": "free", "holder": None, "token": None}}
    return entry | over


def test_status_is_a_table_with_the_unusual_facts_in_notes() -> None:
    result = {"fleet": "f", "agents": [
        status_entry("a"),
        status_entry("b", state="exited", exit_status=1, since=None, last_turn=None,
                     lease={"state": "held", "holder": "agent:boss", "token": 7}),
        status_entry("c", state="starting", detail="trust screen", resets_at=2000.0,
                     lease={"state": "corrupt", "error": {"code": "lease_corrupt"}}),
    ]}
    out = status_view(result, now=1030.4)
    assert out["columns"] == list(STATUS_COLUMNS)
    assert out["agents"] == [["a", "idle", "worker", None, "completed", 30],
                             ["b", "exited", "worker", "agent:boss", None, None],
                             ["c", "starting", "worker", "corrupt", "completed", 30]]
    assert out["notes"] == {"b": {"exit_status": 1}, "c": {"detail": "trust screen", "resets_in_s": 969}}
    assert out["fleet"] == "f"
    assert "/h/a" not in json.dumps(out)


LIMITS = {"primary": {"used_percent": 42.4, "window_minutes": 300, "resets_at": 5000.0},
          "secondary": {"used_percent": 13.0, "window_minutes": 10080, "resets_at": 9000.0}}


def test_a_limited_agent_says_when_it_resets_and_why_its_last_turn_failed() -> None:
    failed = {"turn_id": "t", "started_at": 1.0, "ended_at": 2.0, "outcome": "failed", "prompt_chars": 1,
              "last_message": None, "error": {"code": "usage_limit_exceeded", "message": "m", "http_status": 429,
                                              "resets_at": 1600.0}}
    result = {"agents": [status_entry("a", state="limited", resets_at=1600.0, last_turn=failed, rate_limits=LIMITS,
                                      rate_limits_at=990.0)]}
    out = status_view(result, now=1000.0)
    assert out["agents"][0][1] == "limited"
    assert out["notes"] == {"a": {"resets_in_s": 600, "last_error": "usage_limit_exceeded"}}
    assert out["rate_limits"] == "5h 42% used, 7d 13% used"


def test_known_accounts_are_a_column_after_the_role_and_never_a_note() -> None:
    out = status_view({"agents": [status_entry("a", account="work"), status_entry("b", account="auth:0123456789ab"),
                                  status_entry("c", account=None)]}, now=1000.0)
    assert out["columns"] == ["agent", "state", "role", "account", "lease", "last", "for_s"]
    assert [row[:4] for row in out["agents"]] == [["a", "idle", "worker", "work"],
                                                  ["b", "idle", "worker", "auth:0123456789ab"],
                                                  ["c", "idle", "worker", None]]
    assert "notes" not in out
    unknown = status_view({"agents": [status_entry("a", account=None)]}, now=1000.0)
    assert unknown["columns"] == list(STATUS_COLUMNS)


def test_rate_limits_are_said_once_for_one_account_and_per_agent_for_several() -> None:
    other = {"primary": {"used_percent": 90.0, "window_minutes": 45, "resets_at": None}, "secondary": None}
    same = status_view({"agents": [status_entry("a", rate_limits=LIMITS), status_entry("b", rate_limits=LIMITS),
                                   status_entry("c", rate_limits=None)]}, now=1000.0)
    assert same["rate_limits"] == "5h 42% used, 7d 13% used"
    assert "notes" not in same
    mixed = status_view({"agents": [status_entry("a", rate_limits=LIMITS), status_entry("b", rate_limits=other)]},
                        now=1000.0)
    assert "rate_limits" not in mixed
    assert mixed["notes"] == {"a": {"rate_limits": "5h 42% used, 7d 13% used"},
                              "b": {"rate_limits": "45m 90% used"}}


@given(st.lists(st.fixed_dictionaries({
    "state": st.sampled_from(["stopped", "idle", "working", "limited", "exited", "waiting_approval"]),
    "since": st.none() | st.floats(0, 2000), "resets_at": st.none() | st.floats(0, 5000),
    "exit_status": st.none() | st.integers(0, 255), "detail": st.none() | st.text(max_size=8),
}), max_size=8), st.floats(0, 3000))
def test_every_agent_gets_one_full_row_and_no_empty_note(changes: list[dict[str, Any]], now: float) -> None:
    result = {"agents": [status_entry(f"a{i}", **c) for i, c in enumerate(changes)]}
    out = status_view(result, now)
    assert [row[0] for row in out["agents"]] == [f"a{i}" for i in range(len(changes))]
    assert all(len(row) == len(STATUS_COLUMNS) for row in out["agents"])
    assert not has_empty_member(out.get("notes", {}))
    assert all(row[5] is None or row[5] >= 0 for row in out["agents"])


def test_leases_are_a_table_and_a_corrupt_record_keeps_its_error() -> None:
    result = {"leases": [
        {"agent": "a", "state": "held", "holder": "cli:me", "token": 3, "expires_in": 99.7, "expires_at": 1.0},
        {"agent": "b", "state": "free", "holder": None, "token": None, "expires_in": None},
        {"agent": "c", "state": "corrupt", "error": {"code": "lease_corrupt", "message": "m", "hint": "h"}},
    ]}
    out = leases_view(result, now=0)
    assert out["columns"] == list(LEASE_COLUMNS)
    assert out["leases"] == [["a", "held", "cli:me", 3, 99], ["b", "free", None, None, None],
                             ["c", "corrupt", None, None, None]]
    assert out["notes"] == {"c": {"code": "lease_corrupt", "message": "m", "hint": "h"}}


def test_other_results_only_lose_their_empty_fields() -> None:
    assert view("agent_send", {"agent": "a", "request_id": None, "duplicate": False}, 0) == \
        {"agent": "a", "duplicate": False}


def call(config: Path, name: str, args: dict[str, Any]) -> tuple[mcp_types.CallToolResult, str | None]:
    async def go() -> tuple[mcp_types.CallToolResult, str | None]:
        async with Client(build_server(str(config))) as client:
            result = await client.call_tool(name, args)
            return result, client.instructions
    return anyio.run(go)


def test_status_of_twenty_busy_agents_fits_in_two_kilobytes_over_mcp(fleet_factory: Any) -> None:
    """Worst realistic case without tmux: every agent leased by an assignment (a long holder), each
    with a last turn in its journal, so every column of every row is filled."""
    fleet = fleet_factory(20)
    store = LeaseStore(fleet.state_dir, surface="cli")
    now = time.time()
    for i, agent in enumerate(fleet.agents):
        store.claim(agent, f"assignment:as-01JABCDEFGHJKMNPQRSTVW{i:04d}", ttl=3600)
        journal = fleet.state_dir / "agents" / agent / "events.jsonl"
        journal.parent.mkdir(parents=True, exist_ok=True)
        for event in ({"event": "launched"}, {"event": "turn_started", "turn_id": f"turn-{i}", "prompt": "x"},
                      {"event": "turn_completed", "turn_id": f"turn-{i}", "last_message": "A long answer. " * 20},
                      {"event": "stopped", "exit_status": 0}):
            append_jsonl(journal, {"time": now - 60, **event})
    result, instructions = call(fleet.path, "fleet_status", {})
    assert not result.is_error
    [content] = result.content
    assert isinstance(content, mcp_types.TextContent)
    assert json.loads(content.text) == result.structured_content
    size = len(content.text.encode())
    print(f"fleet_status, 20 agents: {size} bytes over MCP")
    assert size <= STATUS_BUDGET
    rows = result.structured_content["agents"] if result.structured_content else []
    assert len(rows) == 20
    assert all(row[3].startswith("assignment:as-") and row[4] == "completed" for row in rows)
    assert instructions == INSTRUCTIONS


def test_an_error_over_mcp_carries_its_next_step_and_no_empty_fields(fleet_factory: Any) -> None:
    fleet = fleet_factory(1)
    result, _ = call(fleet.path, "agent_tail", {"agent": "nobody"})
    assert result.is_error
    [content] = result.content
    assert isinstance(content, mcp_types.TextContent)
    error = json.loads(content.text)["error"]
    assert error["code"] == "unknown_agent"
    assert "fleet status" in error["hint"]
    assert not has_empty_member(error)


def test_required_keys_stay_even_when_empty() -> None:
    assert view("watchdog_tick", {"at": 1.0, "actions": [], "note": None}, 1.0, keep=("at", "actions")) == {
        "at": 1.0, "actions": []}
    assert view("watchdog_tick", {"at": 1.0, "actions": []}, 1.0) == {"at": 1.0}


def test_a_model_with_deferred_tools_reads_the_one_search_before_it_searches() -> None:
    """Codex 0.169 shows a deferred namespace's description cut at ~247 characters: the recommended
    search (bench/bench_tool_search.py: its top 5 are the five core tools) fits in them, and the
    fleet-lead skill gives the same query."""
    assert f'"{SEARCH}", limit 8' in INSTRUCTIONS[:240]
    skill = Path(__file__).resolve().parent.parent / "skills" / "fleet-lead" / "SKILL.md"
    assert f"`{SEARCH}` and limit 8" in skill.read_text()
