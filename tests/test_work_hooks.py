"""fleet's hook decisions through the real Codex 0.169 binary: the Stop hook asks once for a missing
report and Codex continues the same turn; the PreToolUse hook denies an out-of-scope apply_patch and
nothing is written. The hook is a tiny script run with `python3 -S` importing only
`fleet.hooks.gates`, as the hook receiver will."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import REPO

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


def test_the_hook_script_imports_nothing_outside_the_standard_library(tmp_path: Path) -> None:
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import fleet.hooks.gates; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('yaml', 'jsonschema', 'libtmux', "
            "'filelock', 'mcp', 'typer')))")
    out = subprocess.run([sys.executable, "-S", "-c", code, str(REPO)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
