"""fleet's git never runs a program that the repository (or fleet's environment) names.

Each case plants one such program in a real repository: a script that leaves a marker file when it
runs. A positive control first runs plain git the way a person would (the trigger) and sees the
marker appear, so the case really arms the program; then fleet takes a baseline and a report-time
snapshot of the agent's cwd (every git command fleet runs there) and the marker must never appear.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from fleet.work.verify import SnapshotError, changed_files, snapshot


def git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env=env).stdout


@dataclass(frozen=True)
class Case:
    """`arm(repo, evil, tmp)` plants the program; `trigger` is the shell command with which plain git
    runs it; `env` is set in fleet's own environment; `fails_closed`: fleet's snapshot must raise."""

    name: str
    arm: Callable[[Path, str, Path], None]
    trigger: str
    env: Callable[[Path, str, Path], dict[str, str]] = lambda repo, evil, tmp: {}
    fails_closed: bool = False
    separate_git_dir: bool = False
    extra: dict[str, str] = field(default_factory=dict)


def cfg(*pairs: str) -> Callable[[Path, str, Path], None]:
    """Arm by `git config KEY VALUE` pairs; `{evil}` in a value is the marker script."""

    def arm(repo: Path, evil: str, tmp: Path) -> None:
        for pair in pairs:
            key, value = pair.split("=", 1)
            git(repo, "config", "--add", key, value.format(evil=evil, repo=repo, tmp=tmp))
    return arm


def attributes(line: str, *pairs: str) -> Callable[[Path, str, Path], None]:
    def arm(repo: Path, evil: str, tmp: Path) -> None:
        (repo / ".gitattributes").write_text(line + "\n")
        cfg(*pairs)(repo, evil, tmp)
    return arm


def include(kind: str) -> Callable[[Path, str, Path], None]:
    """An agent-written config file in the work tree, included from `.git/config`."""

    def arm(repo: Path, evil: str, tmp: Path) -> None:
        (repo / "evil.cfg").write_text(f"[core]\n\tfsmonitor = {evil}\n")
        key = "include.path" if kind == "plain" else f"includeIf.gitdir:{repo}/.git.path"
        git(repo, "config", key, str(repo / "evil.cfg"))
    return arm


def hooks(where: str) -> Callable[[Path, str, Path], None]:
    names = ("pre-commit", "commit-msg", "post-commit", "post-index-change", "reference-transaction",
             "post-checkout", "pre-auto-gc", "fsmonitor-watchman")

    def arm(repo: Path, evil: str, tmp: Path) -> None:
        target = repo / ".git" / "hooks" if where == "default" else tmp / "hooks"
        target.mkdir(exist_ok=True)
        for name in names:
            (target / name).write_text(f"#!/bin/sh\nexec {evil} \"$@\"\n")
            (target / name).chmod(0o755)
        if where != "default":
            git(repo, "config", "core.hooksPath", str(target))
    return arm


def lazy_fetch(repo: Path, evil: str, tmp: Path) -> None:
    """A partial clone whose promisor remote is an `ext::` command, and a commit whose tree is missing:
    reading that tree makes plain git "fetch" it by running the command."""
    cfg("core.repositoryformatversion=1", "extensions.partialClone=origin", "remote.origin.promisor=true",
        "remote.origin.url=ext::{evil}", "protocol.ext.allow=always", "protocol.allow=always")(repo, evil, tmp)
    tree = git(repo, "rev-parse", "HEAD^{tree}").strip()
    (repo / ".git" / "objects" / tree[:2] / tree[2:]).unlink()


def evil_repo(tmp: Path, evil: str) -> Path:
    other = tmp / "other"
    other.mkdir(exist_ok=True)
    git(other, "init", "-q")
    git(other, "config", "core.fsmonitor", evil)
    return other


CASES = [
    Case("core.fsmonitor", cfg("core.fsmonitor={evil}"), "git status"),
    Case("include.path", include("plain"), "git status"),
    Case("includeIf", include("if"), "git status"),
    Case("hooks in .git/hooks", hooks("default"), "git commit -q --allow-empty -m x"),
    Case("core.hooksPath", hooks("path"), "git commit -q --allow-empty -m x"),
    Case("filter clean", attributes("* filter=evil", "filter.evil.clean={evil}"), "git diff"),
    Case("filter process", attributes("* filter=evil", "filter.evil.process={evil}"), "git diff"),
    Case("filter smudge", attributes("* filter=evil", "filter.evil.smudge={evil}"), "git checkout -q -- a.txt"),
    Case("diff.external", cfg("diff.external={evil}"), "git diff"),
    Case("diff driver command", attributes("* diff=evil", "diff.evil.command={evil}"), "git diff"),
    Case("textconv", attributes("* diff=evil", "diff.evil.textconv={evil}"), "git diff HEAD~1 HEAD"),
    Case("core.pager", cfg("core.pager={evil}"), "script -qec 'git log' /dev/null"),
    Case("pager.<cmd>", cfg("pager.log={evil}"), "script -qec 'git log' /dev/null"),
    Case("core.sshCommand", cfg("core.sshCommand={evil}"), "git ls-remote ssh://example.invalid/r"),
    Case("credential.helper", cfg("credential.helper=!{evil}"),
         "printf 'protocol=https\\nhost=example.invalid\\n\\n' | git credential fill"),
    Case("gpg.program", cfg("gpg.program={evil}", "commit.gpgSign=true", "log.showSignature=true"),
         "git commit -q --allow-empty -m s"),
    Case("core.editor", cfg("core.editor={evil}"), "env -u GIT_EDITOR -u VISUAL -u EDITOR git commit --allow-empty"),
    Case("ext:: remote", cfg("remote.origin.url=ext::{evil}", "protocol.ext.allow=always"), "git ls-remote origin"),
    Case("lazy fetch of a partial clone", lazy_fetch, "git diff-tree -r HEAD~1 HEAD", fails_closed=True),
    Case("GIT_CONFIG_COUNT", lambda r, e, t: None, "git status",
         env=lambda r, e, t: {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "core.fsmonitor", "GIT_CONFIG_VALUE_0": e}),
    Case("GIT_CONFIG_PARAMETERS", lambda r, e, t: None, "git status",
         env=lambda r, e, t: {"GIT_CONFIG_PARAMETERS": f"'core.fsmonitor'='{e}'"}),
    Case("GIT_DIR", lambda r, e, t: None, "git status",
         env=lambda r, e, t: {"GIT_DIR": str(evil_repo(t, e) / ".git"), "GIT_WORK_TREE": str(r)}),
    Case("a .git file (gitdir:)", cfg("core.fsmonitor={evil}"), "git status", separate_git_dir=True),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_fleets_git_never_runs_a_program_the_repository_names(case: Case, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "MARKER"
    evil = tmp_path / "evil.sh"
    evil.write_text(f"#!/bin/sh\necho \"$0 $*\" >> {marker}\ncat >/dev/null 2>&1 </dev/null\nexit 1\n")
    evil.chmod(0o755)
    repo = tmp_path / "repo"
    repo.mkdir()
    if case.separate_git_dir:
        git(repo, "init", "-q", "-b", "main", f"--separate-git-dir={tmp_path / 'sep.git'}")
    else:
        git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "t@example.invalid")
    git(repo, "config", "user.name", "t")
    (repo / "a.txt").write_text("a\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "one")
    before = snapshot(repo)
    (repo / "a.txt").write_text("agent's edit\n")  # the agent commits, then leaves the tree dirty
    git(repo, "commit", "-q", "-am", "two")
    (repo / "a.txt").write_text("agent's EDIT\n")  # same size: plain git must read (filter) it to compare
    (repo / "new.txt").write_text("n\n")

    case.arm(repo, str(evil), tmp_path)
    env = case.env(repo, str(evil), tmp_path)
    subprocess.run(case.trigger, shell=True, cwd=repo, capture_output=True, timeout=60,
                   env={**os.environ, "GIT_TERMINAL_PROMPT": "0", **env}, check=False)
    assert marker.exists(), f"the positive control did not run the program: {case.trigger}"
    marker.unlink()

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    if case.fails_closed:
        with pytest.raises(SnapshotError):
            snapshot(repo, since=before)
    else:
        assert "a.txt" in changed_files(before, snapshot(repo, since=before))
        snapshot(repo)
    assert not marker.exists(), marker.read_text()


def test_fleets_git_follows_no_git_dir_from_its_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    other = tmp_path / "other"
    other.mkdir()
    git(other, "init", "-q")
    monkeypatch.setenv("GIT_DIR", str(other / ".git"))
    monkeypatch.setenv("GIT_WORK_TREE", str(repo))
    assert snapshot(repo).git_dir == str(repo / ".git")


def test_fleets_git_writes_nothing_into_the_repository(tmp_path: Path) -> None:
    """Not even the index refresh or the untracked cache that a plain `git status` would write. (Reading
    a split index touches the shared index's mtime so that it does not expire; its content stays.)"""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    git(repo, "config", "core.untrackedCache", "true")
    git(repo, "config", "core.splitIndex", "true")
    (repo / "a.txt").write_text("a\n")
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-q", "-m", "one")
    (repo / "a.txt").write_text("b\n")

    def tree() -> dict[str, str]:
        return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in (repo / ".git").rglob("*") if p.is_file()}

    seen = tree()
    before = snapshot(repo)
    snapshot(repo, since=before)
    assert tree() == seen


