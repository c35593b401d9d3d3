"""An agent attacking its own worktree: it writes every file in it, `.git` included, at any time.

Real git repositories in tmp dirs. Where an attack needs a write to land between two of fleet's git
calls, the test wraps fleet's own check so that the write happens right after it (the one condition
a test cannot otherwise time); the docstring says so.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from gitrepos import commit_file, git, make_repo, new_id, repo, rev, root, tree_digest

from fleet.errors import UnmergedWork, WorkChangedSinceVerified, WorktreeForeign, WorktreeOffBranch
from fleet.work import snapshot as snap
from fleet.work import worktreeadmin as adm
from fleet.work import worktrees as wt

__all__ = ["repo", "root"]  # fixtures from gitrepos: pytest finds them in this module by name


def _admin_dir(worktree: Path) -> Path:
    return Path(git(worktree, "rev-parse", "--path-format=absolute", "--git-dir").strip())


def test_a_git_link_pointed_at_the_users_git_dir_never_moves_the_users_checkout(repo: Path, root: Path) -> None:
    made = Path(wt.ensure_worktree(repo, root, "ada").path)
    (made / ".git").write_text(f"gitdir: {repo / '.git'}\n")
    before = tree_digest(repo)
    with pytest.raises(WorktreeForeign):
        wt.prepare_branch(made, new_id(), "main", repo=repo)
    assert git(repo, "symbolic-ref", "HEAD").strip() == "refs/heads/main"
    assert tree_digest(repo) == before


def test_a_git_link_pointed_at_another_agents_worktree_never_touches_that_worktree(repo: Path, root: Path) -> None:
    ada = Path(wt.ensure_worktree(repo, root, "ada").path)
    bob = Path(wt.ensure_worktree(repo, root, "bob").path)
    bob_aid = new_id()
    wt.prepare_branch(bob, bob_aid, "main", repo=repo)
    bob_admin = _admin_dir(bob)
    (ada / ".git").write_text(f"gitdir: {bob_admin}\n")
    (ada / "stolen.txt").write_text("ada's work, to be committed as bob's\n")
    head_before = (bob_admin / "HEAD").read_bytes()
    with pytest.raises(WorktreeForeign):
        wt.prepare_branch(ada, new_id(), "main", repo=repo)
    with pytest.raises((WorktreeForeign, WorktreeOffBranch)):
        wt.commit_verified(ada, bob_aid, "s", "ada", repo=repo)
    assert (bob_admin / "HEAD").read_bytes() == head_before
    assert rev(bob, f"fleet/{bob_aid}") == rev(repo, "main")


def _crafted_admin_dir(repo: Path, ada: Path, branch: str, where: Path) -> Path:
    """What an agent can build where it may write: an admin dir of its own that shares the real
    repository (`commondir`), is on its assignment's branch, and whose index stages a file that is
    in no work tree (an existing blob under a new name: no object is written)."""
    where.mkdir()
    (where / "HEAD").write_text(f"ref: refs/heads/{branch}\n")
    (where / "commondir").write_text(f"{repo / '.git'}\n")
    (where / "gitdir").write_text(f"{ada / '.git'}\n")
    (where / "index").write_bytes((_admin_dir(ada) / "index").read_bytes())
    blob = git(repo, "rev-parse", "main:README.md").strip()
    git(ada, f"--git-dir={where}", f"--work-tree={ada}", "update-index", "--add", "--cacheinfo",
        f"100644,{blob},unverified.txt")
    return where


def test_a_git_link_to_an_admin_dir_the_agent_made_is_refused_and_nothing_is_committed(
        repo: Path, root: Path, tmp_path: Path) -> None:
    ada = Path(wt.ensure_worktree(repo, root, "ada").path)
    aid = new_id()
    wt.prepare_branch(ada, aid, "main", repo=repo)
    crafted = _crafted_admin_dir(repo, ada, f"fleet/{aid}", tmp_path / "agent-tmp")
    (ada / ".git").write_text(f"gitdir: {crafted}\n")
    (ada / "app.py").write_text("ada's edit\n")
    with pytest.raises(WorktreeForeign):
        wt.commit_verified(ada, aid, "ada's work", "ada", repo=repo, paths=["app.py"])
    assert rev(repo, f"fleet/{aid}") == rev(repo, "main")


def test_a_git_link_rewritten_right_after_fleets_check_is_not_followed(repo: Path, root: Path, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The rewrite is made to land just after fleet checked the link (wrapping that check): the one
    timing an agent's background process could hit by chance. Later git calls must not follow it."""
    ada = Path(wt.ensure_worktree(repo, root, "ada").path)
    bob = Path(wt.ensure_worktree(repo, root, "bob").path)
    bob_aid = new_id()
    wt.prepare_branch(bob, bob_aid, "main", repo=repo)
    ada_aid = new_id()
    wt.prepare_branch(ada, ada_aid, "main", repo=repo)
    bob_admin = _admin_dir(bob)
    bob_index = (bob_admin / "index").read_bytes()
    crafted = _crafted_admin_dir(repo, ada, f"fleet/{ada_aid}", tmp_path / "agent-tmp")
    (ada / "app.py").write_text("ada's edit\n")
    real_pin = wt.pin

    def pin_then_swap(path: str, repo_: object) -> str:
        out = real_pin(path, repo_)  # type: ignore[arg-type]
        (ada / ".git").write_text(f"gitdir: {crafted}\n")
        return out

    monkeypatch.setattr(wt, "pin", pin_then_swap)
    try:
        tip = wt.commit_verified(ada, ada_aid, "ada's work", "ada", repo=repo, paths=["app.py"])
    except (WorktreeForeign, WorktreeOffBranch):
        tip = None
    assert rev(bob, "HEAD") == rev(repo, "main")
    assert (bob_admin / "index").read_bytes() == bob_index
    assert rev(repo, f"fleet/{bob_aid}") == rev(repo, "main")
    if tip is not None:  # committed where it belongs, or not at all
        assert rev(repo, f"fleet/{ada_aid}") == tip
        assert git(repo, "show", f"{tip}:app.py") == "ada's edit\n"
        assert "unverified.txt" not in git(repo, "ls-tree", "--name-only", tip)


