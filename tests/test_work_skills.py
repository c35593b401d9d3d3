"""The skill inventory: Codex's roots and scan rules on real temp trees (tests/codex/test_work_skills.py
asks the real Codex binary which skills it loads for the same tree)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from skilltree import EXPECTED, install_plugin, skill, tree

from fleet.work.skills import (
    MAX_SKILL_BYTES,
    agent_home,
    installed_plugins,
    list_skills,
    project_skill_dirs,
    read_skill,
    scan_skills,
)

__all__ = ["tree"]  # a fixture from skilltree: pytest finds it in this module by name


def test_every_root_and_scan_rule_codex_uses(tree: dict[str, Path]) -> None:
    inv = scan_skills(tree["codex_home"], tree["cwd"], tree["home"])
    assert {s.name: s.source for s in inv.skills} == EXPECTED
    assert inv.warnings == ()
    [builtin] = [s for s in inv.skills if s.name == "builtin"]
    assert builtin.system
    [hello] = [s for s in inv.skills if s.name == "demo:hello"]
    assert hello.plugin == "demo"
    assert "/0.10.0/skills/hello/SKILL.md" in hello.path
    assert inv.names() == frozenset(EXPECTED)


def test_the_plugins_feature_turned_off_hides_plugin_skills(tree: dict[str, Path]) -> None:
    off = {s.name for s in list_skills(tree["codex_home"], tree["cwd"], tree["home"], plugins_enabled=False)}
    assert off == set(EXPECTED) - {"demo:hello", "demo:bye"}
    with (tree["codex_home"] / "config.toml").open("a") as f:
        f.write("\n[features]\nplugins = false\n")
    assert {s.name for s in list_skills(tree["codex_home"], tree["cwd"], tree["home"])} == off


def test_outside_a_git_repo_only_the_cwds_own_project_skills_count(tmp_path: Path) -> None:
    cwd = tmp_path / "a" / "b"
    cwd.mkdir(parents=True)
    assert project_skill_dirs(cwd) == [cwd / ".agents" / "skills", cwd / ".codex" / "skills"]
    (tmp_path / ".git").write_text("gitdir: elsewhere\n")  # a worktree's .git is a file
    assert len(project_skill_dirs(cwd)) == 6


def test_an_empty_git_dir_marks_the_root_for_agents_skills_but_not_for_codex_skills(tmp_path: Path) -> None:
    """Measured on 0.169: `.codex` layers need a `.git` file or a `.git/HEAD`; `.agents` any `.git`."""
    cwd = tmp_path / "a"
    cwd.mkdir()
    (tmp_path / ".git").mkdir()
    assert project_skill_dirs(cwd) == [cwd / ".agents" / "skills", cwd / ".codex" / "skills",
                                       tmp_path / ".agents" / "skills"]
    (tmp_path / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    assert project_skill_dirs(cwd)[-1] == tmp_path / ".codex" / "skills"


def test_a_skill_hidden_from_implicit_use_is_still_listed_and_usable(tmp_path: Path) -> None:
    path = skill(tmp_path, "review", name="review")
    (path.parent / "agents").mkdir()
    (path.parent / "agents" / "openai.yaml").write_text("policy:\n  allow_implicit_invocation: false\n")
    got = read_skill(path, "system")
    assert got.usable
    assert not got.implicit
    assert got.to_dict()["implicit"] is False


def test_the_agents_home_comes_from_its_env(tmp_path: Path) -> None:
    assert agent_home({"HOME": str(tmp_path)}) == tmp_path
    assert agent_home({}) == Path.home()
    assert agent_home(None) == Path.home()


@pytest.mark.parametrize(
    ("content", "error"),
    [
        ("no front matter\n", "has no front matter"),
        ("---\nname: x\ndescription: y\n", "front matter is not closed"),
        ("---\nname: [broken\ndescription: x\n---\n", "front matter is not valid YAML at line 3"),
        ('---\nname: x\ndescription: "open\n---\n', "not valid YAML"),
        ("---\n- a\n- b\n---\n", "must be a mapping"),
        ("---\nname: x\n---\n", "description is missing"),
        ("---\nname: 5\ndescription: d\n---\n", "name must be a one-line string"),
        (f"---\nname: {'n' * 65}\ndescription: d\n---\n", "longer than 64"),
        ("---\nname: x\ndescription: d\n", "not closed"),
    ],
)
def test_a_broken_skill_file_is_listed_with_its_error(tmp_path: Path, content: str, error: str) -> None:
    path = tmp_path / "skills" / "bad" / "SKILL.md"
    path.parent.mkdir(parents=True)
    path.write_text(content)
    got = read_skill(path, "codex_home")
    assert got.error is not None
    assert error in got.error
    assert not got.usable
    assert got.path == str(path)


def test_broken_files_never_break_the_listing(tree: dict[str, Path]) -> None:
    bad = tree["codex_home"] / "skills" / "bad" / "SKILL.md"
    bad.parent.mkdir()
    bad.write_bytes(b"---\nname: \xff\xfe\n---\n")
    unreadable = skill(tree["codex_home"] / "skills", "locked", name="locked")
    unreadable.chmod(0)
    inv = scan_skills(tree["codex_home"], tree["cwd"], tree["home"])
    errors = {s.name: s.error for s in inv.skills if s.error}
    assert errors["bad"] == "is not UTF-8 text"
    if os.geteuid() != 0:  # root reads anything
        assert "cannot be read" in (errors["locked"] or "")
    assert set(EXPECTED) <= {s.name for s in inv.skills}


def test_descriptions_are_folded_and_cut_as_codex_cuts_them(tmp_path: Path) -> None:
    path = skill(tmp_path, "s", name="s", description=">\n  folded\n  text")
    assert read_skill(path, "user").description == "folded text"
    long = skill(tmp_path, "l", name="l", description="x" * 3000)
    assert len(read_skill(long, "user").description) == 1024


def test_a_huge_skill_file_is_read_only_up_to_the_cap(tmp_path: Path) -> None:
    path = tmp_path / "big" / "SKILL.md"
    path.parent.mkdir()
    path.write_text("---\nname: big\ndescription: d\n" + "x: y\n" * (MAX_SKILL_BYTES // 4) + "---\n")
    got = read_skill(path, "user")
    assert got.error == f"front matter is not closed with a --- line within the first {MAX_SKILL_BYTES} bytes"


def test_a_symlink_cycle_and_a_huge_tree_are_bounded(tmp_path: Path) -> None:
    root = tmp_path / "codex-home"
    skill(root / "skills", "a", name="a")
    (root / "skills" / "a" / "loop").symlink_to(root / "skills")
    for i in range(30):
        (root / "skills" / "junk" / f"d{i}").mkdir(parents=True)
        for j in range(700):
            (root / "skills" / "junk" / f"d{i}" / f"f{j}").touch()
    inv = scan_skills(root, tmp_path / "cwd", tmp_path / "home")
    assert [s.name for s in inv.skills] == ["a"]
    assert any("more than 20000 directory entries" in w for w in inv.warnings)


def test_plugin_manifests_name_the_skills_and_choose_their_directory(tmp_path: Path) -> None:
    home = tmp_path / "h"
    home.mkdir()
    root = install_plugin(home, "p", "m", "1.0.0", [], manifest={"name": "renamed", "skills": "./other/"})
    skill(root / "other", "x", name="x")
    install_plugin(home, "q", "m", "1.0.0", ["y"], manifest={"name": "q"})           # default skills/
    install_plugin(home, "r", "m", "1.0.0", ["z"], manifest={"name": "r", "skills": "../../../../.."})
    with (home / "config.toml").open("a") as f:
        f.write('\n[plugins."missing@m"]\nenabled = true\n')
    inv = scan_skills(home, tmp_path / "cwd", tmp_path / "home")
    assert {s.name for s in inv.skills} == {"renamed:x", "q:y"}
    assert any("leaves the plugin directory" in w for w in inv.warnings)
    assert any("missing@m: enabled in config.toml but not installed" in w for w in inv.warnings)
    assert [p.key for p in installed_plugins(home)] == ["missing@m", "p@m", "q@m", "r@m"]


def test_a_broken_config_toml_is_a_warning_not_a_failure(tmp_path: Path) -> None:
    home = tmp_path / "h"
    skill(home / "skills", "ok", name="ok")
    (home / "config.toml").write_text("[plugins\n")
    inv = scan_skills(home, tmp_path / "cwd", tmp_path / "home")
    assert [s.name for s in inv.skills] == ["ok"]
    assert "not valid TOML" in inv.warnings[0]
