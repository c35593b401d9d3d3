"""Review of verification (issue 12, hole 1) as merged: what an agent can do to its own cwd so that
the work never gets a verdict, or a change is not seen.

Real files, the real ledger and the real CLI (`fleet wait`, `fleet show`); no Codex: the assignment is
put in the ledger as `fleet assign` leaves it (`sent_in_ledger`) and the turn's end is journaled as
the hook journals it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Fleet, sent_in_ledger

from fleet.work.verify import changed_files, snapshot


def report_turn(f: Fleet, agent: str, changed: list[str]) -> None:
    body = {"status": "done", "summary": "s", "changed": changed, "tests": "", "risks": ""}
    journal = f.state_dir / "agents" / agent / "events.jsonl"
    journal.parent.mkdir(parents=True, exist_ok=True)
    journal.write_text(json.dumps({"event": "turn_started", "turn_id": "t1", "time": 1.0}) + "\n" + json.dumps(
        {"event": "turn_completed", "turn_id": "t1", "time": 2.0,
         "last_message": f"Done.\n```fleet-report\n{json.dumps(body)}\n```"}) + "\n")


def test_a_file_name_that_is_not_utf8_gets_a_verdict_and_breaks_no_read(fleet_factory: Callable[..., Fleet]) -> None:
    """Linux file names are bytes; an agent can create one that is not UTF-8 (`touch $'\\xff'`). The
    snapshot reads it as a lone surrogate, which SQLite refuses to store: the verdict must still be
    recorded (the path shown escaped), and `wait`/`show` must keep working."""
    f = fleet_factory(1, agent_extra='role = "worker"\n')
    cwd = f.root / "work" / "agent-1"
    cwd.mkdir(parents=True, exist_ok=True)
    aid = sent_in_ledger(f, "agent-1", task="t", write_paths=["docs/"])
    (cwd / "docs").mkdir()
    (cwd / "docs" / "a.md").write_text("the agent's work\n")
    fd = os.open(os.fsencode(cwd) + b"/docs/\xff.md", os.O_WRONLY | os.O_CREAT, 0o644)
    os.close(fd)
    report_turn(f, "agent-1", ["docs/a.md"])
    first = f.cli("assignments", "--json")  # the read that reconciles (and verifies) first
    waited = f.cli("wait", aid, "--timeout", "30", "--json")
    assert (first.returncode, waited.returncode) == (0, 0), first.stderr + waited.stderr
    [done] = json.loads(waited.stdout)["done"]
    assert done["state"] == "rejected"  # a change fleet cannot name is a change it did not see
    shown = f.json("show", aid)
    [reason] = [r for r in shown["verification"]["reasons"] if r["code"] == "unverifiable"]
    assert "docs/\\xff.md (a name that is not UTF-8)" in reason["message"]
    listed = f.cli("assignments", "--json")
    assert listed.returncode == 0, listed.stderr


def test_a_report_with_a_lone_surrogate_escape_breaks_no_read(fleet_factory: Callable[..., Fleet]) -> None:
    """The report is JSON the model wrote; `"\\udcff"` is valid JSON and decodes to a lone surrogate,
    which SQLite refuses to store. The assignment must still end, and reads keep working."""
    f = fleet_factory(1, agent_extra='role = "worker"\n')
    cwd = f.root / "work" / "agent-1"
    cwd.mkdir(parents=True, exist_ok=True)
    aid = sent_in_ledger(f, "agent-1", task="t")
    journal = f.state_dir / "agents" / "agent-1" / "events.jsonl"
    journal.parent.mkdir(parents=True, exist_ok=True)
    body = '{"status": "done", "summary": "\\udcff", "changed": [], "tests": "", "risks": ""}'
    journal.write_text(json.dumps({"event": "turn_started", "turn_id": "t1", "time": 1.0}) + "\n" + json.dumps(
        {"event": "turn_completed", "turn_id": "t1", "time": 2.0,
         "last_message": f"Done.\n```fleet-report\n{body}\n```"}) + "\n")
    results = [f.cli("assignments", "--json") for _ in range(2)]
    assert [r.returncode for r in results] == [0, 0], results[-1].stderr
    [done] = f.json("wait", aid, "--timeout", "30")["done"]
    assert done["state"] == "failed"  # the report is invalid, and says why
    assert "lone surrogate" in json.dumps(f.json("show", aid))


@pytest.mark.parametrize("mode", [0o4755, 0o2755, 0o757, 0o775, 0o700])
def test_a_permission_change_counts_as_a_change(tmp_path: Path, mode: int) -> None:
    """A snapshot used to record only whether any x bit was set: setuid, setgid, sticky and
    group/other-write changes, or x taken from group and others, were no change to the verdict."""
    work = tmp_path / "work"
    work.mkdir()
    tool = work / "tool.sh"
    tool.write_text("#!/bin/sh\necho hi\n")
    tool.chmod(0o755)
    before = snapshot(work)
    tool.chmod(mode)  # an agent can do this in its cwd: a setuid file, or one any local user may rewrite
    assert changed_files(before, snapshot(work, since=before)) == ["tool.sh"]
