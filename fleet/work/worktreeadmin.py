"""Housekeeping of agents' worktrees: list them, list fleet's assignment branches, prune both.

`fleet worktrees` and `fleet worktree-prune` stand on this. Listing reads (a `git status` per
worktree, so ~tens of ms each on a 10,000-file tree). Pruning deletes, so it is all or nothing and
refuses what is not safe to lose: a worktree with uncommitted files or commits the base does not
contain, a locked worktree, a branch the base does not contain (all of these unless forced), and
always a branch a remaining worktree is on. A branch is deleted by compare-and-swap
(`update-ref -d REF OLD`): one that moved since it was checked is kept. What is already gone is
skipped, so a repeated prune is a no-op.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from fleet.errors import RepoInvalid, UnmergedWork

from .gitwt import Git
from .lifecycle import ASSIGNMENT_ID_RE
from .worktrees import (
    BRANCH_PREFIX,
    Entry,
    admin_dirs,
    admin_for,
    check_assignment_id,
    check_base,
    contains,
    dirty_files,
    git_errors,
    list_entries,
    named_list,
    open_repo,
    placed,
    rev_commit,
)

WorktreeState = Literal["clean", "dirty", "missing", "locked"]


@dataclass(frozen=True)
class WorktreeStatus:
    """One agent's worktree for `fleet worktrees`: `branch` is None when detached; `dirty` names the
    uncommitted and untracked files (empty unless `state` is dirty)."""

    agent: str
    path: str
    branch: str | None
    head: str | None
    state: WorktreeState
    dirty: tuple[str, ...] = ()


@dataclass(frozen=True)
class BranchStatus:
    """An assignment branch: its tip and whether the base branch already contains it."""

    assignment_id: str
    branch: str
    commit: str
    merged: bool


@dataclass(frozen=True)
class Pruned:
    worktrees: tuple[str, ...]
    branches: tuple[str, ...]


def list_worktrees(repo: str | os.PathLike[str], root: str | os.PathLike[str]) -> list[WorktreeStatus]:
    """The agents' worktrees of `repo` under `root`, by agent name: path, branch, state and the
    dirty files (a status scan of each: ~tens of ms on 10,000 files)."""
    r = open_repo(repo)
    root_real = os.path.realpath(os.fspath(root))
    out = []
    with git_errors():
        admins = admin_dirs(r.common_dir)
        for e in list_entries(Git(r.common_dir)):
            path = os.path.realpath(e.path)
            if os.path.dirname(path) != root_real:
                continue
            branch = e.branch.removeprefix("refs/heads/") if e.branch else None
            admin = admin_for(e.path, admins)
            if e.prunable is not None or not os.path.isdir(path) or admin is None:
                state: WorktreeState = "missing"
                dirty: tuple[str, ...] = ()
            else:  # git is told the admin dir: the worktree's own `.git` link is the agent's to rewrite
                dirty = tuple(dirty_files(Git(path, admin)))
                state = "locked" if e.locked is not None else "dirty" if dirty else "clean"
            out.append(WorktreeStatus(os.path.basename(path), path, branch, e.head, state, dirty))
    return sorted(out, key=lambda w: w.agent)


def fleet_branches(repo: str | os.PathLike[str], base: str) -> list[BranchStatus]:
    """Every `fleet/<assignment id>` branch of `repo`, with whether `base` contains it."""
    check_base(base)
    r = open_repo(repo)
    with git_errors():
        g = Git(r.common_dir)
        fmt = "--format=%(refname:lstrip=2)%00%(objectname)"
        every = g.out("for-each-ref", fmt, f"refs/heads/{BRANCH_PREFIX}").splitlines()
        merged: set[str] = set()
        if rev_commit(r.common_dir, f"refs/heads/{base}"):
            merged = set(g.out("for-each-ref", fmt, f"--merged=refs/heads/{base}",
                               f"refs/heads/{BRANCH_PREFIX}").splitlines())
    out = []
    for line in every:
        name, _, commit = line.partition("\0")
        aid = name.removeprefix(BRANCH_PREFIX)
        if ASSIGNMENT_ID_RE.match(aid):
            out.append(BranchStatus(aid, name, commit, line in merged))
    return out


def prune(repo: str | os.PathLike[str], root: str | os.PathLike[str], base: str, *, agents: Sequence[str] = (),
          assignments: Sequence[str] = (), force: bool = False) -> Pruned:
    """Remove the named agents' worktrees (under `root`) and the named assignments' branches. All or
    nothing: a worktree with uncommitted files or a HEAD `base` does not contain, a locked one, or a
    branch `base` does not contain, refuses the whole prune (`unmerged_work`, naming each) unless
    `force`. A branch checked out in a worktree that stays, and a worktree whose directory was
    replaced by a symlink, are always refused. What is already gone is skipped, so a repeated prune
    is a no-op."""
    check_base(base)
    ids = [check_assignment_id(a) for a in assignments]
    r = open_repo(repo)
    root_real = os.path.realpath(os.fspath(root))
    with git_errors():
        g = Git(r.common_dir)
        base_tip = rev_commit(r.common_dir, f"refs/heads/{base}")
        if base_tip is None:
            raise RepoInvalid(f"{r.top or r.common_dir} has no branch {base}.", base=base)
        entries = {placed(e.path): e for e in list_entries(g)}
        admins = admin_dirs(r.common_dir)
        problems: list[str] = []
        doomed: list[tuple[str, Entry]] = []
        for agent in agents:
            path = os.path.join(root_real, agent)
            e = entries.get(path)
            if e is None:
                continue
            if os.path.islink(path):  # git would remove the worktree the link leads to: never, even forced
                problems.append(f"{agent}'s worktree {path} is a symlink (remove it by hand)")
                continue
            doomed.append((path, e))
            if force or e.prunable is not None or not os.path.isdir(path):
                continue
            if e.locked is not None:
                problems.append(f"{agent}'s worktree is locked")
            if (admin := admin_for(path, admins)) is None:
                problems.append(f"git keeps no single admin dir for {agent}'s worktree")
            elif dirty := dirty_files(Git(path, admin)):
                problems.append(f"{agent}'s worktree has uncommitted files ({named_list(dirty)})")
            elif e.head and not contains(g, base_tip, e.head):
                problems.append(f"{agent}'s worktree holds commits {base} does not contain")
        staying = {e.branch: p for p, e in entries.items() if e.branch and p not in dict(doomed)}
        branches: list[tuple[str, str]] = []
        for aid in ids:
            ref = f"refs/heads/{BRANCH_PREFIX}{aid}"
            tip = rev_commit(r.common_dir, ref)
            if tip is None:
                continue
            branches.append((ref, tip))
            if ref in staying:
                problems.append(f"{BRANCH_PREFIX}{aid} is checked out in {staying[ref]} (prune that worktree too)")
            elif not force and not contains(g, base_tip, tip):
                problems.append(f"{BRANCH_PREFIX}{aid} holds commits {base} does not contain")
        if problems:
            raise UnmergedWork(f"Nothing was pruned: {'; '.join(problems)}.",
                               hint="Merge or inspect that work first, or pass --force to delete it anyway.",
                               problems=problems)
        for path, e in doomed:
            args = ["worktree", "remove"] + (["--force", "--force"] if force and e.locked is not None
                                              else ["--force"] if force else [])
            g.run(*args, path)
        for ref, tip in branches:  # compare-and-swap: a branch that moved meanwhile is kept
            g.run("update-ref", "-d", ref, tip)
    return Pruned(tuple(p for p, _ in doomed), tuple(ref.removeprefix("refs/heads/") for ref, _ in branches))
