"""The registry is the one schema source: every operation is a CLI command and an MCP tool."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
import typer.main
from mcp import Client

from fleet import ops
from fleet.cli import app
from fleet.errors import InvalidInput
from fleet.mcp.server import build_server

#: CLI parameters that are presentation, not operation input.
CLI_ONLY = {"as_json"}
#: CLI commands that are not operations: attach execs tmux, mcp serves the registry itself, the
#: watchdog's foreground loop and its systemd units are this machine's business, not an MCP client's;
#: trust and init must never be offered to a model (they would trust a config it wrote); dash is a
#: surface of its own, for a person.
NOT_OPERATIONS = {"attach", "dash", "init", "mcp", "trust", "watchdog run", "watchdog install", "watchdog uninstall",
                  "remote-session"}


def cli_params() -> dict[str, set[str]]:
    """Every CLI command (a group's commands as `group command`) with its operation parameters."""
    out: dict[str, set[str]] = {}

    def walk(group: Any, prefix: str) -> None:
        for name, cmd in group.commands.items():
            if hasattr(cmd, "commands"):
                walk(cmd, f"{prefix}{name} ")
            else:
                out[prefix + name] = {p.name for p in cmd.params} - CLI_ONLY

    walk(typer.main.get_command(app), "")
    return out


def test_every_operation_is_a_cli_command_with_the_same_arguments() -> None:
    commands = cli_params()
    for op in ops.REGISTRY.values():
        assert op.cli in commands, f"{op.name} has no CLI command {op.cli!r}"
        params = commands[op.cli]
        assert params == set(op.input_schema["properties"]), op.name
    assert set(commands) - {op.cli for op in ops.REGISTRY.values()} == NOT_OPERATIONS


def test_every_operation_is_an_mcp_tool_with_the_registry_schema() -> None:
    async def tools() -> dict[str, Any]:
        async with Client(build_server(None)) as client:
            listed = await client.list_tools()
            return {t.name: t for t in listed.tools}

    listed = anyio.run(tools)
    assert set(listed) == set(ops.REGISTRY)
    for name, op in ops.REGISTRY.items():
        tool = listed[name]
        assert tool.input_schema == op.input_schema
        assert tool.output_schema == op.output_schema
        assert tool.annotations is not None
        assert tool.annotations.read_only_hint is (op.tier == "readonly")
        assert tool.annotations.destructive_hint is (op.tier == "destructive")


def test_an_internal_operation_is_only_for_a_hosts_channel() -> None:
    """`ops.INTERNAL` (what another host's fleet asks over `fleet remote-session`, which invokes with
    `internal`): read-only, closed schemas, no name shared with the registry (so no CLI command or MCP
    tool offers one: the tests above), and unknown to every caller that does not ask for internal ones."""
    assert ops.INTERNAL
    assert set(ops.INTERNAL).isdisjoint(ops.REGISTRY)
    for name, op in ops.INTERNAL.items():
        assert op.tier == "readonly", name
        assert op.input_schema["additionalProperties"] is False, name
        with pytest.raises(InvalidInput) as unknown:
            ops.get(name)
        assert "Unknown operation" in unknown.value.message
        assert ops.get(name, internal=True) is op
    with pytest.raises(InvalidInput) as refused:
        ops.get("assignment_route", internal=True).validate({"skills": ["pdf"], "to": "mila"})
    assert refused.value.data["key"] == "$"


@pytest.mark.parametrize(
    ("name", "args", "key"),
    [
        ("agent_tail", {"agent": "mila", "lines": "5"}, "$.lines"),
        ("agent_tail", {"agent": "mila", "colour": 1}, "$"),
        ("agent_send", {"agent": "mila"}, "$"),
        ("agent_send", {"agent": "Mila!", "text": "x"}, "$.agent"),
        ("agent_claim", {"agent": "mila", "ttl": 0}, "$.ttl"),
        ("agent_claim", {"agent": "mila", "holder": "two words"}, "$.holder"),
        ("agent_claim", {"agent": "mila", "holder": ""}, "$.holder"),
        ("agent_interrupt", {"agent": "mila", "token": "3"}, "$.token"),
        ("agent_claim", {"agent": "mila", "wait": -1}, "$.wait"),
        ("fleet_status", {"agents": ["a", "a"]}, "$.agents"),
    ],
)
def test_input_is_validated_strictly_without_coercion(name: str, args: dict[str, Any], key: str) -> None:
    with pytest.raises(InvalidInput) as info:
        ops.get(name).validate(args)
    assert info.value.data["key"] == key
    assert info.value.code == "invalid_input"
    assert info.value.hint


def test_valid_input_passes_unchanged() -> None:
    args = {"agent": "mila", "text": "hi", "request_id": "r-1", "holder": "lead:1", "token": 3}
    assert ops.get("agent_send").validate(dict(args)) == args


def test_every_schema_is_closed_and_bounded() -> None:
    for op in ops.REGISTRY.values():
        schema = op.input_schema
        assert schema["additionalProperties"] is False, op.name
        for prop in schema["properties"].values():
            if prop.get("type") == "string":
                assert "maxLength" in prop or "pattern" in prop, op.name
            if prop.get("type") == "array":
                assert "maxItems" in prop, op.name


@pytest.mark.parametrize(("name", "args", "key"), [
    ("agent_tail", {"agent": "mila\n"}, "$.agent"),
    ("agent_claim", {"agent": "mila", "holder": "lead\n"}, "$.holder"),
    ("agent_send", {"agent": "mila", "text": "x", "request_id": "r-1\n"}, "$.request_id"),
])
def test_a_trailing_newline_does_not_pass_a_name_pattern(name: str, args: dict[str, Any], key: str) -> None:
    with pytest.raises(InvalidInput) as info:
        ops.get(name).validate(args)
    assert info.value.data["key"] == key
