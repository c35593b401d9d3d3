"""Verification on real temp git repos and plain directories, real check processes, and the verdict."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import fleet.work.snapshot
from fleet.work import verify
from fleet.work.report import Report
from fleet.work.verify import CheckResult, Snapshot, changed_files, snapshot, verdict


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.email", "t@example.invalid")
    git(root, "config", "user.name", "t")
    (root / "a.txt").write_text("a\n")
    (root / "docs").mkdir()
    (root / "docs" / "x.md").write_text("x\n")
    (root / "gone.txt").write_text("g\n")
    (root / ".gitignore").write_text("build/\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "init")
    return root


def test_nothing_changed_means_no_paths(repo: Path) -> None:
    before = snapshot(repo)
    assert before.kind == "git"
    assert changed_files(before, snapshot(repo, since=before)) == []


def test_modified_added_and_deleted_files_are_all_seen(repo: Path) -> None:
    before = snapshot(repo)
    (repo / "a.txt").write_text("changed\n")
    (repo / "new" / "deep").mkdir(parents=True)
    (repo / "new" / "deep" / "n.txt").write_text("n\n")
    (repo / "gone.txt").unlink()
    assert changed_files(before, snapshot(repo, since=before)) == ["a.txt", "gone.txt", "new/deep/n.txt"]


def test_a_change_present_at_send_time_counts_only_if_touched_again(repo: Path) -> None:
    (repo / "a.txt").write_text("user's own edit\n")
    (repo / "docs" / "x.md").write_text("user's too\n")
    (repo / "scratch.txt").write_text("untracked before\n")
    before = snapshot(repo)
    assert changed_files(before, snapshot(repo, since=before)) == []
    (repo / "a.txt").write_text("agent edit on top\n")
    git(repo, "checkout", "--", "docs/x.md")  # reverting someone's change is a write too
    assert changed_files(before, snapshot(repo, since=before)) == ["a.txt", "docs/x.md"]


def test_changes_the_agent_committed_are_seen(repo: Path) -> None:
    before = snapshot(repo)
    (repo / "docs" / "y.md").write_text("y\n")
    (repo / "a.txt").write_text("a2\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "agent")
    after = snapshot(repo, since=before)
    assert after.head != before.head
    assert changed_files(before, after) == ["a.txt", "docs/y.md"]


def test_a_rename_names_both_paths(repo: Path) -> None:
    before = snapshot(repo)
    git(repo, "mv", "a.txt", "b.txt")
    assert changed_files(before, snapshot(repo, since=before)) == ["a.txt", "b.txt"]


def test_a_subdirectory_cwd_sees_only_its_own_tree_relative_to_itself(repo: Path) -> None:
    cwd = repo / "docs"
    before = snapshot(cwd)
    (repo / "a.txt").write_text("outside the cwd\n")
    (cwd / "x.md").write_text("inside\n")
    (cwd / "sub").mkdir()
    (cwd / "sub" / "z.md").write_text("z\n")
    assert changed_files(before, snapshot(cwd, since=before)) == ["sub/z.md", "x.md"]


def test_a_repo_without_commits_and_a_first_commit(tmp_path: Path) -> None:
    root = tmp_path / "fresh"
    root.mkdir()
    git(root, "init", "-q")
    git(root, "config", "user.email", "t@example.invalid")
    git(root, "config", "user.name", "t")
    before = snapshot(root)
    assert before.head is None
    (root / "f.txt").write_text("f\n")
    git(root, "add", "f.txt")
    git(root, "commit", "-q", "-m", "first")
    assert changed_files(before, snapshot(root, since=before)) == ["f.txt"]


def test_ignored_files_are_seen_in_git_mode(repo: Path) -> None:
    """A write into a .gitignore'd path counts like any other (it was invisible before)."""
    before = snapshot(repo)
    (repo / "build").mkdir()
    (repo / "build" / "out.bin").write_text("o\n")
    assert changed_files(before, snapshot(repo, since=before)) == ["build/out.bin"]


def test_a_snapshot_survives_the_ledger_round_trip(repo: Path) -> None:
    (repo / "a.txt").write_text("dirty\n")
    before = snapshot(repo)
    again = Snapshot.from_json(json.loads(json.dumps(before.to_json())))
    assert again == before
    (repo / "a.txt").write_text("dirtier\n")
    assert changed_files(again, snapshot(repo, since=again)) == ["a.txt"]
    with pytest.raises(ValueError, match="version 3"):
        Snapshot.from_json({"version": 9})
    with pytest.raises(ValueError, match="older fleet"):  # a v1 baseline never saw ignored files
        Snapshot.from_json({**before.to_json(), "version": 1})


