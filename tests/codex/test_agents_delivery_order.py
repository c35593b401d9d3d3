"""Delivery is matched by the journal's order, never by wall-clock time.

Each journal writer stamps its own clock (fleet when it logs a send, Codex's hook process when it
records the prompt). A clock stepped back between the two used to put Codex's record "before" the send,
so the receipt was lost and a retry with the same request id typed the prompt a second time.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from conftest import Fleet, wait_until
from hypothesis import strategies as st
from mockmodel import MockServer
from test_agents_journal import EVENT, _event

from fleet import ops
from fleet.service import Service

TIMES = st.lists(st.floats(0, 10_000, allow_nan=False), min_size=1, max_size=50)


#: A send, then Codex's record of the same prompt: the case a clock step back used to break.
SEND_THEN_TURN = st.builds(lambda p, r: [_event("send", 0, p, r, False), _event("turn_started", r, p, r, False)],
                           st.integers(0, 2), st.integers(0, 4))
WITH_DELIVERIES = st.builds(lambda noise, pairs, cut: [*noise[:cut], *(e for pair in pairs for e in pair),
                                                      *noise[cut:]],
                            st.lists(EVENT, max_size=20), st.lists(SEND_THEN_TURN, min_size=1, max_size=3),
                            st.integers(0, 20))


def test_a_clock_stepped_back_during_a_send_keeps_the_receipt_and_a_retry_types_nothing(
        fleet_factory: Callable[..., Fleet], mock_model: MockServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Real Codex. The one simulated condition: this process's clock runs an hour ahead of the hook
    process's (as when the system clock steps back an hour right after fleet logged the send);
    nothing else is replaced."""
    f = fleet_factory(1, model=mock_model)
    f.json("up")
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 3600.0)
    svc = Service(config_path=str(f.path), surface="cli", holder="cli:test")
    try:
        args = {"agent": "agent-1", "text": "Say hello once.", "request_id": "clock-1", "timeout": 30}
        first = ops.invoke(svc, "agent_send", dict(args))
        assert first["delivered"] is True
        assert first["duplicate"] is False
        again = ops.invoke(svc, "agent_send", dict(args))  # a retry of the same request
        assert (again["duplicate"], again["turn_id"]) == (True, first["turn_id"])
    finally:
        svc.close()
    started = [e for e in f.journal("agent-1") if e.get("event") == "turn_started"]
    sends = [e for e in f.journal("agent-1") if e.get("event") == "send"]
    assert started[-1]["time"] < sends[-1]["sent_at"]  # the hook's record really is "older" than the send
    wait_until(lambda: f.status("agent-1")["state"] == "idle", timeout=30)
    assert [p for p in mock_model.model.user_prompts() if "Say hello once." in p] == ["Say hello once."]
    assert len(sends) == 1  # the retry was answered from the journal and typed nothing


