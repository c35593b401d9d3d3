"""A damaged `fleet.db`: the watchdog tick goes on without it and says so, and `fleet ledger-repair`
moves it aside, salvages what SQLite can still read and starts a fresh ledger.

The damage is real: pages of a real ledger file are overwritten with random bytes (the header page,
or a leaf page of one table found with SQLite's `dbstat`), and every step runs as a real `fleet`
process. The crash test runs real Codex against the mock model.
"""

from __future__ import annotations

import os
import random
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import Fleet, wait_until
from mockmodel import MockServer

from codex.test_watchdog_tick import policy
from fleet.work.ledger import Ledger

PAGE = 4096


def _fill(state_dir: Path, n: int = 60) -> tuple[list[str], int]:
    """A ledger with `n` assignments (long tasks, so they span many pages) and their events; returns
    the ids and the highest event id."""
    ids = []
    with Ledger(state_dir) as ledger:
        for i in range(n):
            a, _ = ledger.create(task=f"task {i} " + "x" * 1500, holder="lead", actor="lead", agent="agent-1")
            ledger.annotate(a.id, "note", actor="lead", details={"i": i, "pad": "y" * 300})
            ids.append(a.id)
        _, cursor = ledger.events_since(0, 5000)
    return ids, cursor


def _smash(db: Path, page: int, seed: int = 7) -> None:
    """Overwrite page `page` (1-based) of `db` with random bytes."""
    noise = random.Random(seed).randbytes(PAGE)
    with db.open("r+b") as fh:
        fh.seek((page - 1) * PAGE)
        fh.write(noise)


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
