"""A scripted stand-in for the OpenAI Responses API, served on 127.0.0.1.

Used by the test-suite and by the offline demo so that real Codex processes can run with no network.
Each `POST /v1/responses` pops the next scripted step (a plain answer, a slow stream, a tool call, a
tool search, an HTTP error such as a usage limit, a stream cut mid-way); when the script is empty the
server answers with `default_text`. A step can carry response headers, e.g. the `x-codex-primary-*`
rate-limit headers Codex records in its rollout (`rate_limit_headers`). Codex's side request that
generates a thread title is answered on its own and never consumes a step.

Run standalone: `python examples/mockmodel.py --port-file PATH [--script steps.json]`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar, Final

#: Codex's title-generation side request carries this phrase; it must not consume scripted steps.
TITLE_MARKER: Final = "single-line task title"
#: A gated step streams anyway after this long, so a test that forgot its gate fails instead of hanging.
GATE_TIMEOUT: Final = 120.0


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
    the reply until a test sets it (at most `GATE_TIMEOUT` seconds), for a turn that must still be
    running whatever the machine's speed.
    `search` (query, limit) makes the reply a `tool_search_call`, as a model whose catalog entry has
    `supports_search_tool` must emit before it can call an MCP tool (Codex lists those only as
    deferred namespaces); Codex answers in the next request with a `tool_search_output` (see
    `searched`).
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


@dataclass
class Conversation:
    """A script for the requests whose user messages contain `marker` (see `MockModel.converse`)."""

    marker: str
    steps: deque[Step]
    default_text: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    last_tool: Step | None = None
    driver: Callable[[dict[str, Any]], Step] | None = None


@dataclass
class MockModel:
    """The script and the record of what Codex sent; shared by the HTTP handler threads.

    One server can play several models at once (a lead and its workers): `converse(marker, ...)`
    gives the requests whose user messages contain `marker` their own script, and records them in
    the conversation's own `requests` as well. Other requests use the main script (`script`).
    `retry_unsupported`: repeat a scripted tool call that Codex answered `unsupported call` (an MCP
    server whose tools were not listed yet, which happens at a session's start), and a scripted tool
    search that found nothing (same cause), after `RETRY_DELAY`, up to `MAX_RETRIES` times, as a
    model would retry.
    """

    default_text: str = "Done."
    steps: deque[Step] = field(default_factory=deque)
    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    conversations: list[Conversation] = field(default_factory=list)
    retry_unsupported: bool = False
    retries: int = 0
    last_tool: Step | None = None

    RETRY_DELAY: ClassVar[float] = 0.2
    MAX_RETRIES: ClassVar[int] = 100

    def script(self, *steps: Step) -> None:
        with self.lock:
            self.steps.extend(steps)

    def converse(self, marker: str, *steps: Step, default_text: str | None = None,
                 driver: Callable[[dict[str, Any]], Step] | None = None) -> Conversation:
        """Script the conversation whose user messages contain `marker`; earlier conversations match first.

        With `driver`, every request of the conversation is answered by `driver(request body)` instead
        of a fixed script: a model that reads the tool outputs it got (see `tool_results`)."""
        conv = Conversation(marker, deque(steps), self.default_text if default_text is None else default_text,
                            driver=driver)
        with self.lock:
            self.conversations.append(conv)
        return conv

    def next_step(self, body: dict[str, Any]) -> Step:
        with self.lock:
            self.requests.append(body)
            if TITLE_MARKER in json.dumps(body.get("input", "")):
                return Step(text="Fleet task")
            users = _user_texts(body)
            conv = next((c for c in self.conversations if any(c.marker in t for t in users)), None)
            if conv is not None:
                conv.requests.append(body)
                if conv.driver is not None:
                    return conv.driver(body)
            steps, default, last = (conv.steps, conv.default_text, conv.last_tool) if conv else \
                (self.steps, self.default_text, self.last_tool)
            if (self.retry_unsupported and last is not None and self.retries < self.MAX_RETRIES
                    and ((_last_input_type(body) == "function_call_output"
                          and "unsupported call" in json.dumps(body["input"][-1].get("output")))
                         or (_last_input_type(body) == "tool_search_output" and not body["input"][-1].get("tools")))):
                self.retries += 1
                return replace(last, delay=self.RETRY_DELAY)
            # A request answering a tool call or a search continues the same turn: answer it plainly.
            if _last_input_type(body) in ("function_call_output", "tool_search_output") and not steps:
                return Step(text=default)
            step = steps.popleft() if steps else Step(text=default)
            if step.tool is not None or step.search is not None:
                if conv is not None:
                    conv.last_tool = step
                else:
                    self.last_tool = step
            return step

    def user_prompts(self) -> list[str]:
        """Texts of the last user message of each non-title request, in arrival order."""
        with self.lock:
            bodies = list(self.requests)
        out = []
        for body in bodies:
            text = _last_user_text(body)
            if text is not None and TITLE_MARKER not in json.dumps(body.get("input", "")):
                out.append(text)
        return out


def _last_input_type(body: dict[str, Any]) -> str | None:
    items = body.get("input")
    if isinstance(items, list) and items and isinstance(items[-1], dict):
        return str(items[-1].get("type"))
    return None


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


def _user_texts(body: dict[str, Any]) -> list[str]:
    """The texts of every user message in the request's input (not tool outputs)."""
    items = body.get("input")
    if not isinstance(items, list):
        return []
    return ["".join(p.get("text", "") for p in (item.get("content") or []) if isinstance(p, dict))
            for item in items if isinstance(item, dict) and item.get("role") == "user"]


def _last_user_text(body: dict[str, Any]) -> str | None:
    items = body.get("input")
    if not isinstance(items, list):
        return None
    for item in reversed(items):
        if isinstance(item, dict) and item.get("role") == "user":
            parts = item.get("content") or []
            texts = [p.get("text", "") for p in parts if isinstance(p, dict)]
            return "".join(texts)
    return None


def _sse(event: dict[str, Any]) -> bytes:
    return f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    model: MockModel  # set on the subclass made by serve()

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        payload = json.dumps({"object": "list", "data": [], "models": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            body = {}
        step = self.model.next_step(body)
        if step.gate is not None:
            step.gate.wait(GATE_TIMEOUT)
        if step.delay:
            time.sleep(step.delay)
        if step.status >= 400:
            payload = json.dumps(step.error_body or {"error": {"message": "scripted failure"}}).encode()
            self.send_response(step.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self._extra_headers(step)
            self.end_headers()
            self.wfile.write(payload)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self._extra_headers(step)
        self.end_headers()
        try:
            for event in _events(step):
                self._chunk(_sse(event))
                if event["type"] == "response.output_text.delta":
                    if step.drop:  # cut the stream: no terminating chunk, connection closed
                        self.close_connection = True
                        return
                    if step.chunk_delay:
                        time.sleep(step.chunk_delay)
            self._chunk(b"")
        except (BrokenPipeError, ConnectionResetError):
            return

    def _extra_headers(self, step: Step) -> None:
        for key, value in step.headers.items():
            self.send_header(key, value)

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


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


def _events(step: Step) -> list[dict[str, Any]]:
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


class MockServer:
    """A running mock model: `url` is the `base_url` to give Codex. Use as a context manager."""

    def __init__(self, model: MockModel | None = None, port: int = 0) -> None:
        self.model = model or MockModel()
        handler = type("Handler", (_Handler,), {"model": self.model})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def __enter__(self) -> MockServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python examples/mockmodel.py", description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", type=Path, help="write the chosen port here once listening")
    parser.add_argument("--script", type=Path, help="JSON list of steps")
    parser.add_argument("--default-text", default="Done.")
    args = parser.parse_args(argv)
    model = MockModel(default_text=args.default_text)
    if args.script:
        model.script(*(Step.from_json(s) for s in json.loads(args.script.read_text())))
    with MockServer(model, args.port) as server:
        if args.port_file:
            tmp = args.port_file.with_suffix(".tmp")
            tmp.write_text(str(server._httpd.server_address[1]))
            tmp.replace(args.port_file)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()


def codex_offline_args(base_url: str, *, plugins: bool = False) -> list[str]:
    """`-c` overrides that point Codex at a mock model and keep it off the network.

    For `[defaults] args` in a demo or test fleet.toml: a custom provider with no auth and no retries,
    and analytics, plugin sync and update checks off (`--no-daemon` is added by fleet itself). The
    sandbox's `/tmp` and `$TMPDIR` are left out of a workspace-write agent's writable roots: a test
    fleet's state dir, homes and config live under pytest's `/tmp`, and `fleet up` refuses to start an
    agent that could write them.
    `plugins=True` turns Codex's plugins feature on instead (same place in the list), for a Codex
    that must load installed plugins' skills and MCP servers (a lead).
    """
    provider = (
        f'{{name="Mock", base_url="{base_url}", wire_api="responses", '
        "request_max_retries=0, stream_max_retries=0}"
    )
    return [
        "-c", 'model="mock-model"',
        "-c", 'model_provider="mock"',
        "-c", f"model_providers.mock={provider}",
        "-c", "analytics.enabled=false",
        "-c", f"features.plugins={'true' if plugins else 'false'}",
        "-c", "features.daemon_auto_start=false",
        "-c", "check_for_update_on_startup=false",
        "-c", "tui.screen_reader_detection_done=true",
        "-c", "sandbox_workspace_write.exclude_slash_tmp=true",
        "-c", "sandbox_workspace_write.exclude_tmpdir_env_var=true",
    ]


def apply_patch_catalog(codex: str, dest: Path) -> Path:
    """Write a model catalog giving `mock-model` the metadata of a built-in model, into `dest`.

    Codex offers its apply_patch tool only to models whose catalog metadata says so, and an unknown
    slug gets none; pass the result as `-c model_catalog_json="<path>"`. Runs `codex debug models`
    with a throw-away CODEX_HOME (no network needed).
    """
    import os
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory(prefix="catalog-home-") as home:
        out = subprocess.run([codex, "debug", "models"], env={**os.environ, "CODEX_HOME": home},
                             capture_output=True, text=True, timeout=60, check=True,
                             stdin=subprocess.DEVNULL).stdout
    entry = next(m for m in json.loads(out)["models"] if m.get("apply_patch_tool_type") == "freeform")
    dest.write_text(json.dumps({"models": [{**entry, "slug": "mock-model", "display_name": "mock-model"}]}))
    return dest

