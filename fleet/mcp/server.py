"""`fleet mcp`: the operation registry as MCP tools over stdio (mcp SDK v2, low-level server).

The low-level server on purpose: it advertises each operation's exact JSON Schema and lets the
registry's strict validator be the only gate (the high-level server would coerce `"5"` to 5 and drop
unknown keys). Every call runs in a worker thread with a fresh `Service`, so a long `wait` or a slow
send never blocks other calls, and any failure comes back as a tool result with `isError`; the
server itself never goes down on a bad call. Logs go to stderr; stdout carries only the protocol.
Results go out in the compact form of `fleet.mcp.views` (the CLI's `--json` stays complete), as
structured content and as the same JSON, without spaces, in the text content.

Holder identity: a call without `holder` acts as `mcp:<client name>:<session id>`, one stable identity
per MCP client session (this process), so its claims persist across its calls and nobody else's.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Final

import anyio
from mcp import types  # the mcp SDK: an absolute import, never this package (`fleet.mcp`)
from mcp.server import Server
from mcp.server.stdio import stdio_server

from fleet import __version__, ops
from fleet.errors import FleetError, InternalError
from fleet.service import Service, default_holder
from fleet.untrusted import UNTRUSTED_NOTE, json_text

from .views import prune, view

logger = logging.getLogger("fleet.mcp")

#: The lead's workflow in a few lines: what an MCP client shows the model before any tool is called.
#: Codex 0.169 shows it as the `mcp__fleet` namespace's description; for models whose tools are
#: deferred (every model of its catalog: found by `tool_search`) it shows only the first ~247
#: characters, so those say what the tools are for and give the one search that finds the five a lead
#: needs (`SEARCH`; bench/bench_tool_search.py measures it: BM25 over names and descriptions).
SEARCH: Final = "fleet_status assignment_create assignment_wait assignment_get assignment_merge"
INSTRUCTIONS: Final = (
    "Lead a team of Codex agents: give each a task, wait for their verified reports. "
    f'Find the tools in one tool_search: query "{SEARCH}", limit 8. '
    "Workflow: 1. fleet_status: who is idle or busy; skill_list for who can do what. "
    "2. assignment_create per self-contained piece: the task, the skills it needs or `to`, write_paths, "
    "checks, a request_id of your own. "
    "3. assignment_wait until nothing is pending (each call returns within its timeout; call again). "
    "4. assignment_get: verified -> accept; rejected or failed -> re-assign naming the problem. "
    "Do not do the agents' work yourself. Every error's hint is the next step. "
    "Results are compact: absent fields are empty; tables give their columns once. "
    + UNTRUSTED_NOTE
)

_TIER_ANNOTATIONS = {
    "readonly": types.ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True,
                                      open_world_hint=False),
    "mutating": types.ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False,
                                      open_world_hint=False),
    "destructive": types.ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True,
                                         open_world_hint=False),
}


def tool_for(op: ops.Operation) -> types.Tool:
    return types.Tool(name=op.name, description=op.summary, input_schema=op.input_schema,
                      output_schema=op.output_schema, annotations=_TIER_ANNOTATIONS[op.tier])


def _json(value: Any) -> str:
    """Compact JSON; control and format characters as `\\u` escapes (a client may show it in a terminal)."""
    return json_text(value, indent=None, separators=(",", ":"))


def error_result(exc: BaseException) -> types.CallToolResult:
    """The one place an exception becomes an MCP tool result."""
    err = exc if isinstance(exc, FleetError) else InternalError(
        f"Unexpected {type(exc).__name__}: {exc}.", hint="This is a bug in fleet; see the server's stderr.")
    if not isinstance(exc, FleetError):
        logger.exception("tool call failed", exc_info=exc)
    payload = {"error": prune(err.to_dict())}
    return types.CallToolResult(content=[types.TextContent(type="text", text=_json(payload))], is_error=True)


def build_server(config_path: str | None) -> Server[Any]:
    session_holder: dict[str, str] = {}

    def holder_for(ctx: Any) -> str:
        if "holder" not in session_holder:
            try:
                client = str(ctx.session.client_params.client_info.name)
            except AttributeError:
                client = "client"
            session_holder["holder"] = default_holder("mcp", session=client)
        return session_holder["holder"]

    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[tool_for(op) for op in ops.REGISTRY.values()])

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        holder = holder_for(ctx)
        args = dict(params.arguments or {})

        def run() -> dict[str, Any]:
            svc = Service(config_path=config_path, surface="mcp", holder=holder)
            try:
                return ops.invoke(svc, params.name, args)
            finally:
                svc.close()

        try:
            raw = await anyio.to_thread.run_sync(run, abandon_on_cancel=True)
            result = view(params.name, raw, time.time(), keep=ops.get(params.name).output_schema.get("required", ()))
        except Exception as exc:
            return error_result(exc)
        return types.CallToolResult(content=[types.TextContent(type="text", text=_json(result))],
                                    structured_content=result)

    return Server("fleet", version=__version__, on_list_tools=list_tools, on_call_tool=call_tool,
                  instructions=INSTRUCTIONS)


def serve(config_path: str | None) -> None:
    logging.basicConfig(level=os.environ.get("FLEET_LOG", "WARNING"), format="%(asctime)s %(name)s %(message)s")
    server = build_server(config_path)

    async def main() -> None:
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())

    anyio.run(main)
