"""A hostile agent hiding a change from verification, with the checks run in the agent's real Codex
sandbox: what the checks themselves write is not blamed on the agent. (The ignore rules, caches, `.git`
internals and budgets, which need no Codex, are in tests/test_work_verify_hidden.py.)
"""

from __future__ import annotations

import json
from collections.abc import Callable

from conftest import Fleet, sent_in_ledger


def test_files_the_checks_write_are_not_blamed_on_the_agent(fleet_factory: Callable[..., Fleet],
                                                            codex_bin: str) -> None:
    """The verifier snapshots before it runs the checks: a check's __pycache__ and output files are
    not the agent's (the order is what keeps it so). The checks run in the agent's Codex sandbox."""
    f = fleet_factory(1, codex=codex_bin, agent_extra='role = "worker"\n')
    cwd = f.root / "work" / "agent-1"
    (f.root / "homes" / "agent-1").mkdir(parents=True, exist_ok=True)  # the agent's home, as a launch leaves it
    aid = sent_in_ledger(f, "agent-1", task="t", write_paths=["docs/"],
                         checks=["mkdir -p __pycache__ && echo x > __pycache__/m.pyc && echo y > check-output.txt"])
    (cwd / "docs").mkdir()
    (cwd / "docs" / "a.md").write_text("the agent's work\n")
    body = {"status": "done", "summary": "s", "changed": ["docs/a.md"], "tests": "", "risks": ""}
    journal = f.state_dir / "agents" / "agent-1" / "events.jsonl"
    journal.parent.mkdir(parents=True, exist_ok=True)
    journal.write_text(json.dumps({"event": "turn_started", "turn_id": "t1", "time": 1.0}) + "\n" + json.dumps(
        {"event": "turn_completed", "turn_id": "t1", "time": 2.0,
         "last_message": f"Done.\n```fleet-report\n{json.dumps(body)}\n```"}) + "\n")
    [done] = f.json("wait", aid, "--timeout", "60")["done"]
    assert done["state"] == "verified", json.dumps(f.json("show", aid)["verification"])
    assert (cwd / "check-output.txt").exists()
