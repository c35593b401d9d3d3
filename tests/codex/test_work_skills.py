"""The skill inventory against the real Codex 0.169 binary: it is asked which skills it loads for the
tree of tests/skilltree.py, and fleet's scan of the same tree must list exactly those."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from conftest import require_offline
from mockmodel import MockServer
from offlinecodex import codex_offline_args
from skilltree import tree

from fleet.work.skills import scan_skills

__all__ = ["tree"]  # a fixture from skilltree: pytest finds it in this module by name


SKILL_LINE = re.compile(r"^- (.+?): .* \(file: (r\d+)/(.+)\)$")
ROOT_LINE = re.compile(r"^- `(r\d+)` = `(.+)`$")


def codex_skill_list(codex: str, server: MockServer, codex_home: Path, home: Path, cwd: Path) -> set[tuple[str, str]]:
    """Run `codex exec` once and read back the (name, SKILL.md path) pairs Codex told the model about."""
    args = codex_offline_args(server.url, plugins=True)
    env = {**os.environ, "CODEX_HOME": str(codex_home), "HOME": str(home)}
    proc = subprocess.run([codex, "exec", *args, "--skip-git-repo-check", "hi"], cwd=cwd, env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=90, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    texts = [c.get("text", "") for body in server.model.requests for item in body.get("input", [])
             for c in (item.get("content") or []) if "<skills_instructions>" in c.get("text", "")]
    assert texts, "Codex sent no skills list"
    lines = texts[0].splitlines()
    roots = {m.group(1): m.group(2) for m in map(ROOT_LINE.match, lines) if m}
    found = set()
    for m in map(SKILL_LINE.match, lines):
        if m:
            found.add((m.group(1), os.path.join(roots[m.group(2)], m.group(3))))
    return found


def test_the_inventory_matches_what_real_codex_loads(tree: dict[str, Path], codex_bin: str,
                                                     mock_model: MockServer) -> None:
    """The tree of skilltree.py, asked of Codex 0.169 itself: every skill fleet lists without an error
    is one Codex lists, at the same path, and nothing Codex lists is missing (its .system skills are
    installed by that first run, so the inventory is taken after it)."""
    require_offline()
    bad = tree["codex_home"] / "skills" / "nodesc" / "SKILL.md"  # Codex drops it; fleet lists its error
    bad.parent.mkdir()
    bad.write_text("---\nname: nodesc\n---\n")
    codex = codex_skill_list(codex_bin, mock_model, tree["codex_home"], tree["home"], tree["cwd"])
    inv = scan_skills(tree["codex_home"], tree["cwd"], tree["home"])
    ours = {(s.name, s.path) for s in inv.skills if s.usable and s.implicit}
    assert ours == codex
    assert "review-agent" in {s.name for s in inv.skills if s.usable and not s.implicit}
    assert {"demo:hello", "midway", "at-root", "deep6", "linked", "imagegen"} <= {name for name, _ in codex}
    assert "imagegen" in {s.name for s in inv.skills if s.system}  # Codex replaced .system with its own
    assert [s.name for s in inv.skills if not s.usable] == ["nodesc"]
