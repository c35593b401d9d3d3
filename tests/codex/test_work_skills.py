"""The skill inventory: Codex's roots and scan rules on real temp trees, and one test that asks the
real Codex 0.169 binary which skills it loads for the same tree and compares."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from conftest import require_offline
from mockmodel import MockServer, codex_offline_args
from test_work_skills import install_plugin, skill

from fleet.work.skills import (
    scan_skills,
)


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    """CODEX_HOME, the agent's HOME, and a cwd two levels inside a git repo, with skills everywhere."""
    codex_home, home, repo = tmp_path / "codex-home", tmp_path / "agent-home", tmp_path / "repo"
    cwd = repo / "mid" / "sub"
    cwd.mkdir(parents=True)
    codex_home.mkdir()
    (repo / ".git").mkdir()
    (repo / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    skill(codex_home / "skills", "pdf", name="pdf")
    skill(codex_home / "skills", "group/a/b/c/d/deep6", name="deep6")           # 6 levels: loads
    skill(codex_home / "skills", "group/a/b/c/d/e/deep7", name="deep7")         # 7 levels: does not
    skill(codex_home / "skills", "outer", name="outer")
    skill(codex_home / "skills", "outer/inner", name="inner")                    # nested in a skill
    skill(codex_home / "skills", ".hidden/secret", name="secret")                # hidden dir: skipped
    skill(codex_home / "skills", "dirname-only")                                  # name from the dir
    skill(codex_home / "skills", ".system/builtin", name="builtin")
    skill(home / ".agents" / "skills", "mine", name="mine")
    skill(cwd / ".agents" / "skills", "here", name="here")
    skill(cwd / ".codex" / "skills", "here-codex", name="here-codex")
    skill(repo / "mid" / ".agents" / "skills", "midway", name="midway")
    skill(repo / ".codex" / "skills", "at-root", name="at-root")
    skill(tmp_path / ".agents" / "skills", "above-repo", name="above-repo")     # above the git root
    elsewhere = tmp_path / "elsewhere"
    skill(elsewhere, "linked", name="linked")
    (codex_home / "skills" / "link").symlink_to(elsewhere / "linked")
    install_plugin(codex_home, "demo", "mkt", "0.9.0", ["old"])
    install_plugin(codex_home, "demo", "mkt", "0.10.0", ["hello", "bye"], enabled=None)
    install_plugin(codex_home, "off", "mkt", "1.0.0", ["nope"], enabled=False)
    install_plugin(codex_home, "ghost", "mkt", "1.0.0", ["boo"], enabled=None)   # cached, not in config
    return {"codex_home": codex_home, "home": home, "cwd": cwd, "repo": repo}


EXPECTED = {
    "pdf": "codex_home", "deep6": "codex_home", "outer": "codex_home", "inner": "codex_home",
    "dirname-only": "codex_home", "linked": "codex_home", "builtin": "system", "mine": "user",
    "here": "project", "here-codex": "project", "midway": "project", "at-root": "project",
    "demo:hello": "plugin", "demo:bye": "plugin",
}


# -- against the real binary -----------------------------------------------------------------------

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
    """The same tree as above, asked of Codex 0.169 itself: every skill fleet lists without an error
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
