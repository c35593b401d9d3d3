"""Each agent's worktree and a branch per assignment, on real git repositories in tmp dirs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from gitrepos import commit_file, git, make_repo, new_id, repo, rev, root

from fleet.errors import (
    InvalidInput,
    RepoInvalid,
    UnmergedWork,
    WorktreeDirty,
    WorktreeForeign,
    WorktreeLocked,
    WorktreeOffBranch,
    WorktreePlacement,
)
from fleet.work import worktreeadmin as adm
from fleet.work import worktrees as wt

__all__ = ["repo", "root"]  # fixtures from gitrepos: pytest finds them in this module by name


def test_a_worktree_is_created_outside_the_checkout_and_reused(repo: Path, root: Path) -> None:
    made = wt.ensure_worktree(repo, root, "ada", base="main")
    assert made.created
    assert made.path == os.path.realpath(root / "ada")
    assert (Path(made.path) / "app.py").read_text() == (repo / "app.py").read_text()
    assert rev(Path(made.path), "HEAD") == rev(repo, "main")
    again = wt.ensure_worktree(repo, root, "ada", base="main")
    assert (again.created, again.repaired, again.path) == (False, False, made.path)


def test_a_root_inside_the_users_checkout_is_refused(repo: Path) -> None:
    with pytest.raises(WorktreePlacement):
        wt.ensure_worktree(repo, repo / "agents", "ada")
    assert not (repo / "agents" / "ada").exists()


def test_a_worktree_whose_directory_vanished_is_repaired(repo: Path, root: Path) -> None:
    made = wt.ensure_worktree(repo, root, "ada")
    os.rename(made.path, str(root / "gone"))  # a person moved it away: git still lists it
    again = wt.ensure_worktree(repo, root, "ada")
    assert again.repaired
    assert (Path(again.path) / "README.md").exists()


def test_a_locked_worktree_is_refused_with_the_unlock_command(repo: Path, root: Path) -> None:
    made = wt.ensure_worktree(repo, root, "ada")
    git(repo, "worktree", "lock", "--reason", "inspecting", made.path)
    with pytest.raises(WorktreeLocked) as exc:
        wt.ensure_worktree(repo, root, "ada")
    assert "inspecting" in exc.value.message
    assert "worktree unlock" in exc.value.hint


def test_a_path_holding_files_or_another_repositorys_worktree_is_refused(repo: Path, root: Path,
                                                                            tmp_path: Path) -> None:
    (root / "ada").mkdir(parents=True)
    (root / "ada" / "notes.txt").write_text("mine\n")
    with pytest.raises(WorktreeForeign):
        wt.ensure_worktree(repo, root, "ada")
    assert (root / "ada" / "notes.txt").read_text() == "mine\n"
    other = make_repo(tmp_path / "other")
    wt.ensure_worktree(other, root, "bob")
    with pytest.raises(WorktreeForeign):
        wt.ensure_worktree(repo, root, "bob")


def test_a_path_that_is_no_repository_is_refused(tmp_path: Path, root: Path) -> None:
    (tmp_path / "plain").mkdir()
    with pytest.raises(RepoInvalid):
        wt.ensure_worktree(tmp_path / "plain", root, "ada")


def test_prepare_cuts_a_new_branch_at_the_base_tip_and_returns_the_baseline(repo: Path, root: Path) -> None:
    made = wt.ensure_worktree(repo, root, "ada")
    tip = commit_file(repo, "later.txt", "after the worktree was made\n")
    aid = new_id()
    prep = wt.prepare_branch(made.path, aid, "main")
    assert prep == wt.Prepared(f"fleet/{aid}", tip, resumed=False)
    assert git(Path(made.path), "symbolic-ref", "HEAD").strip() == f"refs/heads/fleet/{aid}"
    assert (Path(made.path) / "later.txt").exists()


def test_a_dirty_worktree_refuses_prepare_and_names_the_files(repo: Path, root: Path) -> None:
    made = Path(wt.ensure_worktree(repo, root, "ada").path)
    (made / "app.py").write_text("edited by hand\n")
    (made / "scratch.txt").write_text("untracked\n")
    (made / ".gitignore").write_text("build/\n")
    (made / "build").mkdir()
    (made / "build" / "out.o").write_text("ignored\n")
    with pytest.raises(WorktreeDirty) as exc:
        wt.prepare_branch(made, new_id(), "main")
    assert exc.value.data["files"] == [".gitignore", "app.py", "scratch.txt"]
    assert "app.py" in exc.value.message
    assert (made / "app.py").read_text() == "edited by hand\n"  # nothing stashed or lost
    assert (made / "scratch.txt").read_text() == "untracked\n"
    assert git(made, "stash", "list") == ""


def test_an_agent_killed_mid_assignment_continues_on_its_branch_with_its_edits(repo: Path, root: Path) -> None:
    made = Path(wt.ensure_worktree(repo, root, "ada").path)
    aid = new_id()
    first = wt.prepare_branch(made, aid, "main")
    commit_file(made, "half.txt", "committed half\n", "agent's own commit")
    (made / "app.py").write_text("a = 1\nb = 20\nc = 3\n")
    (made / "new.txt").write_text("untracked edit\n")
    commit_file(repo, "user.txt", "the base moved on\n")
    again = wt.prepare_branch(made, aid, "main")
    assert again == wt.Prepared(first.branch, first.base_commit, resumed=True)
    assert (made / "app.py").read_text() == "a = 1\nb = 20\nc = 3\n"
    assert (made / "new.txt").read_text() == "untracked edit\n"
    assert (made / "half.txt").exists()


def test_a_clean_worktree_on_another_branch_returns_to_the_assignments_branch(repo: Path, root: Path) -> None:
    made = Path(wt.ensure_worktree(repo, root, "ada").path)
    first, second = new_id(), new_id()
    wt.prepare_branch(made, first, "main")
    wt.prepare_branch(made, second, "main")
    again = wt.prepare_branch(made, first, "main")
    assert again.resumed
    assert git(made, "symbolic-ref", "HEAD").strip() == f"refs/heads/fleet/{first}"


def test_commit_verified_commits_everything_as_the_agent_via_fleet_without_hooks(repo: Path, root: Path,
                                                                                 tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    hook = repo / ".git" / "hooks" / "pre-commit"
    hook.write_text(f"#!/bin/sh\ntouch {marker}\nexit 1\n")
    hook.chmod(0o755)
    git(repo, "config", "filter.evil.clean", f"touch {marker}; cat")
    made = Path(wt.ensure_worktree(repo, root, "ada").path)
    aid = new_id()
    base = wt.prepare_branch(made, aid, "main").base_commit
    (made / ".gitattributes").write_text("* filter=evil\n")
    (made / "app.py").write_text("a = 1\nb = 2\nc = 4\n")
    (made / "src").mkdir()
    (made / "src" / "coupon.py").write_text("COUPON = True\n")
    commit = wt.commit_verified(made, aid, "Add coupons\n\nDetails here.", "ada")
    assert not marker.exists()
    assert git(made, "status", "--porcelain") == ""
    assert rev(repo, f"fleet/{aid}") == commit
    assert git(repo, "log", "-1", "--format=%an <%ae>|%cn|%s", commit).strip() == \
        f"ada via fleet <ada@fleet.invalid>|ada via fleet|{aid}: Add coupons"
    assert sorted(git(repo, "diff", "--name-only", base, commit).split()) == [".gitattributes", "app.py",
                                                                               "src/coupon.py"]
    assert wt.commit_verified(made, aid, "again", "ada") == commit  # nothing to commit is fine
    (made / "control.txt").write_text("positive control\n")
    git(made, "add", "control.txt")  # plain git runs the filter: the case is armed
    assert marker.exists()


def test_commit_verified_refuses_a_worktree_off_the_assignments_branch(repo: Path, root: Path) -> None:
    made = Path(wt.ensure_worktree(repo, root, "ada").path)
    aid = new_id()
    wt.prepare_branch(made, aid, "main")
    git(made, "checkout", "-q", "--detach")
    (made / "x.txt").write_text("x\n")
    with pytest.raises(WorktreeOffBranch):
        wt.commit_verified(made, aid, "s", "ada")
    assert (made / "x.txt").exists()


@pytest.mark.parametrize("bad", ["--force", "-b", "as-short", "fleet/as-01JF0000000000000000000001", "as-01jf00"])
def test_option_like_or_foreign_ids_never_reach_git(repo: Path, root: Path, bad: str) -> None:
    made = wt.ensure_worktree(repo, root, "ada").path
    with pytest.raises(InvalidInput):
        wt.prepare_branch(made, bad, "main")
    with pytest.raises(InvalidInput):
        wt.commit_verified(made, bad, "s", "ada")


@pytest.mark.parametrize("bad", ["-main", "--orphan", "a..b", "main.lock", "ref@{1}", "", "x\n"])
def test_option_like_base_names_are_refused(repo: Path, root: Path, bad: str) -> None:
    made = wt.ensure_worktree(repo, root, "ada").path
    with pytest.raises(InvalidInput):
        wt.prepare_branch(made, new_id(), bad)


def test_an_unknown_base_is_refused(repo: Path, root: Path) -> None:
    made = wt.ensure_worktree(repo, root, "ada").path
    with pytest.raises(RepoInvalid):
        wt.prepare_branch(made, new_id(), "develop")


def test_list_shows_each_agents_path_branch_and_state(repo: Path, root: Path) -> None:
    ada = Path(wt.ensure_worktree(repo, root, "ada").path)
    bob = Path(wt.ensure_worktree(repo, root, "bob").path)
    cyd = Path(wt.ensure_worktree(repo, root, "cyd").path)
    aid = new_id()
    wt.prepare_branch(ada, aid, "main")
    (bob / "wip.txt").write_text("wip\n")
    os.rename(cyd, root / "elsewhere")
    got = {w.agent: (w.branch, w.state, w.dirty) for w in adm.list_worktrees(repo, root)}
    assert got == {"ada": (f"fleet/{aid}", "clean", ()), "bob": (None, "dirty", ("wip.txt",)),
                   "cyd": (None, "missing", ())}


def test_branches_report_whether_the_base_contains_them(repo: Path, root: Path) -> None:
    made = Path(wt.ensure_worktree(repo, root, "ada").path)
    merged, open_ = new_id(), new_id()
    wt.prepare_branch(made, merged, "main")
    wt.prepare_branch(made, open_, "main")
    commit_file(made, "work.txt", "work\n")
    got = {b.assignment_id: b.merged for b in adm.fleet_branches(repo, "main")}
    assert got == {merged: True, open_: False}


def test_prune_refuses_unmerged_work_unless_forced(repo: Path, root: Path) -> None:
    made = Path(wt.ensure_worktree(repo, root, "ada").path)
    done, wip = new_id(), new_id()
    wt.prepare_branch(made, done, "main")
    wt.prepare_branch(made, wip, "main")
    commit_file(made, "work.txt", "unmerged work\n")
    git(made, "checkout", "-q", "--detach", "main")
    wip_tip = rev(repo, f"fleet/{wip}")
    with pytest.raises(UnmergedWork) as exc:
        adm.prune(repo, root, "main", agents=["ada"], assignments=[done, wip])
    assert f"fleet/{wip}" in exc.value.message
    assert made.exists()
    assert rev(repo, f"fleet/{done}")  # all or nothing: the merged one is still there
    pruned = adm.prune(repo, root, "main", agents=["ada"], assignments=[done])
    assert pruned.branches == (f"fleet/{done}",)
    assert not made.exists()
    assert rev(repo, f"fleet/{wip}") == wip_tip
    forced = adm.prune(repo, root, "main", assignments=[wip], force=True)
    assert forced.branches == (f"fleet/{wip}",)
    assert adm.prune(repo, root, "main", agents=["ada"], assignments=[done, wip]) == adm.Pruned((), ())


def test_prune_refuses_a_worktree_with_uncommitted_files(repo: Path, root: Path) -> None:
    made = Path(wt.ensure_worktree(repo, root, "ada").path)
    (made / "wip.txt").write_text("not committed\n")
    with pytest.raises(UnmergedWork) as exc:
        adm.prune(repo, root, "main", agents=["ada"])
    assert "wip.txt" in exc.value.message
    assert (made / "wip.txt").read_text() == "not committed\n"


def test_prune_never_deletes_a_branch_a_remaining_worktree_is_on(repo: Path, root: Path) -> None:
    made = Path(wt.ensure_worktree(repo, root, "ada").path)
    aid = new_id()
    wt.prepare_branch(made, aid, "main")
    with pytest.raises(UnmergedWork):
        adm.prune(repo, root, "main", assignments=[aid], force=True)


def test_a_worktree_whose_git_link_was_rewritten_is_refused_given_its_repo(repo: Path, root: Path,
                                                                          tmp_path: Path) -> None:
    made = Path(wt.ensure_worktree(repo, root, "ada").path)
    aid = new_id()
    wt.prepare_branch(made, aid, "main", repo=repo)
    decoy = make_repo(tmp_path / "decoy")
    (made / ".git").write_text(f"gitdir: {decoy / '.git'}\n")
    with pytest.raises(WorktreeForeign):
        wt.prepare_branch(made, aid, "main", repo=repo)
    with pytest.raises(WorktreeForeign):
        wt.commit_verified(made, aid, "s", "ada", repo=repo)
    assert git(decoy, "log", "--format=%s") == "initial\n"


def test_an_ignored_file_in_the_way_of_the_branch_refuses_prepare_and_is_kept(repo: Path, root: Path) -> None:
    commit_file(repo, ".gitignore", "out/\n")
    made = Path(wt.ensure_worktree(repo, root, "ada").path)
    wt.prepare_branch(made, new_id(), "main")
    (made / "out").mkdir()
    (made / "out" / "data.bin").write_text("the agent's build output\n")
    (repo / "out").mkdir()  # the base starts tracking a file the worktree has as ignored
    (repo / "out" / "data.bin").write_text("tracked now\n")
    git(repo, "add", "-f", "out/data.bin")
    git(repo, "commit", "-q", "-m", "track out/data.bin")
    with pytest.raises(WorktreeDirty) as exc:
        wt.prepare_branch(made, new_id(), "main")
    assert exc.value.data["files"] == ["out/data.bin"]
    assert (made / "out" / "data.bin").read_text() == "the agent's build output\n"


def test_no_hook_of_the_repository_runs_when_worktrees_and_branches_are_made(repo: Path, root: Path,
                                                                             tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    for name in ("post-checkout", "reference-transaction", "post-index-change"):
        hook = repo / ".git" / "hooks" / name
        hook.write_text(f"#!/bin/sh\necho {name} >> {marker}\n")
        hook.chmod(0o755)
    made = wt.ensure_worktree(repo, root, "ada").path
    wt.prepare_branch(made, new_id(), "main")
    assert not marker.exists()
    git(repo, "checkout", "-q", "-b", "control")  # plain git runs them: the case is armed
    assert marker.exists()


def test_the_current_branch_is_the_default_base(repo: Path) -> None:
    assert wt.current_branch(repo) == "main"
    git(repo, "checkout", "-q", "-b", "release/2.0")
    assert wt.current_branch(repo) == "release/2.0"
    git(repo, "checkout", "-q", "--detach")
    assert wt.current_branch(repo) is None


def test_commit_verified_with_paths_commits_only_those_and_leaves_the_rest(repo: Path, root: Path) -> None:
    """What a check wrote (a cache, a report) is not the agent's verified work: it stays uncommitted."""
    made = Path(wt.ensure_worktree(repo, root, "ada").path)
    aid = new_id()
    base = wt.prepare_branch(made, aid, "main").base_commit
    (made / "app.py").write_text("a = 1\nb = 2\nc = 4\n")
    (made / "README.md").unlink()
    (made / "odd name*.py").write_text("x = 1\n")
    (made / "__pycache__").mkdir()
    (made / "__pycache__" / "app.pyc").write_bytes(b"\0")
    commit = wt.commit_verified(made, aid, "Edit", "ada", paths=["app.py", "README.md", "odd name*.py", "gone.txt"])
    assert sorted(git(repo, "diff", "--name-only", base, commit).splitlines()) == ["README.md", "app.py",
                                                                                  "odd name*.py"]
    assert git(made, "status", "--porcelain").split() == ["??", "__pycache__/"]
    assert wt.commit_verified(made, aid, "Edit", "ada", paths=[]) == commit
