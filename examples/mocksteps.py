"""The scripted model's steps and how each goes out on the wire.

A `Step` is one scripted reply of the mock Responses API (a plain answer, a slow stream, a tool call, a
tool search, an HTTP error such as a usage limit, a stream cut mid-way); `response_events` turns it
into the server-sent events of one streamed response and `sse_frame` frames one event. Also here: the
`x-codex-primary-*` rate-limit headers a step can carry (`rate_limit_headers`) and the token usage a
reply reports (`usage_of`). The server that plays a script is `mockmodel.py`.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any, Final


@dataclass
class Step:
    """One scripted model reply.

    `text` is streamed in `chunks` pieces with `chunk_delay` seconds between them after `delay`.
    `tool` (name, arguments) makes the reply a function call instead, in the tool `namespace` if given
    (an MCP server's tools arrive as namespace `mcp__<server>`, e.g. `mcp__fleet`); `("apply_patch",
    {"input": PATCH})` is a custom tool call of Codex's freeform apply_patch, which Codex offers only to
    models whose catalog metadata says so. `status` >= 400 makes it an HTTP error with `error_body`.
    `headers` go out with the response (either kind). `drop` cuts the stream after the first text
    delta: no `response.completed`, then the connection closes. `gate` (a `threading.Event`) holds
    the reply until a test sets it (at most `mockmodel.GATE_TIMEOUT` seconds), for a turn that must
    still be running whatever the machine's speed.
    `search` (query, limit) makes the reply a `tool_search_call`, as a model whose catalog entry has
    `supports_search_tool` must emit before it can call an MCP tool (Codex lists those only as
    deferred namespaces); Codex answers in the next request with a `tool_search_output` (see
    `mockrequests.searched`).
    `usage` is the reply's token usage as the Responses API reports it; missing keys take
    `DEFAULT_USAGE`'s values (see `usage_of`).
    """

    text: str = "Done."
    delay: float = 0.0
    chunks: int = 1
    chunk_delay: float = 0.0
    tool: tuple[str, dict[str, Any]] | None = None
    status: int = 200
    error_body: dict[str, Any] | None = None
    namespace: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False
    gate: threading.Event | None = None
    search: tuple[str, int] | None = None
    usage: dict[str, int] | None = None

    @classmethod
    def usage_limit(cls, *, headers: dict[str, str] | None = None, plan_type: str = "plus",
                    resets_in_seconds: int = 3600) -> Step:
        """HTTP 429 `usage_limit_reached`, the answer of an account out of quota (Codex: no retry)."""
        body = {"error": {"type": "usage_limit_reached", "message": "The usage limit has been reached",
                          "plan_type": plan_type, "resets_in_seconds": resets_in_seconds}}
        return cls(status=429, error_body=body, headers=dict(headers or {}))

    @classmethod
    def server_error(cls) -> Step:
        """HTTP 500 (with the test fleet's `request_max_retries = 0` the turn fails at once)."""
        return cls(status=500, error_body={"error": {"type": "server_error", "message": "scripted failure"}})

    @classmethod
    def dropped(cls, text: str = "partial answer that never") -> Step:
        """A stream cut mid-way: some text, then the connection closes without `response.completed`."""
        return cls(text=text, chunks=4, drop=True)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Step:
        tool = raw.get("tool")
        search = raw.get("search")
        return cls(
            text=str(raw.get("text", "Done.")),
            delay=float(raw.get("delay", 0.0)),
            chunks=int(raw.get("chunks", 1)),
            chunk_delay=float(raw.get("chunk_delay", 0.0)),
            tool=(str(tool["name"]), dict(tool["arguments"])) if tool else None,
            status=int(raw.get("status", 200)),
            error_body=raw.get("error_body"),
            namespace=raw.get("namespace"),
            headers={str(k): str(v) for k, v in (raw.get("headers") or {}).items()},
            drop=bool(raw.get("drop", False)),
            search=(str(search["query"]), int(search.get("limit", 8))) if search else None,
            usage={str(k): int(v) for k, v in raw["usage"].items()} if raw.get("usage") else None,
        )


def rate_limit_headers(primary_used: float, primary_reset_at: int, *, primary_window: int = 300,
                       secondary_used: float | None = None, secondary_reset_at: int | None = None,
                       secondary_window: int = 10080) -> dict[str, str]:
    """The response headers Codex turns into the rollout's `rate_limits` snapshot (reset times are
    epoch seconds; Codex ignores `*-reset-after-seconds`)."""
    headers = {
        "x-codex-primary-used-percent": f"{primary_used:g}",
        "x-codex-primary-window-minutes": str(primary_window),
        "x-codex-primary-reset-at": str(primary_reset_at),
    }
    if secondary_used is not None:
        headers.update({
            "x-codex-secondary-used-percent": f"{secondary_used:g}",
            "x-codex-secondary-window-minutes": str(secondary_window),
            "x-codex-secondary-reset-at": str(secondary_reset_at or primary_reset_at),
        })
    return headers


#: A reply's usage unless its step says otherwise: `input`, `cached_input` (part of input), `output`,
#: `reasoning` (part of output), the four figures fleet records per turn.
DEFAULT_USAGE: Final = {"input": 100, "cached_input": 0, "output": 10, "reasoning": 0}


def usage_of(step: Step) -> dict[str, int]:
    """The four figures `step`'s reply reports (its `usage` over `DEFAULT_USAGE`)."""
    return {**DEFAULT_USAGE, **(step.usage or {})}


def _usage(step: Step) -> dict[str, Any]:
    u = usage_of(step)
    return {"input_tokens": u["input"], "output_tokens": u["output"], "total_tokens": u["input"] + u["output"],
            "input_tokens_details": {"cached_tokens": u["cached_input"]},
            "output_tokens_details": {"reasoning_tokens": u["reasoning"]}}


def sse_frame(event: dict[str, Any]) -> bytes:
    return f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()


def response_events(step: Step) -> list[dict[str, Any]]:
    rid = f"resp_{uuid.uuid4().hex[:12]}"
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": {"id": rid, "object": "response", "status": "in_progress"}},
    ]
    if step.search is not None:
        query, limit = step.search
        item: dict[str, Any] = {
            "type": "tool_search_call",
            "id": f"tsc_{uuid.uuid4().hex[:12]}",
            "call_id": f"call_{uuid.uuid4().hex[:12]}",
            "status": "completed",
            "execution": "client",
            "arguments": {"query": query, "limit": limit},
        }
        events.append({"type": "response.output_item.done", "output_index": 0, "item": item})
    elif step.tool is not None and step.tool[0] == "apply_patch":
        # Codex's apply_patch is a custom (freeform) tool: its call carries the patch as `input`.
        item = {
            "type": "custom_tool_call",
            "id": f"ctc_{uuid.uuid4().hex[:12]}",
            "call_id": f"call_{uuid.uuid4().hex[:12]}",
            "name": "apply_patch",
            "input": str(step.tool[1]["input"]),
            "status": "completed",
        }
        events.append({"type": "response.output_item.done", "output_index": 0, "item": item})
    elif step.tool is not None:
        name, arguments = step.tool
        item = {
            "type": "function_call",
            "id": f"fc_{uuid.uuid4().hex[:12]}",
            "call_id": f"call_{uuid.uuid4().hex[:12]}",
            "name": name,
            "arguments": json.dumps(arguments),
            "status": "completed",
        }
        if step.namespace:
            item["namespace"] = step.namespace
        events.append({"type": "response.output_item.done", "output_index": 0, "item": item})
    else:
        mid = f"msg_{uuid.uuid4().hex[:12]}"
        n = max(1, step.chunks)
        size = max(1, -(-len(step.text) // n))
        pieces = [step.text[i : i + size] for i in range(0, len(step.text), size)] or [""]
        events.append(
            {
                "type": "response.output_item.added",
                "output_index": 0,
                "item": {"type": "message", "id": mid, "role": "assistant", "status": "in_progress", "content": []},
            }
        )
        events.append(
            {
                "type": "response.content_part.added",
                "item_id": mid,
                "output_index": 0,
                "content_index": 0,
                "part": {"type": "output_text", "text": "", "annotations": []},
            }
        )
        for piece in pieces:
            events.append(
                {
                    "type": "response.output_text.delta",
                    "item_id": mid,
                    "output_index": 0,
                    "content_index": 0,
                    "delta": piece,
                }
            )
        item = {
            "type": "message",
            "id": mid,
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": step.text, "annotations": []}],
        }
        events.append({"type": "response.output_item.done", "output_index": 0, "item": item})
    done: dict[str, Any] = {"id": rid, "object": "response", "status": "completed", "usage": _usage(step)}
    events.append({"type": "response.completed", "response": done})
    return events