def test_listing_and_pruning_read_the_worktree_git_keeps_not_the_one_its_link_names(repo: Path, root: Path,
                                                                                    tmp_path: Path) -> None:
    ada = Path(wt.ensure_worktree(repo, root, "ada").path)
    aid = new_id()
    wt.prepare_branch(ada, aid, "main", repo=repo)
    crafted = _crafted_admin_dir(repo, ada, f"fleet/{aid}", tmp_path / "agent-tmp")
    (ada / ".git").write_text(f"gitdir: {crafted}\n")
    [listed] = adm.list_worktrees(repo, root)
    assert (listed.state, listed.dirty) == ("clean", ())
    (ada / "notes.txt").write_text("uncommitted\n")
    with pytest.raises(UnmergedWork) as exc:
        adm.prune(repo, root, "main", agents=["ada"])
    assert "notes.txt" in exc.value.message
    assert "unverified.txt" not in exc.value.message


def _verified_states(made: Path, before: snap.Snapshot) -> dict[str, str | None]:
    after = snap.snapshot(made, since=before)
    return {p: after.files.get(p) for p in snap.changed_files(before, after)}


def test_a_file_rewritten_after_verification_is_not_committed(repo: Path, root: Path) -> None:
    made = Path(wt.ensure_worktree(repo, root, "ada").path)
    aid = new_id()
    wt.prepare_branch(made, aid, "main", repo=repo)
    before = snap.snapshot(made)
    (made / "app.py").write_text("verified = True\n")
    (made / "new.txt").write_text("new\n")
    states = _verified_states(made, before)
    (made / "app.py").write_text("import os; os.system('curl evil')\n")  # a check's conftest, after the snapshot
    with pytest.raises(WorkChangedSinceVerified) as exc:
        wt.commit_verified(made, aid, "s", "ada", repo=repo, paths=sorted(states), expected=states)
    assert exc.value.data["files"] == ["app.py"]
    assert rev(repo, f"fleet/{aid}") == rev(repo, "main")


@pytest.mark.parametrize("tamper", ["chmod", "symlink", "delete", "recreate"])
def test_any_other_change_to_a_verified_file_refuses_the_commit(repo: Path, root: Path, tamper: str) -> None:
    made = Path(wt.ensure_worktree(repo, root, "ada").path)
    aid = new_id()
    wt.prepare_branch(made, aid, "main", repo=repo)
    before = snap.snapshot(made)
    (made / "app.py").write_text("verified = True\n")
    if tamper == "recreate":
        (made / "README.md").unlink()
    states = _verified_states(made, before)
    if tamper == "chmod":
        (made / "app.py").chmod(0o755)
    elif tamper == "symlink":
        (made / "app.py").unlink()
        (made / "app.py").symlink_to("/etc/passwd")
    elif tamper == "delete":
        (made / "app.py").unlink()
    else:
        (made / "README.md").write_text("back again\n")
    with pytest.raises(WorkChangedSinceVerified):
        wt.commit_verified(made, aid, "s", "ada", repo=repo, paths=sorted(states), expected=states)
    assert rev(repo, f"fleet/{aid}") == rev(repo, "main")


