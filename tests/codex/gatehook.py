"""fleet's hook gates run by the real Codex 0.169 binary: a tiny hook script run with `python3 -S`
that imports only `fleet.hooks.gates`, as the hook receiver will, wired into `codex exec` as its Stop
and PreToolUse (apply_patch) hook for a worker that may write only `docs/`."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import REPO, require_offline
from mockmodel import MockModel, MockServer
from mocksteps import Step
from offlinecodex import codex_offline_args

from fleet.hooks.gates import HookContext, write_context

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


def apply_patch(codex: str, paths: dict[str, Path], patch: str) -> tuple[subprocess.CompletedProcess[str], MockModel]:
    """One `codex exec` turn in which the model sends `patch` to apply_patch, then reports."""
    model = MockModel(default_text=REPORT)
    model.script(Step(tool=("apply_patch", {"input": patch})))
    with MockServer(model) as server:
        return run_codex(codex, server, paths, "Write the docs."), model


def tool_outputs(model: MockModel) -> list[str]:
    """What Codex sent back for each tool call, as JSON text."""
    return [json.dumps(item.get("output")) for body in model.requests for item in body.get("input", [])
            if item.get("type") == "custom_tool_call_output"]
