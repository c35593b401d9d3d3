"""Real Codex agents in real tmux, against the scripted mock model, driven through the real CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from conftest import Fleet
from faketui import fake_codex

TRICKY = "line one\nline 'two' with \"quotes\" $HOME `uname` && rm -rf / ; echo $((1+1))\nünïcödé 漢字 🚀\n\ttabbed"


def test_a_prompt_codex_never_records_is_reported_not_delivered(fleet_factory: Callable[..., Fleet],
                                                                tmp_path: Path) -> None:
    """A stand-in TUI that shows Codex's composer but records nothing: the one condition simulated here
    is "the keystrokes reached the pane and Codex never took the prompt" (no hook fires)."""
    f = fleet_factory(1, codex=fake_codex(tmp_path))
    assert f.json("up")["agents"][0]["state"] == "idle"
    proc = f.cli("send", "agent-1", "hello", "--timeout", "2", "--request-id", "r-9", "--json")
    assert proc.returncode == 1
    error = json.loads(proc.stdout)["error"]
    assert error["code"] == "not_delivered"
    assert error["retryable"] is True
    assert "request_id" in error["hint"]
    kinds = [e["event"] for e in f.journal("agent-1")]
    assert kinds[-2:] == ["send", "not_delivered"]