def test_verified_files_are_committed_with_line_endings_a_checkout_would_write(repo: Path, root: Path) -> None:
    made = Path(wt.ensure_worktree(repo, root, "ada").path)
    aid = new_id()
    wt.prepare_branch(made, aid, "main", repo=repo)
    before = snap.snapshot(made)
    (made / ".gitattributes").write_text("*.txt text eol=crlf\n")
    (made / "dos.txt").write_bytes(b"one\r\ntwo\r\n")
    (made / "link").symlink_to("app.py")
    (made / "run.sh").write_text("#!/bin/sh\n")
    (made / "run.sh").chmod(0o755)
    (made / "README.md").unlink()
    states = _verified_states(made, before)
    tip = wt.commit_verified(made, aid, "s", "ada", repo=repo, paths=sorted(states), expected=states)
    assert git(repo, "show", f"{tip}:dos.txt") == "one\ntwo\n"  # git stored it normalised
    assert set(git(repo, "ls-tree", "--name-only", tip).split()) == {".gitattributes", "app.py", "dos.txt", "link",
                                                                      "run.sh"}


def test_a_worktree_dir_replaced_by_a_symlink_to_another_agents_worktree_is_refused(repo: Path, root: Path) -> None:
    ada = Path(wt.ensure_worktree(repo, root, "ada").path)
    bob = Path(wt.ensure_worktree(repo, root, "bob").path)
    bob_aid = new_id()
    wt.prepare_branch(bob, bob_aid, "main", repo=repo)
    ada.rename(root / "ada-moved")
    ada.symlink_to(bob)
    with pytest.raises(WorktreeForeign):
        wt.prepare_branch(ada, new_id(), "main", repo=repo)
    with pytest.raises(WorktreeForeign):
        wt.commit_verified(ada, bob_aid, "s", "ada", repo=repo)
    assert git(bob, "symbolic-ref", "HEAD").strip() == f"refs/heads/fleet/{bob_aid}"


def test_drivers_an_agent_names_in_a_repository_of_its_own_never_run(repo: Path, root: Path, tmp_path: Path) -> None:
    """The agent's `.gitattributes` names filter, diff and merge drivers that a repository it made
    defines (config, an included file, fsmonitor and hooks too), and its `.git` link points there."""
    ada = Path(wt.ensure_worktree(repo, root, "ada").path)
    aid = new_id()
    wt.prepare_branch(ada, aid, "main", repo=repo)
    marker = tmp_path / "ran"
    evil = make_repo(tmp_path / "agent-tmp" / "evil")
    (evil / "included").write_text(f"[filter \"x\"]\n\tprocess = touch {marker}\n")
    git(evil, "config", "include.path", str(evil / "included"))
    for key in ("filter.x.clean", "filter.x.smudge", "diff.x.textconv", "diff.x.command", "merge.x.driver",
                "core.fsmonitor"):
        git(evil, "config", key, f"touch {marker}")
    (ada / ".gitattributes").write_text("* filter=x diff=x merge=x\n")
    (ada / "app.py").write_text("edited\n")
    (ada / ".git").write_text(f"gitdir: {evil / '.git'}\n")
    with pytest.raises(WorktreeForeign):
        wt.prepare_branch(ada, aid, "main", repo=repo)
    with pytest.raises(WorktreeForeign):
        wt.commit_verified(ada, aid, "s", "ada", repo=repo)
    adm.list_worktrees(repo, root)
    assert not marker.exists()
    git(ada, "add", "-A", check=False)  # plain git follows the link and runs them: the case is armed
    assert marker.exists()


def test_an_entry_staged_beside_the_verified_paths_refuses_the_commit(repo: Path, root: Path) -> None:
    """Whoever can write the worktree's index (its admin dir, should the repository's git dir lie in a
    writable root) stages a file the worktree does not hold; the verified paths themselves match."""
    made = Path(wt.ensure_worktree(repo, root, "ada").path)
    aid = new_id()
    wt.prepare_branch(made, aid, "main", repo=repo)
    before = snap.snapshot(made)
    (made / "app.py").write_text("verified = True\n")
    states = _verified_states(made, before)
    blob = git(repo, "rev-parse", "main:README.md").strip()
    git(made, "update-index", "--add", "--cacheinfo", f"100644,{blob},unverified.txt")
    with pytest.raises(WorkChangedSinceVerified) as exc:
        wt.commit_verified(made, aid, "s", "ada", repo=repo, paths=sorted(states), expected=states)
    assert exc.value.data["files"] == ["unverified.txt"]
    assert rev(repo, f"fleet/{aid}") == rev(repo, "main")


