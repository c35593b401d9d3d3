"""Reading what Codex sent the scripted model: the parts of a Responses API request body.

Tests use these to check what a Codex turn did (its tool calls and their outputs, its tool searches,
the instructions and skills it was given); `mockmodel.MockModel` uses them to route a request to its
conversation and to spot Codex's thread-title side request (`TITLE_MARKER`).
"""

from __future__ import annotations

import json
from typing import Any, Final

#: Codex's title-generation side request carries this phrase; it must not consume scripted steps.
TITLE_MARKER: Final = "single-line task title"


def last_input_type(body: dict[str, Any]) -> str | None:
    """The type of the request's last input item: what the request answers (e.g. `function_call_output`)."""
    items = body.get("input")
    if isinstance(items, list) and items and isinstance(items[-1], dict):
        return str(items[-1].get("type"))
    return None


def last_answer(body: dict[str, Any]) -> dict[str, Any]:
    """The request's last input item that is not a developer message (or {}): what the request answers.
    Codex can add a developer message after a tool's output: the `<tools>` note naming the deferred
    namespaces, once an MCP server listed its tools after a search already came back empty."""
    items = body.get("input")
    for item in reversed(items if isinstance(items, list) else []):
        if isinstance(item, dict) and not (item.get("type") == "message" and item.get("role") == "developer"):
            return item
    return {}


def tool_results(body: dict[str, Any]) -> list[tuple[str, dict[str, Any], str]]:
    """The function calls in a request's input, in order, each as (name, arguments, output text);
    the output is "" while a call has none yet. Codex prefixes an MCP tool's output with
    `Wall time: ...` and `Output:` lines; those are dropped, so a JSON result parses as it is."""
    calls: dict[str, tuple[str, dict[str, Any]]] = {}
    outputs: dict[str, str] = {}
    order: list[str] = []
    for item in body.get("input") or []:
        if not isinstance(item, dict):
            continue
        if item.get("type") == "function_call":
            try:
                args = json.loads(item.get("arguments") or "{}")
            except json.JSONDecodeError:
                args = {}
            calls[item["call_id"]] = (str(item.get("name")), args)
            order.append(item["call_id"])
        elif item.get("type") == "function_call_output":
            out = item.get("output")
            text = out if isinstance(out, str) else json.dumps(out)
            outputs[str(item.get("call_id"))] = text.split("Output:\n", 1)[-1] if "Output:\n" in text else text
    return [(calls[c][0], calls[c][1], outputs.get(c, "")) for c in order]


def tool_outputs(requests: list[dict[str, Any]]) -> dict[str, Any]:
    """The output Codex sent back for each tool name, as it came (a string or JSON), across
    `requests` in order: a later call of the same tool (a retry) overwrites an earlier one."""
    calls: dict[str, str] = {}
    outputs: dict[str, Any] = {}
    for body in requests:
        for item in body.get("input") or []:
            if item.get("type") == "function_call":
                calls[item["call_id"]] = item["name"]
            elif item.get("type") == "function_call_output" and item.get("call_id") in calls:
                outputs[calls[item["call_id"]]] = item.get("output")
    return outputs


def searched(body: dict[str, Any]) -> list[tuple[str, int, dict[str, list[str]]]]:
    """The tool searches in a request's input, in order, each as (query, limit, found): `found` maps
    each namespace of Codex's `tool_search_output` (e.g. `mcp__fleet`) to the tool names it returned,
    best match first (empty while a search has no output yet). Wire shapes measured on Codex 0.169:
    the call `{"type": "tool_search_call", "call_id", "execution": "client", "arguments": {"query",
    "limit"}}`, the answer `{"type": "tool_search_output", "call_id", "execution": "client", "tools":
    [{"type": "namespace", "name", "description", "tools": [{"type": "function", "name", ...}]}]}`."""
    calls: dict[str, tuple[str, int]] = {}
    found: dict[str, dict[str, list[str]]] = {}
    order: list[str] = []
    for item in body.get("input") or []:
        if not isinstance(item, dict):
            continue
        if item.get("type") == "tool_search_call":
            args = item.get("arguments") or {}
            calls[str(item.get("call_id"))] = (str(args.get("query", "")), int(args.get("limit") or 0))
            order.append(str(item.get("call_id")))
        elif item.get("type") == "tool_search_output":
            found[str(item.get("call_id"))] = {
                str(space.get("name")): [str(t.get("name")) for t in space.get("tools") or []]
                for space in item.get("tools") or [] if isinstance(space, dict)}
    return [(*calls[c], found.get(c, {})) for c in order]


def request_text(body: dict[str, Any]) -> str:
    """Every text part of every input item of a request (instructions, skills lists, user messages),
    one per line."""
    return "\n".join(part.get("text", "") for item in body.get("input") or []
                     for part in item.get("content") or [] if isinstance(part, dict))


def user_texts(body: dict[str, Any]) -> list[str]:
    """The texts of every user message in the request's input (not tool outputs)."""
    items = body.get("input")
    if not isinstance(items, list):
        return []
    return ["".join(p.get("text", "") for p in (item.get("content") or []) if isinstance(p, dict))
            for item in items if isinstance(item, dict) and item.get("role") == "user"]


def last_user_text(body: dict[str, Any]) -> str | None:
    items = body.get("input")
    if not isinstance(items, list):
        return None
    for item in reversed(items):
        if isinstance(item, dict) and item.get("role") == "user":
            parts = item.get("content") or []
            texts = [p.get("text", "") for p in parts if isinstance(p, dict)]
            return "".join(texts)
    return None
