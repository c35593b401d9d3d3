"""A damaged `fleet.db`: the watchdog tick goes on without it and says so, and `fleet ledger-repair`
moves it aside, salvages what SQLite can still read and starts a fresh ledger.

The damage is real: pages of a real ledger file are overwritten with random bytes (the header page,
or a leaf page of one table found with SQLite's `dbstat`), and every step runs as a real `fleet`
process. The crash test runs real Codex against the mock model.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from typing import Any

from conftest import Fleet, wait_until
from mockmodel import MockServer
from test_watchdog_tick import policy
from test_work_ledger_repair import _fill, _smash

PAGE = 4096


def test_a_tick_over_a_damaged_ledger_still_restarts_a_crashed_agent(
        fleet_factory: Callable[..., Fleet], mock_model: MockServer) -> None:
    f: Fleet = fleet_factory(1, model=mock_model, extra=policy())
    f.json("up")
    _fill(f.state_dir, 5)
    _smash(f.state_dir / "fleet.db", 1)
    os.kill(f.status("agent-1")["pid"], signal.SIGKILL)
    wait_until(lambda: f.status("agent-1")["state"] == "exited", timeout=30)
    result: dict[str, Any] = f.json("watchdog", "tick")
    assert [(a["action"], a["outcome"]) for a in result["actions"]] == [("restart_resume", "done")], result
    assert result["ledger"]["code"] == "ledger_unusable"
    wait_until(lambda: f.status("agent-1")["state"] == "idle", timeout=30)
    assert any(r["event"] == "watchdog.restart_resume" for r in f.audit())
    # its crash streak is remembered while the ledger is down: the next crash counts as the second
    assert (f.state_dir / "watchdog-fallback.db").exists()