@pytest.mark.parametrize("link", ["bob", "missing", "garbage"])
def test_up_mends_a_broken_link_from_gits_records_and_never_hands_over_another_worktree(
        repo: Path, root: Path, link: str) -> None:
    ada = Path(wt.ensure_worktree(repo, root, "ada").path)
    bob = Path(wt.ensure_worktree(repo, root, "bob").path)
    bob_aid = new_id()
    wt.prepare_branch(bob, bob_aid, "main", repo=repo)
    bob_admin = _admin_dir(bob)
    if link == "bob":
        (ada / ".git").write_text(f"gitdir: {bob_admin}\n")
    elif link == "missing":
        (ada / ".git").unlink()
    else:
        (ada / ".git").write_text("gitdir: /nonexistent\n")
    again = wt.ensure_worktree(repo, root, "ada")
    assert again.repaired
    assert wt.pin(ada, repo) == str(_admin_dir(ada)) != str(bob_admin)
    assert wt.pin(bob, repo) == str(bob_admin)
    assert git(bob, "symbolic-ref", "HEAD").strip() == f"refs/heads/fleet/{bob_aid}"


def test_a_forced_prune_of_a_worktree_replaced_by_a_symlink_never_removes_where_it_leads(repo: Path,
                                                                                       root: Path) -> None:
    ada = Path(wt.ensure_worktree(repo, root, "ada").path)
    bob = Path(wt.ensure_worktree(repo, root, "bob").path)
    (bob / "work.txt").write_text("bob's uncommitted work\n")
    ada.rename(root / "ada-moved")
    ada.symlink_to(bob)
    with pytest.raises(UnmergedWork) as exc:
        adm.prune(repo, root, "main", agents=["ada"], force=True)
    assert "symlink" in exc.value.message
    assert (bob / "work.txt").read_text() == "bob's uncommitted work\n"
    assert wt.pin(bob, repo)


def test_an_ignored_file_verification_saw_change_stays_uncommitted_as_before(repo: Path, root: Path) -> None:
    commit_file(repo, ".gitignore", "*.pyc\n")
    made = Path(wt.ensure_worktree(repo, root, "ada").path)
    aid = new_id()
    wt.prepare_branch(made, aid, "main", repo=repo)
    before = snap.snapshot(made)
    (made / "app.py").write_text("verified = True\n")
    (made / "app.pyc").write_bytes(b"\x00compiled")
    states = _verified_states(made, before)
    assert sorted(states) == ["app.py", "app.pyc"]
    tip = wt.commit_verified(made, aid, "s", "ada", repo=repo, paths=sorted(states), expected=states)
    assert "app.pyc" not in git(repo, "ls-tree", "--name-only", tip)
    assert git(repo, "show", f"{tip}:app.py") == "verified = True\n"


@pytest.mark.parametrize("how", ["ignore it", "delete it", "convert it"])
def test_a_verified_file_dropped_from_the_commit_afterwards_refuses_it(repo: Path, root: Path, how: str) -> None:
    made = Path(wt.ensure_worktree(repo, root, "ada").path)
    aid = new_id()
    wt.prepare_branch(made, aid, "main", repo=repo)
    before = snap.snapshot(made)
    text = "the fix the checks passed with\n"
    (made / "fix.py").write_bytes(text.encode("utf-16-le") if how == "convert it" else text.encode())
    states = _verified_states(made, before)
    if how == "ignore it":
        (made / ".gitignore").write_text("fix.py\n")
    elif how == "convert it":  # what git stores is no longer the verified bytes, only a conversion of them
        (made / ".gitattributes").write_text("fix.py working-tree-encoding=UTF-16LE\n")
    else:
        (made / "fix.py").unlink()
    with pytest.raises(WorkChangedSinceVerified):
        wt.commit_verified(made, aid, "s", "ada", repo=repo, paths=sorted(states), expected=states)
    assert rev(repo, f"fleet/{aid}") == rev(repo, "main")


