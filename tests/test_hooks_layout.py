"""The hook process's rule (`fleet.hooks`): the standard library only, and nothing more of fleet than
it needs. Each case runs the receiver as Codex does (`python -S receiver.py ...` in a subprocess, the
payload on stdin) against a temp agent dir set up so that the event takes its longest path, and
records `sys.modules` as the process exits: no third-party module may be there, and no fleet module
outside `ALLOWED`. Speed itself is measured in bench/bench_assign.py and bench/bench_approve.py."""

from __future__ import annotations

import json
import site
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fleet.agents.journal import JOURNAL_MAX
from fleet.config.watchdog import ApprovalPolicy
from fleet.hooks import receiver
from fleet.hooks.gates import HookContext, write_context
from fleet.leases import LeaseStore
from fleet.watchdog.policyfile import sync

#: Every fleet module the hook process may load, whichever event it handles. Each must itself be
#: stdlib only; adding one here is a decision about the hook's start-up time.
ALLOWED = frozenset({
    "fleet", "fleet.vocab", "fleet.errors", "fleet.fsutil", "fleet.durations", "fleet.tokens", "fleet.shellwords",
    "fleet.schemacheck", "fleet.audit", "fleet.logs",
    "fleet.config", "fleet.config.watchdog",
    "fleet.agents", "fleet.agents.approvals", "fleet.agents.journal", "fleet.agents.text",
    "fleet.work", "fleet.work.lifecycle", "fleet.work.report", "fleet.work.scope",
    "fleet.leases", "fleet.leases.files", "fleet.leases.records", "fleet.leases.rules", "fleet.leases.store",
    "fleet.watchdog", "fleet.watchdog.approval", "fleet.watchdog.budget", "fleet.watchdog.decide",
    "fleet.watchdog.policyfile",
    "fleet.hooks", "fleet.hooks.gates", "fleet.hooks.hold", "fleet.hooks.approve", "fleet.hooks.programs",
})
#: Runs the receiver as its own `__main__` (as `python -S receiver.py` would, the script's directory
#: first on the path) and writes the names in `sys.modules` to the file named by argv[1] at exit.
#: The test's site-packages (argv[2]) go last on the path, so that a third-party import in a hook
#: module loads and is named here, rather than only breaking the hook as it would under Codex.
PROBE = """
import json, os, runpy, sys
out, sites, script = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
sys.argv = sys.argv[3:]
sys.path[0] = os.path.dirname(script)
sys.path.extend(sites)
try:
    runpy.run_path(script, run_name="__main__")
finally:
    with open(out, "w") as f:
        json.dump(sorted(sys.modules), f)
"""
AS_ID = "as-01JABCDEFGHJKMNPQRSTVWXYZ0"
PATCH = "*** Begin Patch\n*** Add File: src/evil.py\n+x\n*** End Patch\n"


@dataclass(frozen=True)
class Case:
    mode: str  # hook | notify
    payload: dict[str, Any]
    last_event: str  # what the journal ends with when the path ran to its end (a compaction: its marker)
    hold: float = 0.0
    held_by_a_person: bool = False
    full_journal: bool = False


CASES = {
    "SessionStart": Case("hook", {"hook_event_name": "SessionStart", "source": "startup"}, "session_started"),
    "UserPromptSubmit": Case("hook", {"hook_event_name": "UserPromptSubmit", "prompt": "hi"}, "turn_started"),
    "Stop, no report": Case("hook", {"hook_event_name": "Stop", "last_assistant_message": "done"}, "report_asked"),
    "PreToolUse, patch out of scope": Case("hook", {"hook_event_name": "PreToolUse", "tool_name": "apply_patch",
                                                    "tool_input": {"command": PATCH}}, "tool_denied"),
    "PostToolUse": Case("hook", {"hook_event_name": "PostToolUse", "tool_name": "Bash"}, "tool_completed"),
    "PermissionRequest, the policy allows": Case(
        "hook", {"hook_event_name": "PermissionRequest", "tool_name": "Bash",
                 "tool_input": {"command": "cat README.md"}}, "approval_answered", hold=0.3),
    "PermissionRequest, held for a person": Case(
        "hook", {"hook_event_name": "PermissionRequest", "tool_name": "Bash",
                 "tool_input": {"command": "cat README.md"}}, "approval_released", hold=0.3, held_by_a_person=True),
    "notify, journal compacted": Case("notify", {"type": "agent-turn-complete", "turn-id": "t1",
                                                 "last-assistant-message": "done"}, "compacted",
                                      full_journal=True),
}


def agent_dir_for(tmp_path: Path, case: Case) -> Path:
    """`<state>/agents/a` with an open assignment, a read-only approve policy for `<tmp>/work`, and
    (per case) a person's lease or a journal just under its bound."""
    state, work = tmp_path / "state", tmp_path / "work"
    agent_dir = state / "agents" / "a"
    agent_dir.mkdir(parents=True, mode=0o700)
    work.mkdir()
    (work / "README.md").write_text("hello\n")
    write_context(agent_dir, HookContext(assignment=AS_ID, role="worker", cwd=str(work), write_paths=("docs/",)))
    sync(agent_dir, ApprovalPolicy(allow=frozenset({"read-only"}), otherwise="ask"), work, [str(work)])
    if case.held_by_a_person:
        LeaseStore(state).claim("a", "cli:ada")
    if case.full_journal:
        line = json.dumps({"time": 1.0, "event": "hook", "source": "hook", "pad": "x" * 900}) + "\n"
        (agent_dir / "events.jsonl").write_text(line * (JOURNAL_MAX // len(line)), encoding="utf-8")
        (agent_dir / "events.jsonl").chmod(0o600)
    return agent_dir


@pytest.mark.parametrize("name", list(CASES))
def test_the_hook_process_loads_only_the_stdlib_and_the_allowed_fleet_modules(name: str, tmp_path: Path) -> None:
    case = CASES[name]
    agent_dir = agent_dir_for(tmp_path, case)
    out = tmp_path / "modules.json"
    base: dict[str, Any] = {"session_id": "s1", "turn_id": "t1", "transcript_path": "",
                            "cwd": str(tmp_path / "work")}
    argv = [sys.executable, "-S", "-c", PROBE, str(out), json.dumps(site.getsitepackages()), receiver.__file__,
            case.mode, str(agent_dir)]
    if case.mode == "hook":
        argv += ["--hold", str(case.hold)] if case.hold else []
        stdin = json.dumps({**base, **case.payload})
    else:
        argv.append(json.dumps(case.payload))
        stdin = ""
    proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=60, check=False,
                          cwd=tmp_path)
    assert (proc.returncode, proc.stderr) == (0, "")
    assert not (agent_dir / "hookrecv.err").exists(), (agent_dir / "hookrecv.err").read_text()
    events = [json.loads(line) for line in (agent_dir / "events.jsonl").read_text().splitlines()]
    assert events[-1]["event"] == case.last_event  # the case took the path it is meant to test
    loaded: list[str] = json.loads(out.read_text())
    third_party = sorted({m.split(".")[0] for m in loaded} - set(sys.stdlib_module_names) - {"fleet", "__main__"})
    assert third_party == []
    assert sorted(m for m in loaded if m.split(".")[0] == "fleet" and m not in ALLOWED) == []
