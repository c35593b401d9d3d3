"""A hostile agent hiding a change from verification: ignore rules, caches, `.git` internals, budgets.

Each test plays the agent on a real git repository (or plain directory) with real files, through
the same public calls the service uses (`snapshot`, `changed_files`, `verdict`, `run_checks`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Fleet, sent_in_ledger
from hypothesis import strategies as st
from test_work_verify_hidden import git


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "src").mkdir(parents=True)
    (root / "tests").mkdir()
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.email", "t@example.invalid")
    git(root, "config", "user.name", "t")
    (root / "src" / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    (root / "tests" / "test_calc.py").write_text("from calc import add\n\ndef test_add():\n    assert add(2, 2) == 4\n")
    (root / ".gitignore").write_text("__pycache__/\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "init")
    return root


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


states = st.sampled_from([None, "sha256:aa", "sha256:bb", "sha256:aax", "link:x", "stat:1:2"])
LOOSE = ".git/objects/ab/" + "c" * 38
names = st.sampled_from(["a", "src/b", "__pycache__/c.pyc", ".git/config", LOOSE,
                         f".git/objects/pack/pack-{'d' * 40}.pack", "sub/.git/objects/ab/" + "c" * 38])


