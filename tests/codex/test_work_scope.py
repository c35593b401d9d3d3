"""Patch headers as Codex 0.169 really reads them: its apply_patch parser trims each hunk header, so an
indented `*** Add File:` is applied; fleet's PreToolUse hook must judge it (and refuse the patch).
Real Codex, the hostile model scripted; the hook is the script of tests/codex/gatehook.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from codex.gatehook import apply_patch, setup, tool_outputs

__all__ = ["setup"]  # a fixture from gatehook: pytest finds it in this module by name


@pytest.mark.parametrize("indent", ["  ", "\t", "\u00a0"])
def test_an_indented_header_outside_the_write_paths_is_denied(setup: dict[str, Path], codex_bin: str,
                                                              indent: str) -> None:
    patch = (f"*** Begin Patch\n*** Add File: docs/ok.md\n+ok\n{indent}*** Add File: src/evil.py\n+x = 1\n"
             "*** End Patch\n")
    proc, model = apply_patch(codex_bin, setup, patch)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not (setup["work"] / "src" / "evil.py").exists()
    assert not (setup["work"] / "docs" / "ok.md").exists()  # the whole patch is refused
    outputs = tool_outputs(model)
    assert outputs, "Codex sent no tool output back"
    assert "blocked by PreToolUse hook" in outputs[-1]
    assert "src/evil.py (outside the write paths)" in outputs[-1]
