"""A scripted stand-in for the OpenAI Responses API, served on 127.0.0.1: the script and the server.

Used by the test-suite and by the offline demo so that real Codex processes can run with no network.
Each `POST /v1/responses` pops the next scripted step (a `mocksteps.Step`: a plain answer, a slow
stream, a tool call, a tool search, an HTTP error such as a usage limit, a stream cut mid-way); when
the script is empty the server answers with `default_text`. `MockModel` holds the script (one per
conversation when a server plays a lead and its workers) and records every request; `MockServer`
serves it. Codex's side request that generates a thread title is answered on its own and never
consumes a step.

Run standalone: `python examples/mockmodel.py --port-file PATH [--script steps.json]`.

The steps and their wire encoding are in `mocksteps.py`, the readers of request bodies in
`mockrequests.py`, and the `-c` overrides and model catalog that point a real Codex here in
`offlinecodex.py`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar, Final

from mockrequests import TITLE_MARKER, last_answer, last_input_type, last_user_text, user_texts
from mocksteps import Step, response_events, sse_frame

#: A gated step streams anyway after this long, so a test that forgot its gate fails instead of hanging.
GATE_TIMEOUT: Final = 120.0


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
    search that found nothing (same cause; also when Codex's note naming the namespace followed it),
    after `RETRY_DELAY`, up to `MAX_RETRIES` times, as a model would retry.
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
            users = user_texts(body)
            conv = next((c for c in self.conversations if any(c.marker in t for t in users)), None)
            if conv is not None:
                conv.requests.append(body)
                if conv.driver is not None:
                    return conv.driver(body)
            steps, default, last = (conv.steps, conv.default_text, conv.last_tool) if conv else \
                (self.steps, self.default_text, self.last_tool)
            answer = last_answer(body)
            if (self.retry_unsupported and last is not None and self.retries < self.MAX_RETRIES
                    and ((answer.get("type") == "function_call_output"
                          and "unsupported call" in json.dumps(answer.get("output")))
                         or (answer.get("type") == "tool_search_output" and not answer.get("tools")))):
                self.retries += 1
                return replace(last, delay=self.RETRY_DELAY)
            # A request answering a tool call or a search continues the same turn: answer it plainly.
            if last_input_type(body) in ("function_call_output", "tool_search_output") and not steps:
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
            text = last_user_text(body)
            if text is not None and TITLE_MARKER not in json.dumps(body.get("input", "")):
                out.append(text)
        return out


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
            for event in response_events(step):
                self._chunk(sse_frame(event))
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
