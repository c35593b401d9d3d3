"""fleet's hook decisions through the real Codex 0.169 binary: the Stop hook asks once for a missing
report and Codex continues the same turn; the PreToolUse hook denies an out-of-scope apply_patch and
nothing is written. The hook is a tiny script run with `python3 -S` importing only
`fleet.hooks.gates`, as the hook receiver will."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import REPO, require_offline
from mockmodel import MockModel, MockServer, Step, codex_offline_args

from fleet.hooks.gates import ASKS_FILE, HookContext, write_context

AS_ID = "as-01JABCDEFGHJKMNPQRSTVWXYZ0"
REPORT = ('Finished.\n```fleet-report\n{"status":"done","summary":"Wrote it.","changed":[],"tests":"",'
          '"risks":""}\n```')
HOOK = """
import json, sys
sys.path.insert(0, sys.argv[2])
from fleet.hooks.gates import pretool_decision, read_context, record_ask, stop_decision
payload = json.load(sys.stdin)
agent_dir = sys.argv[1]
ctx = read_context(agent_dir)
event = payload.get("hook_event_name")
decision = None
if event == "Stop":
    decision = stop_decision(payload, ctx)
    if decision is not None:
        record_ask(agent_dir, ctx.assignment, payload["turn_id"])
elif event == "PreToolUse":
    decision = pretool_decision(payload, ctx)
if decision is not None:
    print(json.dumps(decision))
"""


@pytest.fixture
def setup(tmp_path: Path, model_catalog: Path) -> dict[str, Path]:
    require_offline()
    home, work, agent_dir = tmp_path / "codex-home", tmp_path / "work", tmp_path / "agent"
    for d in (home, work / "docs", agent_dir):
        d.mkdir(parents=True)
    (tmp_path / "hook.py").write_text(HOOK)
    write_context(agent_dir, HookContext(assignment=AS_ID, role="worker", cwd=str(work), write_paths=("docs/",)))
    return {"home": home, "work": work, "agent": agent_dir, "hook": tmp_path / "hook.py", "catalog": model_catalog}


def run_codex(codex: str, server: MockServer, paths: dict[str, Path], prompt: str) -> subprocess.CompletedProcess[str]:
    command = f"python3 -S {paths['hook']} {paths['agent']} {REPO}"
    handler = f'{{type="command", command="{command}", timeout=30}}'
    args = [*codex_offline_args(server.url),
            "-c", f"hooks.Stop=[{{hooks=[{handler}]}}]",
            "-c", f'hooks.PreToolUse=[{{matcher="apply_patch", hooks=[{handler}]}}]',
            "-c", 'sandbox_mode="workspace-write"', "-c", f'model_catalog_json="{paths["catalog"]}"',
            "--dangerously-bypass-hook-trust"]
    env = {**os.environ, "CODEX_HOME": str(paths["home"])}
    return subprocess.run([codex, "exec", *args, "--skip-git-repo-check", prompt], cwd=paths["work"], env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, check=False)


def user_texts(model: MockModel) -> list[str]:
    return [c.get("text", "") for body in model.requests for item in body.get("input", [])
            if item.get("role") == "user" for c in (item.get("content") or [])]


def test_a_missing_report_is_asked_for_once_in_the_same_turn(setup: dict[str, Path], codex_bin: str) -> None:
    model = MockModel(default_text="Still no block.")
    model.script(Step(text="All done, I think."), Step(text=REPORT))
    with MockServer(model) as server:
        proc = run_codex(codex_bin, server, setup, "Do the task.")
    assert proc.returncode == 0, proc.stderr[-2000:]
    asks = [t for t in user_texts(model) if "<hook_prompt" in t]
    assert len(set(asks)) == 1
    assert f"assignment {AS_ID} needs a report" in asks[0]
    assert "no ```fleet-report block in the message" in asks[0]
    lines = (setup["agent"] / ASKS_FILE).read_text().splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0])["assignment"] == AS_ID
    assert '"status":"done"' in proc.stdout


def test_the_stop_hook_never_loops_when_the_model_never_reports(setup: dict[str, Path], codex_bin: str) -> None:
    model = MockModel(default_text="No report, ever.")
    with MockServer(model) as server:
        proc = run_codex(codex_bin, server, setup, "Do the task.")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len({t for t in user_texts(model) if "<hook_prompt" in t}) == 1
    assert len([b for b in model.requests if "single-line task title" not in json.dumps(b)]) == 2


def test_an_out_of_scope_patch_is_denied_before_anything_is_written(setup: dict[str, Path], codex_bin: str,
                                                                   ) -> None:
    patch = "*** Begin Patch\n*** Add File: src/evil.py\n+x = 1\n*** Add File: docs/ok.md\n+ok\n*** End Patch\n"
    model = MockModel(default_text=REPORT)
    model.script(Step(tool=("apply_patch", {"input": patch})))
    with MockServer(model) as server:
        proc = run_codex(codex_bin, server, setup, "Write the docs.")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not (setup["work"] / "src" / "evil.py").exists()
    assert not (setup["work"] / "docs" / "ok.md").exists()  # the whole patch is refused
    outputs = [item.get("output") for body in model.requests for item in body.get("input", [])
               if item.get("type") == "custom_tool_call_output"]
    assert outputs, "Codex sent no tool output back"
    text = json.dumps(outputs[-1])
    assert "blocked by PreToolUse hook" in text
    assert "src/evil.py (outside the write paths)" in text
    assert "It may write only: docs/" in text


def test_an_in_scope_patch_goes_through(setup: dict[str, Path], codex_bin: str) -> None:
    patch = "*** Begin Patch\n*** Add File: docs/ok.md\n+ok\n*** End Patch\n"
    model = MockModel(default_text=REPORT)
    model.script(Step(tool=("apply_patch", {"input": patch})))
    with MockServer(model) as server:
        proc = run_codex(codex_bin, server, setup, "Write the docs.")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (setup["work"] / "docs" / "ok.md").read_text() == "ok\n"


