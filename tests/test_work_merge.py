"""Merging verified assignments into the base branch, on real git repositories in tmp dirs; the
planning's properties with hypothesis."""

from __future__ import annotations

import fcntl
import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from gitrepos import commit_file, git, new_id, repo, rev, root, tree_digest
from hypothesis import given
from hypothesis import strategies as st

from fleet.errors import (
    BaseCheckedOutDirty,
    BranchMissing,
    InvalidInput,
    MergeBusy,
    MergeConflict,
    MergeNotVerified,
    MergeRaced,
)
from fleet.work import merge as mg
from fleet.work import worktrees as wt
from fleet.work.gitwt import Git
from fleet.work.lifecycle import STATES

__all__ = ["repo", "root"]  # fixtures from gitrepos: pytest finds them in this module by name


@pytest.fixture
def locks(tmp_path: Path) -> Path:
    return tmp_path / "state" / "locks"


def verified_work(repo: Path, root: Path, agent: str, edits: dict[str, str]) -> str:
    """One assignment done by `agent` in its worktree and committed as verified: its id (the verified
    commit is its branch's tip)."""
    path = Path(wt.ensure_worktree(repo, root, agent).path)
    aid = new_id()
    wt.prepare_branch(path, aid, "main")
    for name, text in edits.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    wt.commit_verified(path, aid, f"edit {', '.join(edits)}", agent)
    return aid


def do_merge(repo: Path, locks: Path, *ids: str, states: dict[str, str] | None = None) -> mg.MergeResult:
    cands = mg.candidates(repo, [(i, (states or {}).get(i, "verified")) for i in ids])
    return mg.merge(repo, mg.plan_merge("main", cands), locks)


def test_two_branches_writing_different_files_both_merge(repo: Path, root: Path, locks: Path) -> None:
    a = verified_work(repo, root, "ada", {"src/cart.py": "coupons = True\n"})
    b = verified_work(repo, root, "bob", {"src/search.py": "typos = True\n"})
    old = rev(repo, "main")
    res = do_merge(repo, locks, a, b)
    assert (res.old, [s.how for s in res.steps]) == (old, ["fast-forward", "merge"])
    assert rev(repo, "main") == res.new
    assert set(git(repo, "ls-tree", "-r", "--name-only", "main").split()) >= {"src/cart.py", "src/search.py"}
    # the user's clean checkout of main came along
    assert res.checkouts == (os.path.realpath(repo),)
    assert (repo / "src" / "cart.py").read_text() == "coupons = True\n"
    assert (repo / "src" / "search.py").read_text() == "typos = True\n"
    assert git(repo, "status", "--porcelain") == ""
    assert git(repo, "log", "-1", "--format=%P", "main").split() == [rev(repo, f"fleet/{a}"), rev(repo, f"fleet/{b}")]


def test_a_single_branch_on_the_tip_fast_forwards(repo: Path, root: Path, locks: Path) -> None:
    a = verified_work(repo, root, "ada", {"new.txt": "x\n"})
    res = do_merge(repo, locks, a)
    assert res.new == rev(repo, f"fleet/{a}") == rev(repo, "main")
    again = do_merge(repo, locks, a)
    assert (again.new, again.steps[0].how) == (res.new, "already merged")


def test_a_conflict_changes_nothing_and_names_files_and_assignments(repo: Path, root: Path, locks: Path) -> None:
    a = verified_work(repo, root, "ada", {"app.py": "a = 1\nb = 20\nc = 3\n"})
    b = verified_work(repo, root, "bob", {"other.txt": "fine\n"})
    c = verified_work(repo, root, "cyd", {"app.py": "a = 1\nb = 200\nc = 3\n"})
    do_merge(repo, locks, a)
    tip = rev(repo, "main")
    before = tree_digest(repo)
    worktrees_before = {p: tree_digest(p) for p in (root / "ada", root / "bob", root / "cyd")}
    with pytest.raises(MergeConflict) as exc:
        do_merge(repo, locks, b, c)
    assert exc.value.data["files"] == ["app.py"]
    assert exc.value.data["assignments"] == [b, c]
    assert exc.value.data["assignment"] == c
    assert rev(repo, "main") == tip
    assert tree_digest(repo) == before  # refs, index, the user's files: byte for byte
    assert {p: tree_digest(p) for p in worktrees_before} == worktrees_before
    assert "<<<<<<<" not in (repo / "app.py").read_text()


