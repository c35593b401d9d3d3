"""fleet's hook decisions through the real Codex 0.169 binary: the Stop hook asks once for a missing
report and Codex continues the same turn; the PreToolUse hook denies an out-of-scope apply_patch and
nothing is written. The hook is the script of tests/codex/gatehook.py."""

from __future__ import annotations

import json
from pathlib import Path

from mockmodel import MockModel, MockServer
from mocksteps import Step

from codex.gatehook import AS_ID, REPORT, apply_patch, run_codex, setup, tool_outputs
from fleet.hooks.gates import ASKS_FILE

__all__ = ["setup"]  # a fixture from gatehook: pytest finds it in this module by name


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
    proc, model = apply_patch(codex_bin, setup, patch)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not (setup["work"] / "src" / "evil.py").exists()
    assert not (setup["work"] / "docs" / "ok.md").exists()  # the whole patch is refused
    outputs = tool_outputs(model)
    assert outputs, "Codex sent no tool output back"
    text = outputs[-1]
    assert "blocked by PreToolUse hook" in text
    assert "src/evil.py (outside the write paths)" in text
    assert "It may write only: docs/" in text


def test_an_in_scope_patch_goes_through(setup: dict[str, Path], codex_bin: str) -> None:
    patch = "*** Begin Patch\n*** Add File: docs/ok.md\n+ok\n*** End Patch\n"
    proc, _ = apply_patch(codex_bin, setup, patch)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (setup["work"] / "docs" / "ok.md").read_text() == "ok\n"