@pytest.mark.parametrize("args", [("status",), ("diff",), ("ls-files", "-o"), ("diff-index", "--ext-diff", "HEAD"),
                                  ("diff-tree", "--textconv", "-p", "HEAD"), ()])
def test_a_git_command_that_could_read_the_work_tree_is_refused(args: tuple[str, ...]) -> None:
    from fleet.work import gitrun  # imported here so the marker tests above also run on older fleets

    with pytest.raises(ValueError, match="fleet does not run"):
        gitrun.argv(args)


def test_fleets_git_gets_a_fresh_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from fleet.work import gitrun

    for key in ("GIT_DIR", "GIT_EXEC_PATH", "GIT_INDEX_FILE", "GIT_CONFIG_COUNT", "EDITOR", "SSH_AUTH_SOCK"):
        monkeypatch.setenv(key, "/x")
    env = gitrun.environment()
    assert set(env) <= {"PATH", "HOME", *gitrun.FIXED_ENV}
    assert env["GIT_CONFIG_GLOBAL"] == os.devnull
    assert env["GIT_CONFIG_NOSYSTEM"] == "1"


def test_a_repository_owned_by_someone_else_is_walked_as_a_plain_tree(tmp_path: Path) -> None:
    """git refuses a repository of another owner (safe.directory counts only in the user's own config,
    which fleet's git does not read, and never in the repository's): fleet then compares the cwd as a
    plain tree, `.git` included, and still sees every change."""
    if os.geteuid() != 0:
        pytest.skip("needs root to give the repository to another user")
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    git(repo, "config", "safe.directory", "*")  # the repository vouching for itself counts for nothing
    (repo / "a.txt").write_text("a\n")
    subprocess.run(["chown", "-R", "65534:65534", str(repo)], check=True)
    before = snapshot(repo)
    assert before.kind == "tree"
    (repo / "a.txt").write_text("b\n")
    (repo / ".git" / "hooks" / "post-checkout").write_text("#!/bin/sh\n")
    assert changed_files(before, snapshot(repo, since=before)) == [".git/hooks/post-checkout", "a.txt"]