def test_a_dirty_checkout_of_the_base_refuses_the_merge(repo: Path, root: Path, locks: Path) -> None:
    a = verified_work(repo, root, "ada", {"new.txt": "x\n"})
    (repo / "README.md").write_text("the user's unsaved thought\n")
    tip = rev(repo, "main")
    with pytest.raises(BaseCheckedOutDirty) as exc:
        do_merge(repo, locks, a)
    assert exc.value.data["files"] == ["README.md"]
    assert rev(repo, "main") == tip
    assert (repo / "README.md").read_text() == "the user's unsaved thought\n"


def test_an_untracked_file_the_merge_would_overwrite_refuses_it(repo: Path, root: Path, locks: Path) -> None:
    a = verified_work(repo, root, "ada", {"notes.txt": "agent's\n"})
    (repo / "notes.txt").write_text("the user's own, untracked\n")
    tip = rev(repo, "main")
    with pytest.raises(BaseCheckedOutDirty) as exc:
        do_merge(repo, locks, a)
    assert exc.value.data["files"] == ["notes.txt"]
    assert rev(repo, "main") == tip
    assert (repo / "notes.txt").read_text() == "the user's own, untracked\n"


def test_a_base_not_checked_out_anywhere_moves_without_touching_the_checkout(repo: Path, root: Path,
                                                                             locks: Path) -> None:
    git(repo, "checkout", "-q", "-b", "topic")
    (repo / "README.md").write_text("dirty, but on another branch\n")
    a = verified_work(repo, root, "ada", {"new.txt": "x\n"})
    before = tree_digest(repo)
    res = do_merge(repo, locks, a)
    assert res.checkouts == ()
    assert rev(repo, "main") == res.new
    changed = {k for k in set(before) | set(tree_digest(repo)) if before.get(k) != tree_digest(repo).get(k)}
    assert changed <= {".git/refs/heads/main", ".git/logs/refs/heads/main", ".git/packed-refs"}


