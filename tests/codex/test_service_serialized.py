"""Mutating operations on one agent run one at a time, whoever the holder (item 1 of the hardening)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from conftest import Fleet, wait_until
from mockmodel import MockServer
from mocksteps import Step

from fleet import ops
from fleet.errors import FleetError
from fleet.service import Service

FAKE_TUI = """
import sys
print("\u203a Ask Codex to do anything\\n  \u2190 for agents \u00b7 ? for shortcuts", flush=True)
for line in sys.stdin:
    pass
"""


def run_all(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run the calls in threads released together; each result is a value or the FleetError raised."""
    results: list[Any] = [None] * len(calls)
    gate = threading.Barrier(len(calls))

    def one(i: int) -> None:
        gate.wait()
        try:
            results[i] = calls[i]()
        except FleetError as exc:
            results[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_concurrent_sends_by_one_holder_make_exactly_one_turn(fleet_factory: Callable[..., Fleet],
                                                             mock_model: MockServer) -> None:
    """Like one lead's MCP session calling agent_send twice at once: one Service per call, one holder."""
    f = fleet_factory(1, model=mock_model)
    f.json("up")
    mock_model.model.script(Step(text="slow work", chunks=50, chunk_delay=0.1))

    def send(text: str) -> Callable[[], Any]:
        return lambda: ops.invoke(Service(str(f.path), surface="mcp", holder="mcp:lead:1"), "agent_send",
                                  {"agent": "agent-1", "text": text})

    texts = ["first prompt", "second prompt"]
    results = run_all([send(t) for t in texts])
    delivered = [t for t, r in zip(texts, results, strict=True) if isinstance(r, dict)]
    refused = [r for r in results if isinstance(r, FleetError)]
    assert len(delivered) == 1
    assert [e.code for e in refused] == ["agent_busy"]
    # the receipt comes from Codex's UserPromptSubmit hook, a moment before its request reaches the
    # model: compare the prompts once the turn is over
    wait_until(lambda: f.status("agent-1")["state"] == "idle", 30)
    assert mock_model.model.user_prompts() == delivered
    assert len([e for e in f.journal("agent-1") if e["event"] == "turn_started"]) == 1


