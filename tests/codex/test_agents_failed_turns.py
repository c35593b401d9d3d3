"""Turns that end without a Stop hook (usage limit, HTTP 500, a dropped stream) end in the state,
read from Codex's rollout; rate-limit headroom is exposed. Real Codex against the scripted model."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from conftest import Fleet, wait_until
from mockmodel import MockServer
from mocksteps import Step, rate_limit_headers


def settled(f: Fleet, turn_id: str) -> dict[str, Any]:
    """The status once the given turn has ended (whatever its outcome)."""
    status: dict[str, Any] = wait_until(
        lambda: (s := f.status("agent-1"))["last_turn"]["turn_id"] == turn_id
        and s["last_turn"]["outcome"] != "running" and s, 30)
    return status


def test_a_usage_limit_fails_the_turn_and_limits_the_agent_until_its_window_resets(
        fleet_factory: Callable[..., Fleet], mock_model: MockServer) -> None:
    f = fleet_factory(1, model=mock_model)
    f.json("up")
    now = int(time.time())
    reset, weekly = now + 1800, now + 86400
    mock_model.model.script(
        Step.usage_limit(headers=rate_limit_headers(100, reset, secondary_used=20, secondary_reset_at=weekly)),
        Step(text="resumed", headers=rate_limit_headers(3, now + 18000, secondary_used=21, secondary_reset_at=weekly)))
    receipt = f.json("send", "agent-1", "a big job")
    limited = settled(f, receipt["turn_id"])
    assert limited["state"] == "limited"
    assert limited["resets_at"] == reset
    assert limited["last_turn"]["outcome"] == "failed"
    assert limited["last_turn"]["error"]["code"] == "usage_limit_exceeded"
    assert limited["last_turn"]["error"]["resets_at"] == reset
    assert limited["rate_limits"]["primary"] == {"used_percent": 100, "window_minutes": 300, "resets_at": reset}
    assert limited["rate_limits"]["secondary"]["used_percent"] == 20
    # a read-only status folds the rollout in memory; the journal is settled by the next mutating call
    assert "turn_failed" not in [e["event"] for e in f.journal("agent-1")]

    again = f.json("send", "agent-1", "continue")  # a limited agent takes a prompt: that is how to resume
    failed = [e for e in f.journal("agent-1") if e["event"] == "turn_failed"]
    assert [(e["turn_id"], e["error"]["code"]) for e in failed] == [(receipt["turn_id"], "usage_limit_exceeded")]
    done = settled(f, again["turn_id"])
    assert (done["state"], done["last_turn"]["outcome"], done["last_turn"]["last_message"]) == (
        "idle", "completed", "resumed")
    assert done["resets_at"] is None
    assert done["rate_limits"]["primary"]["used_percent"] == 3  # from the Stop hook's rollout snapshot
    assert mock_model.model.user_prompts() == ["a big job", "continue"]


def test_a_usage_limit_without_a_known_reset_stays_limited_until_the_next_turn(
        fleet_factory: Callable[..., Fleet], mock_model: MockServer) -> None:
    f = fleet_factory(1, model=mock_model)
    f.json("up")
    mock_model.model.script(Step.usage_limit())
    receipt = f.json("send", "agent-1", "work")
    limited = settled(f, receipt["turn_id"])
    assert (limited["state"], limited["resets_at"], limited["rate_limits"]) == ("limited", None, None)


def test_a_server_error_and_a_dropped_stream_fail_the_turn_and_leave_the_agent_idle(
        fleet_factory: Callable[..., Fleet], mock_model: MockServer) -> None:
    f = fleet_factory(1, model=mock_model)
    f.json("up")
    mock_model.model.script(Step.server_error(), Step.dropped())
    for text, code in (("first", "internal_server_error"), ("second", "other")):
        receipt = f.json("send", "agent-1", text)
        status = settled(f, receipt["turn_id"])
        assert status["state"] == "idle"
        assert (status["last_turn"]["outcome"], status["last_turn"]["error"]["code"]) == ("failed", code)
        assert status["last_turn"]["error"]["message"]
    assert mock_model.model.user_prompts()[:2] == ["first", "second"]


def test_a_completed_turn_reports_the_rate_limit_headroom(fleet_factory: Callable[..., Fleet],
                                                          mock_model: MockServer) -> None:
    f = fleet_factory(1, model=mock_model)
    f.json("up")
    now = int(time.time())
    mock_model.model.script(Step(text="fine", headers=rate_limit_headers(
        42.5, now + 3600, secondary_used=13, secondary_reset_at=now + 86400)))
    receipt = f.json("send", "agent-1", "hello")
    status = settled(f, receipt["turn_id"])
    assert (status["state"], status["last_turn"]["outcome"], status["last_turn"]["error"]) == ("idle", "completed",
                                                                                              None)
    assert status["rate_limits"] == {
        "primary": {"used_percent": 42.5, "window_minutes": 300, "resets_at": now + 3600},
        "secondary": {"used_percent": 13, "window_minutes": 10080, "resets_at": now + 86400},
    }
    assert status["rate_limits_at"] >= receipt["delivered_at"]