def test_a_commit_made_on_the_base_during_the_merge_is_never_lost(repo: Path, root: Path, locks: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The race is simulated: the user commits right after fleet combined the branches, before the swap."""
    a = verified_work(repo, root, "ada", {"new.txt": "x\n"})
    combine = mg._combine
    user_commits: list[str] = []

    def racing(g: Git, old: str, plan: mg.MergePlan) -> tuple[str, tuple[mg.Merged, ...]]:
        out = combine(g, old, plan)
        if not user_commits:
            user_commits.append(commit_file(repo, "user.txt", "committed meanwhile\n"))
        return out

    monkeypatch.setattr("fleet.work.merge._combine", racing)
    res = do_merge(repo, locks, a)
    assert res.replanned
    assert git(repo, "merge-base", "--is-ancestor", user_commits[0], "main", check=False) == ""
    assert git(repo, "merge-base", "--is-ancestor", rev(repo, f"fleet/{a}"), "main", check=False) == ""
    assert (repo / "user.txt").read_text() == "committed meanwhile\n"
    assert (repo / "new.txt").read_text() == "x\n"


def test_a_base_that_keeps_moving_gives_merge_raced_and_keeps_every_commit(repo: Path, root: Path, locks: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The race is simulated twice: a commit lands after each combination."""
    a = verified_work(repo, root, "ada", {"new.txt": "x\n"})
    combine = mg._combine

    def racing(g: Git, old: str, plan: mg.MergePlan) -> tuple[str, tuple[mg.Merged, ...]]:
        out = combine(g, old, plan)
        commit_file(repo, "user.txt", f"commit on {old}\n")
        return out

    monkeypatch.setattr("fleet.work.merge._combine", racing)
    with pytest.raises(MergeRaced):
        do_merge(repo, locks, a)
    assert rev(repo, "main") == rev(repo, "HEAD")  # the user's last commit is the tip
    assert git(repo, "rev-list", "--count", "main").strip() == "3"
    assert not (repo / "new.txt").exists()


def test_a_merge_waits_for_another_into_the_same_repository(repo: Path, root: Path, locks: Path) -> None:
    a = verified_work(repo, root, "ada", {"new.txt": "x\n"})
    plan = mg.plan_merge("main", mg.candidates(repo, [(a, "verified")]))
    locks.mkdir(parents=True)
    common = wt.open_repo(repo).common_dir
    lock = locks / f"merge-{hashlib.sha256(common.encode()).hexdigest()[:16]}.lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(MergeBusy):
            mg.merge(repo, plan, locks, wait=0.1)
    finally:
        os.close(fd)
    assert mg.merge(repo, plan, locks, wait=0.1).new == rev(repo, "main")


def test_unverified_and_missing_branches_are_refused_before_anything(repo: Path, root: Path, locks: Path) -> None:
    a = verified_work(repo, root, "ada", {"new.txt": "x\n"})
    with pytest.raises(MergeNotVerified):
        do_merge(repo, locks, a, states={a: "rejected"})
    ghost = new_id()
    with pytest.raises(BranchMissing):
        do_merge(repo, locks, a, ghost)
    assert not (repo / "new.txt").exists()


def test_diff_gives_the_stat_and_a_bounded_patch(repo: Path, root: Path) -> None:
    big = "".join(f"line {i}\n" for i in range(5000))
    a = verified_work(repo, root, "ada", {"big.txt": big, "app.py": "a = 1\n"})
    base = rev(repo, "main")
    commit_file(repo, "later.txt", "the base moved on\n")  # not part of the branch's diff
    d = mg.diff(repo, f"fleet/{a}", "main", max_bytes=2000)
    assert d.base_commit == base
    assert "big.txt" in d.stat
    assert "app.py" in d.stat
    assert "later.txt" not in d.stat
    assert d.truncated
    assert "patch cut at 2000 bytes" in d.patch
    whole = mg.diff(repo, f"fleet/{a}", base, max_bytes=1 << 20)
    assert not whole.truncated
    assert "+line 4999" in whole.patch


# -- planning (pure) -------------------------------------------------------------------------------

_ids = st.lists(st.integers(min_value=0, max_value=999_999), min_size=1, max_size=8, unique=True).map(
    lambda ns: ["as-01JF" + "0" * 16 + f"{n:06d}" for n in ns])
_oid = st.text("0123456789abcdef", min_size=40, max_size=40)


@given(_ids, st.data())
def test_the_plan_keeps_the_order_given(ids: list[str], data: st.DataObject) -> None:
    commits = [data.draw(_oid) for _ in ids]
    plan = mg.plan_merge("main", [mg.Candidate(i, "verified", c) for i, c in zip(ids, commits, strict=True)])
    assert [s.assignment_id for s in plan.steps] == ids
    assert [s.commit for s in plan.steps] == commits
    assert all(s.branch == f"fleet/{s.assignment_id}" for s in plan.steps)


@given(_ids, st.data())
def test_any_unverified_assignment_refuses_the_whole_plan(ids: list[str], data: st.DataObject) -> None:
    states = [data.draw(st.sampled_from(STATES)) for _ in ids]
    cands = [mg.Candidate(i, s, "a" * 40) for i, s in zip(ids, states, strict=True)]
    if all(s == "verified" for s in states):
        assert len(mg.plan_merge("main", cands).steps) == len(ids)
        return
    with pytest.raises(MergeNotVerified) as exc:
        mg.plan_merge("main", cands)
    assert exc.value.data["assignments"] == [i for i, s in zip(ids, states, strict=True) if s != "verified"]


@given(_ids, st.data())
def test_a_missing_branch_or_a_repeated_id_refuses_the_plan(ids: list[str], data: st.DataObject) -> None:
    gone = data.draw(st.sampled_from(ids))
    with pytest.raises(BranchMissing) as exc:
        mg.plan_merge("main", [mg.Candidate(i, "verified", None if i == gone else "b" * 40) for i in ids])
    assert exc.value.data["assignments"] == [gone]
    twice = [*ids, data.draw(st.sampled_from(ids))]
    with pytest.raises(InvalidInput):
        mg.plan_merge("main", [mg.Candidate(i, "verified", "b" * 40) for i in twice])


@pytest.mark.parametrize(("base", "ids"), [("main", []), ("-main", [new_id()]), ("main", ["--all"])])
def test_an_empty_plan_or_option_like_names_are_refused(base: str, ids: list[str]) -> None:
    with pytest.raises(InvalidInput):
        mg.plan_merge(base, [mg.Candidate(i, "verified", "c" * 40) for i in ids])


def test_a_merge_driver_the_repository_names_never_runs(repo: Path, root: Path, locks: Path, tmp_path: Path) -> None:
    """A driver that would silently resolve every conflict (and leave a marker) is switched off: the
    file conflicts instead. The positive control runs plain git in the user's checkout."""
    marker = tmp_path / "ran"
    commit_file(repo, ".gitattributes", "* merge=evil\n")
    git(repo, "config", "merge.evil.driver", f"touch {marker}; cp %B %A; exit 0")
    a = verified_work(repo, root, "ada", {"app.py": "a = 1\nb = 20\nc = 3\n"})
    b = verified_work(repo, root, "bob", {"app.py": "a = 1\nb = 200\nc = 3\n"})
    do_merge(repo, locks, a)
    with pytest.raises(MergeConflict):
        do_merge(repo, locks, b)
    assert not marker.exists()
    git(repo, "merge-tree", "--write-tree", "main", f"fleet/{b}")
    assert marker.exists()


def test_commits_added_after_the_verdict_are_not_merged(repo: Path, root: Path, locks: Path) -> None:
    a = verified_work(repo, root, "ada", {"ok.txt": "verified\n"})
    verified = rev(repo, f"fleet/{a}")
    commit_file(root / "ada", "late.txt", "never verified\n", "after the verdict")
    res = mg.merge(repo, mg.plan_merge("main", mg.candidates(repo, [(a, "verified")], {a: verified})), locks)
    assert res.new == verified
    assert not (repo / "late.txt").exists()
    git(root / "ada", "reset", "-q", "--hard", "main~1")  # the branch rewritten: its verified commit is gone
    with pytest.raises(BranchMissing):
        mg.plan_merge("main", mg.candidates(repo, [(a, "verified")], {a: verified}))


def test_the_diff_runs_no_diff_program_the_repository_names(repo: Path, root: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    commit_file(repo, ".gitattributes", "*.txt diff=evil\n")
    git(repo, "config", "diff.evil.textconv", f"sh -c 'touch {marker}; cat \"$0\"'")
    git(repo, "config", "diff.evil.command", f"sh -c 'touch {marker}'")
    git(repo, "config", "diff.external", f"sh -c 'touch {marker}'")
    a = verified_work(repo, root, "ada", {"notes.txt": "agent's notes\n"})
    d = mg.diff(repo, f"fleet/{a}", "main")
    assert "+agent's notes" in d.patch
    assert not marker.exists()
    git(repo, "diff", "main", f"fleet/{a}")  # plain git runs it: the case is armed
    assert marker.exists()


def test_two_merges_into_one_repository_at_once_both_land(repo: Path, root: Path,
                                                                         locks: Path) -> None:
    a = verified_work(repo, root, "ada", {"a.txt": "a\n"})
    b = verified_work(repo, root, "bob", {"b.txt": "b\n"})
    plans = [mg.plan_merge("main", mg.candidates(repo, [(i, "verified")])) for i in (a, b)]
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda p: mg.merge(repo, p, locks), plans))
    assert {r.new for r in results} >= {rev(repo, "main")}
    assert set(git(repo, "ls-tree", "--name-only", "main").split()) >= {"a.txt", "b.txt"}
    assert (repo / "a.txt").exists()
    assert (repo / "b.txt").exists()


def test_a_linked_worktree_on_the_base_is_brought_along_through_the_admin_dir_git_keeps(
        repo: Path, root: Path, locks: Path, tmp_path: Path) -> None:
    git(repo, "checkout", "-q", "-b", "topic")
    side = tmp_path / "side"
    git(repo, "worktree", "add", "-q", str(side), "main")
    a = verified_work(repo, root, "ada", {"new.txt": "x\n"})
    res = do_merge(repo, locks, a)
    assert res.checkouts == (os.path.realpath(side),)
    assert (side / "new.txt").read_text() == "x\n"
    assert git(side, "status", "--porcelain") == ""
    (side / ".git").write_text(f"gitdir: {repo / '.git'}\n")  # rewritten: git must not follow it
    b = verified_work(repo, root, "bob", {"other.txt": "y\n"})
    index = (repo / ".git" / "index").read_bytes()
    again = do_merge(repo, locks, b)
    assert again.checkouts == (os.path.realpath(side),)
    assert (side / "other.txt").read_text() == "y\n"
    assert (repo / ".git" / "index").read_bytes() == index  # the link's target was never touched
    assert not (repo / "other.txt").exists()
