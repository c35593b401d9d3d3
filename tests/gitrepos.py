"""Real git repositories for the worktree and merge tests: a user's checkout with a base branch (the
`repo` fixture) beside the root fleet keeps its worktrees under (`root`), and plain git run the way a
person runs it (the test's HOME is isolated, so identity comes from `-c`)."""

from __future__ import annotations

import hashlib
import itertools
import subprocess
from pathlib import Path

import pytest

_ID_CHARS = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_counter = itertools.count(1)


def git(repo: Path, *args: str, check: bool = True) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=User", "-c", "user.email=user@example.invalid",
                           "-c", "init.defaultBranch=main", *args],
                          check=check, capture_output=True, text=True).stdout


def new_id() -> str:
    """A fresh, valid assignment id (`as-` + 26 Crockford base32 characters)."""
    n = next(_counter)
    tail = "".join(_ID_CHARS[(n >> (5 * i)) & 31] for i in range(6))[::-1]
    return "as-01JF" + "0" * 16 + tail


def make_repo(path: Path, files: dict[str, str] | None = None) -> Path:
    """A repository with a `main` branch checked out and one commit of `files`."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    for name, text in (files or {"README.md": "hello\n", "app.py": "a = 1\nb = 2\nc = 3\n"}).items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "initial")
    return path


def commit_file(repo: Path, name: str, text: str, message: str = "user edit") -> str:
    (repo / name).parent.mkdir(parents=True, exist_ok=True)
    (repo / name).write_text(text)
    git(repo, "add", "--", name)
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD").strip()


def rev(repo: Path, ref: str) -> str:
    return git(repo, "rev-parse", "--verify", ref).strip()


def tree_digest(root: Path) -> dict[str, str]:
    """Every file under `root` by sha256, `.git/` included (refs, index, HEAD, logs) but for its object
    store, which a merge may add unreachable objects to: a byte-for-byte picture of a checkout."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()
            and not str(p.relative_to(root)).startswith(".git/objects/")}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "shop")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "state" / "worktrees"
