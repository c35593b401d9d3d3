"""A skill tree laid out as Codex 0.169 scans it: `SKILL.md` files under every root it reads (its
home, the agent's HOME, the project layers up to the git root, cached plugins), with the edge cases of
its scan rules, and the inventory fleet must list for it. Shared by the scan tests and the one test
that asks the real Codex binary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def skill(root: Path, rel: str, name: str | None = None, description: str | None = "Does a thing.") -> Path:
    path = root / rel / "SKILL.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["---"]
    if name is not None:
        lines.append(f"name: {name}")
    if description is not None:
        lines.append(f"description: {description}")
    path.write_text("\n".join([*lines, "---", "Body.", ""]))
    return path


def install_plugin(codex_home: Path, name: str, market: str, version: str, skills: list[str],
                   enabled: bool | None = True, manifest: dict[str, object] | None = None) -> Path:
    root = codex_home / "plugins" / "cache" / market / name / version
    (root / ".codex-plugin").mkdir(parents=True)
    (root / ".codex-plugin" / "plugin.json").write_text(json.dumps(
        manifest if manifest is not None else {"name": name, "version": version, "skills": "./skills/"}))
    for s in skills:
        skill(root / "skills", s, name=s)
    if enabled is not None:
        with (codex_home / "config.toml").open("a") as f:
            f.write(f'\n[plugins."{name}@{market}"]\nenabled = {str(enabled).lower()}\n')
    return root


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
