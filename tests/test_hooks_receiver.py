"""The hook receiver as Codex runs it (`python -S receiver.py hook AGENT_DIR`, payload on stdin): with
an assignment open it asks once for a missing report and denies out-of-scope patches, journals what
it decided, and fails open on anything unexpected."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fleet.hooks import receiver
from fleet.hooks.gates import ASKS_FILE, CONTEXT_FILE, HookContext, write_context

AS_ID = "as-01JABCDEFGHJKMNPQRSTVWXYZ0"
REPORT = '```fleet-report\n{"status":"done","summary":"s","changed":[],"tests":"","risks":""}\n```'
PATCH = "*** Begin Patch\n*** Add File: src/evil.py\n+x\n*** Add File: docs/ok.md\n+ok\n*** End Patch\n"


def run(agent_dir: Path, **payload: Any) -> str:
    base = {"session_id": "s1", "turn_id": "t1", "transcript_path": "", "cwd": str(agent_dir.parent / "work")}
    proc = subprocess.run([sys.executable, "-S", receiver.__file__, "hook", str(agent_dir)],
                          input=json.dumps({**base, **payload}), capture_output=True, text=True, check=True,
                          timeout=30)
    assert proc.stderr == ""
    return proc.stdout


def journal(agent_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (agent_dir / "events.jsonl").read_text().splitlines()]


@pytest.fixture
def agent_dir(tmp_path: Path) -> Path:
    d = tmp_path / "agent"
    d.mkdir()
    (tmp_path / "work" / "docs").mkdir(parents=True)
    return d


def open_assignment(agent_dir: Path, turn: str | None = None) -> None:
    write_context(agent_dir, HookContext(assignment=AS_ID, role="worker", cwd=str(agent_dir.parent / "work"),
                                         write_paths=("docs/",), turn_id=turn))


def test_without_an_assignment_it_only_journals(agent_dir: Path) -> None:
    assert run(agent_dir, hook_event_name="Stop", last_assistant_message="no report") == ""
    assert run(agent_dir, hook_event_name="PreToolUse", tool_name="apply_patch", tool_input={"command": PATCH}) == ""
    assert [e["event"] for e in journal(agent_dir)] == ["turn_completed", "tool_started"]


def test_a_missing_report_is_asked_for_once_and_the_turn_stays_open(agent_dir: Path) -> None:
    open_assignment(agent_dir)
    out = json.loads(run(agent_dir, hook_event_name="Stop", last_assistant_message="Done."))
    assert out["decision"] == "block"
    assert f"assignment {AS_ID} needs a report" in out["reason"]
    [asked] = journal(agent_dir)
    assert (asked["event"], asked["assignment"], asked["turn_id"]) == ("report_asked", AS_ID, "t1")
    assert json.loads((agent_dir / ASKS_FILE).read_text())["turn_id"] == "t1"
    # The continuation's Stop (stop_hook_active) and any later Stop in that turn end it.
    assert run(agent_dir, hook_event_name="Stop", last_assistant_message="Still no.", stop_hook_active=True) == ""
    assert run(agent_dir, hook_event_name="Stop", last_assistant_message="Still no.") == ""
    assert [e["event"] for e in journal(agent_dir)] == ["report_asked", "turn_completed", "turn_completed"]


def test_a_valid_report_or_another_turn_is_not_asked(agent_dir: Path) -> None:
    open_assignment(agent_dir, turn="t1")
    assert run(agent_dir, hook_event_name="Stop", last_assistant_message=f"Done.\n{REPORT}") == ""
    assert run(agent_dir, hook_event_name="Stop", turn_id="t2", last_assistant_message="no") == ""
    assert [e["event"] for e in journal(agent_dir)] == ["turn_completed", "turn_completed"]


def test_an_out_of_scope_patch_is_denied_and_journalled(agent_dir: Path) -> None:
    open_assignment(agent_dir)
    out = json.loads(run(agent_dir, hook_event_name="PreToolUse", tool_name="apply_patch",
                         tool_input={"command": PATCH}))
    assert out["hookSpecificOutput"]["permissionDecision"] == "deny"
    assert "src/evil.py (outside the write paths)" in out["hookSpecificOutput"]["permissionDecisionReason"]
    [denied] = journal(agent_dir)
    assert (denied["event"], denied["assignment"], denied["paths"]) == ("tool_denied", AS_ID, ["src/evil.py"])
    assert run(agent_dir, hook_event_name="PreToolUse", tool_name="Bash", tool_input={"command": "rm -rf /"}) == ""
    assert journal(agent_dir)[-1]["event"] == "tool_started"


def test_a_broken_context_fails_open_and_is_logged(agent_dir: Path) -> None:
    (agent_dir / CONTEXT_FILE).write_text("{not json")
    assert run(agent_dir, hook_event_name="Stop", last_assistant_message="no") == ""
    assert [e["event"] for e in journal(agent_dir)] == ["turn_completed"]
    assert "policy Stop" in (agent_dir / "hookrecv.err").read_text()


def test_a_symlinked_context_is_refused(agent_dir: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "planted.json"
    write_context(tmp_path, HookContext(assignment=AS_ID, role="explorer", cwd="/"))
    (tmp_path / CONTEXT_FILE).rename(elsewhere)
    (agent_dir / CONTEXT_FILE).symlink_to(elsewhere)
    assert run(agent_dir, hook_event_name="PreToolUse", tool_name="apply_patch", tool_input={"command": PATCH}) == ""
    assert "policy PreToolUse" in (agent_dir / "hookrecv.err").read_text()