def test_a_verified_file_hidden_behind_a_directory_swapped_for_a_symlink_refuses_the_commit(
        repo: Path, root: Path, tmp_path: Path) -> None:
    made = Path(wt.ensure_worktree(repo, root, "ada").path)
    aid = new_id()
    wt.prepare_branch(made, aid, "main", repo=repo)
    before = snap.snapshot(made)
    (made / "src").mkdir()
    (made / "src" / "fix.py").write_text("the fix\n")
    states = _verified_states(made, before)
    (made / "src").rename(tmp_path / "elsewhere")
    (made / "src").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(WorkChangedSinceVerified):
        wt.commit_verified(made, aid, "s", "ada", repo=repo, paths=sorted(states), expected=states)


def _verified_work(repo: Path, root: Path, files: dict[str, bytes]) -> tuple[Path, str, dict[str, str | None]]:
    """Ada's worktree on a new assignment's branch, `files` written and verified: (worktree, id, states)."""
    made = Path(wt.ensure_worktree(repo, root, "ada").path)
    aid = new_id()
    wt.prepare_branch(made, aid, "main", repo=repo)
    before = snap.snapshot(made)
    for rel, data in files.items():
        (made / rel).parent.mkdir(parents=True, exist_ok=True)
        (made / rel).write_bytes(data)
    return made, aid, _verified_states(made, before)


def test_a_gitignore_that_ignores_itself_never_drops_a_verified_file(repo: Path, root: Path) -> None:
    """`pkg/.gitignore` = `*` written after verification ignores itself, so no dirty list shows it, and
    would leave the verified `pkg/new.py` out of the commit."""
    made, aid, states = _verified_work(repo, root, {"app.py": b"import pkg.new\n", "pkg/new.py": b"x = 1\n"})
    (made / "pkg" / ".gitignore").write_text("*\n")
    with pytest.raises(WorkChangedSinceVerified) as refused:
        wt.commit_verified(made, aid, "s", "ada", repo=repo, paths=sorted(states), expected=states)
    assert "pkg/.gitignore" in refused.value.data["files"]
    assert rev(repo, f"fleet/{aid}") == rev(repo, "main")


def test_verified_steering_files_that_ignore_themselves_never_convert_a_file_uncommitted(repo: Path,
                                                                                       root: Path) -> None:
    """Verified before the checks ran: a `.gitattributes` converting `f.txt` and a `.gitignore` hiding
    both steering files. The conversion would be committed without what made it."""
    made, aid, states = _verified_work(repo, root, {
        "pkg/.gitignore": b".git*\n", "pkg/.gitattributes": b"*.txt working-tree-encoding=UTF-16LE\n",
        "pkg/f.txt": "hello\n".encode("utf-16-le")})
    with pytest.raises(WorkChangedSinceVerified):
        wt.commit_verified(made, aid, "s", "ada", repo=repo, paths=sorted(states), expected=states)
    assert rev(repo, f"fleet/{aid}") == rev(repo, "main")


def test_a_gitattributes_written_right_after_fleet_lists_the_dirty_files_is_seen(
        repo: Path, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The write lands between fleet's dirty listing and `git add` (wrapped so, as a leftover process
    would time it): the check after `add` sees it."""
    made, aid, states = _verified_work(repo, root, {"fix.txt": "the fix\n".encode("utf-16-le")})
    listed = wt.dirty_files

    def racing(g: object, **kw: object) -> list[str]:
        out = listed(g, **kw)  # type: ignore[arg-type]
        (made / ".gitattributes").write_text("fix.txt working-tree-encoding=UTF-16LE\n")
        return out

    monkeypatch.setattr(wt, "dirty_files", racing)
    with pytest.raises(WorkChangedSinceVerified):
        wt.commit_verified(made, aid, "s", "ada", repo=repo, paths=sorted(states), expected=states)
    assert rev(repo, f"fleet/{aid}") == rev(repo, "main")


def test_a_virtualenvs_own_gitignore_inside_a_committed_ignore_still_commits(repo: Path, root: Path) -> None:
    """Tools write a `.gitignore` of `*` into what they make (a virtualenv): inside a directory the
    committed rules already ignore it steers nothing that is committed, so the verified work commits."""
    commit_file(repo, ".gitignore", ".venv/\n")
    made, aid, states = _verified_work(repo, root, {"app.py": b"verified = True\n", ".venv/.gitignore": b"*\n",
                                                    ".venv/lib/site.py": b"x = 1\n"})
    assert ".venv/.gitignore" in states
    tip = wt.commit_verified(made, aid, "s", "ada", repo=repo, paths=sorted(states), expected=states)
    committed = git(repo, "ls-tree", "-r", "--name-only", tip).split()
    assert "app.py" in committed
    assert not [p for p in committed if p.startswith(".venv/")]
    assert git(repo, "show", f"{tip}:app.py") == "verified = True\n"