def test_a_plain_directory_is_walked_and_compared_by_content(tmp_path: Path) -> None:
    cwd = tmp_path / "plain"
    (cwd / "d").mkdir(parents=True)
    (cwd / "same-size.txt").write_text("aaaa")
    (cwd / "d" / "keep.txt").write_text("k")
    (cwd / "gone.txt").write_text("g")
    os.symlink("d/keep.txt", cwd / "link")
    before = snapshot(cwd)
    assert before.kind == "tree"
    st_before = (cwd / "same-size.txt").stat()
    (cwd / "same-size.txt").write_text("bbbb")  # same size; put the mtime back: only the hash can tell
    os.utime(cwd / "same-size.txt", ns=(st_before.st_atime_ns, st_before.st_mtime_ns))
    (cwd / "gone.txt").unlink()
    (cwd / "d" / "new.txt").write_text("n")
    os.unlink(cwd / "link")
    os.symlink("gone.txt", cwd / "link")
    (cwd / "__pycache__").mkdir()
    (cwd / "__pycache__" / "m.pyc").write_bytes(b"\0")
    (cwd / "d" / "exe").write_text("#!/bin/sh\n")
    after_plain = snapshot(cwd)
    (cwd / "d" / "exe").chmod(0o755)
    assert changed_files(before, after_plain) == ["__pycache__/m.pyc", "d/exe", "d/new.txt", "gone.txt", "link",
                                                  "same-size.txt"]
    assert changed_files(after_plain, snapshot(cwd)) == ["d/exe"]  # the mode bit counts


def test_a_walk_that_hits_its_cap_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The cap is lowered so the test does not need 100,000 files."""
    monkeypatch.setattr(fleet.work.snapshot, "MAX_FILES", 5)
    for i in range(8):
        (tmp_path / f"f{i}").write_text("x")
    snap = snapshot(tmp_path)
    assert len(snap.files) == 5
    assert snap.notes == ("the cwd holds more than 5 files; the rest were not compared (give the agent a smaller "
                          "cwd)",)


def test_a_missing_cwd_is_a_snapshot_error(tmp_path: Path) -> None:
    with pytest.raises(verify.SnapshotError, match="not a directory"):
        snapshot(tmp_path / "nope")


# -- verdict ---------------------------------------------------------------------------------------

def report(status: str = "done", changed: tuple[str, ...] = ("docs/a.md",)) -> Report:
    return Report(status=status, summary="s", changed=changed, tests="", risks="")  # type: ignore[arg-type]


PASS = CheckResult("pytest -q", 0, False, 1.0, "ok")
FAIL = CheckResult("pytest -q", 1, False, 1.0, "1 failed")
TIMEOUT = CheckResult("sleep 9", None, True, 30.0, "")


def test_a_clean_run_is_verified() -> None:
    v = verdict(report(), ["docs/a.md"], ["docs/"], "worker", [PASS])
    assert v.verdict == "verified"
    assert v.reasons == ()
    assert v.to_dict()["checks"][0]["passed"] is True


def test_every_reason_is_given_and_names_its_paths() -> None:
    v = verdict(report("partial", ("docs/a.md", "docs/never.md")), ["docs/a.md", "src/x.py", "README.md"],
                ["docs/"], "worker", [FAIL, TIMEOUT])
    assert v.verdict == "rejected"
    assert [(r.code, r.paths) for r in v.reasons] == [
        ("status", ()),
        ("outside_scope", ("README.md", "src/x.py")),
        ("check_failed", ()), ("check_failed", ()),
        ("unreported", ("README.md", "src/x.py")),
        ("unchanged", ("docs/never.md",)),
    ]
    messages = [r.message for r in v.reasons]
    assert messages[1] == "README.md, src/x.py changed outside the write paths (docs/)"
    assert messages[2] == "the check `pytest -q` exited with status 1"
    assert messages[3] == "the check `sleep 9` timed out after 30 s"


def test_an_explorer_may_change_nothing() -> None:
    v = verdict(report(changed=()), ["notes.md"], ["./"], "explorer")
    assert [(r.code, r.message) for r in v.reasons[:1]] == [
        ("read_only", "an explorer may not change files, but notes.md changed")]
    assert verdict(report(changed=()), [], [], "explorer").verdict == "verified"


def test_reported_paths_are_normalised_before_comparing() -> None:
    claims = ("./docs/a.md", "/w/cwd/src/b.py", "gen/")
    v = verdict(report(changed=claims), ["docs/a.md", "src/b.py", "gen/1.txt", "gen/2.txt"], ["./"], "worker",
                cwd="/w/cwd")
    assert v.verdict == "verified", v.reasons


def test_no_report_is_a_rejection_with_that_reason() -> None:
    v = verdict(None, [], ["docs/"], "worker")
    assert [r.code for r in v.reasons] == ["no_report"]


paths = st.sampled_from(["docs/a.md", "docs/b/c.md", "src/x.py", "README.md"])


@given(st.sampled_from(["done", "partial", "blocked"]), st.lists(paths, unique=True),
       st.lists(paths, unique=True), st.lists(st.sampled_from(["docs/", "src/x.py", "./"]), unique=True),
       st.sampled_from(["worker", "explorer"]), st.lists(st.sampled_from([PASS, FAIL, TIMEOUT]), max_size=3),
       st.lists(st.sampled_from(["the cwd holds more than 100000 files", "fleet could not read x/"]), max_size=2))
def test_verified_exactly_when_every_condition_holds(status: str, claimed: list[str], actual: list[str],
                                                     scope: list[str], role: str, checks: list[CheckResult],
                                                     notes: list[str]) -> None:
    v = verdict(report(status, tuple(claimed)), actual, scope, role, checks, notes)  # type: ignore[arg-type]
    in_scope = all(verify.allows(scope, p) for p in actual) if role == "worker" and scope else not actual
    expected = (status == "done" and in_scope and all(c.passed for c in checks)
                and set(claimed) == set(actual) and not notes)
    assert (v.verdict == "verified") == expected
    assert (v.verdict == "rejected") == bool(v.reasons)
