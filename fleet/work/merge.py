"""Merging verified assignments' branches into their base branch, and the diff a lead reads first.

Two halves. `plan_merge` is pure: the assignments in the order given, each verified and with its
branch, or a refusal. `merge` carries a plan out without touching any work tree until the result is
known: each branch is combined with the base in the object store (`git merge-tree --write-tree`,
then `commit-tree`; a fast-forward where the branch already contains the base), and only a clean
result moves the base branch, by compare-and-swap (`git update-ref refs/heads/B NEW OLD`).

Guarantees:
- **A conflict changes nothing**: no ref moves, no file is written, no conflict marker exists
  anywhere (merge-tree writes objects only; unreachable ones are git's garbage to collect).
- **A concurrent commit is never lost**: if the base moved after it was read, the swap fails; the
  plan is combined once more on top of the new tip, and a second miss is `merge_raced`.
- **Merges into one repository are serialised** by an flock on a file under the caller's lock dir,
  named after the repository's git dir. It orders fleet's merges; a person's own git ignores it,
  which is what the swap is for.
- **A checkout of the base is never overwritten**: if the base branch is checked out in any work tree
  (the user's or another) with uncommitted changes to tracked files, or with untracked files the
  merge would overwrite, the merge is refused (`base_checked_out_dirty`) before the ref moves. A clean
  checkout is brought along after the swap by a two-tree `git read-tree -m -u OLD NEW`, which
  refuses rather than overwrite anything; if a person edits it in that instant and git refuses, the
  branch has moved and the checkout says so in `git status` (the result's `checkout_errors`).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from fleet.errors import (
    BaseCheckedOutDirty,
    BranchMissing,
    InvalidInput,
    MergeBusy,
    MergeConflict,
    MergeNotVerified,
    MergeRaced,
    RepoInvalid,
)
from fleet.fsutil import flock_within, make_private_dirs, open_lock_file

from .gitwt import Git, identity_env
from .worktrees import (
    BRANCH_PREFIX,
    Repo,
    admin_dirs,
    admin_for,
    check_assignment_id,
    check_base,
    dirty_files,
    git_errors,
    list_entries,
    named_list,
    open_repo,
    paths_in_the_way,
)

#: How long a merge waits for another merge into the same repository before `merge_busy`.
LOCK_WAIT: Final = 30.0
#: Who fleet's merge commits are by (the assignments' own commits carry the agents as authors).
MERGER: Final = ("fleet", "fleet@fleet.invalid")
_OID: Final = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})(?!\n)$")

How = Literal["fast-forward", "merge", "already merged"]


@dataclass(frozen=True)
class Candidate:
    """What the ledger and git say of one assignment: its state and its branch's tip (None: no branch)."""

    assignment_id: str
    state: str
    commit: str | None


@dataclass(frozen=True)
class Step:
    assignment_id: str
    branch: str
    commit: str


@dataclass(frozen=True)
class MergePlan:
    base: str
    steps: tuple[Step, ...]


@dataclass(frozen=True)
class Merged:
    """One step done: how the branch went in, and the base's tip after it."""

    assignment_id: str
    how: How
    tip: str


@dataclass(frozen=True)
class MergeResult:
    """`new` is the base's tip after the merge (`old` when everything was merged already);
    `checkouts` the work trees that had the base checked out and were brought along."""

    base: str
    old: str
    new: str
    steps: tuple[Merged, ...]
    checkouts: tuple[str, ...] = ()
    checkout_errors: tuple[str, ...] = ()
    replanned: bool = False


@dataclass(frozen=True)
class Diff:
    """A branch against the commit it forked from: `stat`, and `patch` cut at `max_bytes` (`truncated`)."""

    branch: str
    base_commit: str
    head: str
    stat: str
    patch: str
    truncated: bool


def plan_merge(base: str, candidates: Sequence[Candidate]) -> MergePlan:
    """The steps of merging `candidates` into `base`, in the order given. Pure. Refuses an empty list
    or a repeated id (`invalid_input`), any assignment not verified (`merge_not_verified`, naming
    each), any without its branch (`branch_missing`)."""
    check_base(base)
    if not candidates:
        raise InvalidInput("Nothing to merge: name at least one verified assignment.",
                           hint="`fleet assignments --state verified` lists them.")
    ids = [check_assignment_id(c.assignment_id) for c in candidates]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise InvalidInput(f"Assignment {', '.join(repeated)} is named more than once.",
                           hint="Name each assignment once, in the order to merge them.")
    unverified = [c for c in candidates if c.state != "verified"]
    if unverified:
        listed = ", ".join(f"{c.assignment_id} ({c.state})" for c in unverified)
        raise MergeNotVerified(f"Only verified work is merged, and {listed} is not verified.",
                               hint="Leave it out, or wait for its verdict with `fleet wait ID`.",
                               assignments=[c.assignment_id for c in unverified])
    missing = [c.assignment_id for c in candidates if c.commit is None or not _OID.match(c.commit)]
    if missing:
        raise BranchMissing(f"The branch of {', '.join(missing)} does not exist or no longer holds the verified "
                            "commit.",
                            hint="`fleet worktrees` lists the branches; a pruned branch cannot be merged.",
                            assignments=missing)
    return MergePlan(base, tuple(Step(c.assignment_id, BRANCH_PREFIX + c.assignment_id, str(c.commit))
                                 for c in candidates))


def candidates(repo: str | os.PathLike[str], states: Sequence[tuple[str, str]],
               verified: Mapping[str, str] | None = None) -> list[Candidate]:
    """`Candidate`s for (assignment id, ledger state) pairs, each with the commit to merge: the commit
    `verified` records for it (what `commit_verified` returned), provided its branch still holds it,
    else the branch's tip. A branch that is gone, or no longer holds its verified commit (rewritten),
    gives no commit (`plan_merge` then refuses it). Commits an agent added after its verdict are not
    merged: what was verified is."""
    r = open_repo(repo)
    recorded = verified or {}
    with git_errors():
        g = Git(r.common_dir)
        out = []
        for aid, state in states:
            tip = _tip(g, f"refs/heads/{BRANCH_PREFIX}{check_assignment_id(aid)}")
            commit = recorded.get(aid)
            if commit is not None and tip is not None:
                tip = commit if _OID.match(commit) and _tip(g, commit) and _is_ancestor(g, commit, tip) else None
            out.append(Candidate(aid, state, tip))
    return out


def merge(repo: str | os.PathLike[str], plan: MergePlan, lock_dir: str | os.PathLike[str], *,
          wait: float = LOCK_WAIT) -> MergeResult:
    """Carry out `plan` (see the module docstring). Raises `merge_conflict` (files and assignments
    named; nothing changed), `base_checked_out_dirty`, `merge_raced`, `merge_busy`, `repo_invalid`."""
    r = open_repo(repo)
    lock = Path(lock_dir)
    make_private_dirs(lock)
    fd = open_lock_file(lock / f"merge-{hashlib.sha256(r.common_dir.encode()).hexdigest()[:16]}.lock")
    try:
        if not flock_within(fd, wait):
            raise MergeBusy(f"Another merge into {r.top or r.common_dir} is still running after {wait:.0f} s.",
                            hint="Try again when it is done.")
        with git_errors():
            return _merge_locked(r, plan)
    finally:
        os.close(fd)


def diff(repo: str | os.PathLike[str], branch: str, base: str, max_bytes: int = 256 * 1024) -> Diff:
    """`branch` against where it forked from `base` (a branch or a commit: an assignment's recorded
    baseline): the `--stat` and the patch, cut at `max_bytes` (a cut is stated in `truncated`, and in
    the patch's last line). No diff or textconv program runs; binary files show as such."""
    check_base(branch)
    if not _OID.match(base):
        check_base(base)
    r = open_repo(repo)
    with git_errors():
        g = Git(r.common_dir)
        head = _tip(g, f"refs/heads/{branch}")
        if head is None:
            raise BranchMissing(f"{r.top or r.common_dir} has no branch {branch}.", branch=branch)
        base_tip = _tip(g, base if _OID.match(base) else f"refs/heads/{base}")
        if base_tip is None:
            raise RepoInvalid(f"{r.top or r.common_dir} has no {base}.", base=base)
        fork = g.run("merge-base", base_tip, head, ok=(0, 1)).stdout.strip() or base_tip
        opts = ("--no-ext-diff", "--no-textconv", "--no-color", "--no-renames")
        stat = g.out("diff", *opts, "--stat=200,160", fork, head, "--")
        raw, truncated = g.run_bounded(("diff", *opts, "--patch", fork, head, "--"), max(0, max_bytes))
    patch = raw.decode("utf-8", "replace")
    if truncated:
        patch += f"\n[patch cut at {max_bytes} bytes: see the whole with `git diff {fork[:12]} {branch}`]\n"
    return Diff(branch, fork, head, stat, patch, truncated)


# -- execution -------------------------------------------------------------------------------------

def _merge_locked(r: Repo, plan: MergePlan) -> MergeResult:
    g = Git(r.common_dir)
    ref = f"refs/heads/{plan.base}"
    for attempt in (1, 2):
        old = _tip(g, ref)
        if old is None:
            raise RepoInvalid(f"{r.top or r.common_dir} has no branch {plan.base}.",
                              hint="Merge into an existing branch (`--into`).", base=plan.base)
        entries = list_entries(g)
        checkouts = [os.path.realpath(e.path) for e in entries if e.branch == ref and e.prunable is None]
        admins = _checkout_admins(r, entries[0].path if entries else None, plan.base, checkouts)
        for path in checkouts:
            _refuse_dirty_checkout(path, plan.base, dirty_files(Git(path, admins[path]), untracked=False))
        new, steps = _combine(g, old, plan)
        if new == old:
            return MergeResult(plan.base, old, new, steps, replanned=attempt == 2)
        for path in checkouts:
            res = Git(path, admins[path]).run("read-tree", "-m", "-u", "-n", old, new, check=False)
            if res.returncode != 0:
                blocked = paths_in_the_way(res.stderr) or ["(git refused: see `git status`)"]
                _refuse_dirty_checkout(path, plan.base, blocked)
        ids = ", ".join(s.assignment_id for s in plan.steps)
        if g.run("update-ref", "-m", f"fleet merge {ids}", ref, new, old, check=False).returncode == 0:
            errors = []
            for path in checkouts:
                res = Git(path, admins[path]).run("read-tree", "-m", "-u", old, new, check=False)
                if res.returncode != 0:
                    errors.append(f"{path}: {res.stderr.strip()[-300:]}")
            return MergeResult(plan.base, old, new, steps, tuple(checkouts), tuple(errors), replanned=attempt == 2)
    raise MergeRaced(f"{plan.base} moved twice while fleet merged into it; nothing was changed.",
                     hint="Merge again when nobody is committing to it.", base=plan.base)


def _combine(g: Git, old: str, plan: MergePlan) -> tuple[str, tuple[Merged, ...]]:
    """The base's new tip after every step, built in the object store only."""
    cur = old
    done: list[Merged] = []
    for step in plan.steps:
        if _is_ancestor(g, step.commit, cur):
            done.append(Merged(step.assignment_id, "already merged", cur))
            continue
        if _is_ancestor(g, cur, step.commit):
            cur = step.commit
            done.append(Merged(step.assignment_id, "fast-forward", cur))
            continue
        res = g.run("merge-tree", "--write-tree", "-z", "--name-only", "--no-messages", cur, step.commit, ok=(0, 1))
        fields = res.stdout.split("\0")
        if res.returncode == 1:
            files = sorted({f for f in fields[1:] if f})
            before = [m.assignment_id for m in done]
            after = f" after {', '.join(before)}" if before else ""
            named = named_list(files)
            raise MergeConflict(
                f"{step.assignment_id} does not merge cleanly into {plan.base}{after}: {named}. Nothing was changed.",
                hint="Assign the work again (a new assignment starts from the base's current tip), or merge the "
                     "others without it.",
                assignment=step.assignment_id, assignments=[*before, step.assignment_id], files=files[:200],
                base=plan.base)
        message = f"Merge {step.branch} into {plan.base}\n\nAssignment {step.assignment_id}, verified.\n"
        cur = g.run("commit-tree", fields[0], "-p", cur, "-p", step.commit, "-F", "-",
                    stdin=message.encode(), env=identity_env(*MERGER)).stdout.strip()
        done.append(Merged(step.assignment_id, "merge", cur))
    return cur, tuple(done)


def _checkout_admins(r: Repo, main: str | None, base: str, checkouts: Sequence[str]) -> dict[str, str | None]:
    """The git dir to tell git for each checkout of the base (each command gets a fresh `Git` with
    it): a linked worktree's admin dir (an agent's worktree holds a `.git` link it may rewrite); one
    git keeps no single admin dir for is refused. None for the main work tree, whose `.git` is the
    common dir itself."""
    admins = admin_dirs(r.common_dir)
    out: dict[str, str | None] = {}
    for path in checkouts:
        admin = admin_for(path, admins)
        if main is not None and path == os.path.realpath(main):
            out[path] = None
        elif admin is None:
            _refuse_dirty_checkout(path, base, ["(git keeps no single admin dir for this worktree)"])
        else:
            out[path] = admin
    return out


def _refuse_dirty_checkout(path: str, base: str, files: Sequence[str]) -> None:
    if not files:
        return
    named = named_list(files)
    raise BaseCheckedOutDirty(
        f"{base} is checked out in {path} with changes a merge would have to touch ({named}); nothing was changed.",
        hint=f"Commit or stash them there (`git -C {path} status`), or merge into another branch with --into.",
        worktree=path, files=list(files[:200]), base=base)


def _tip(g: Git, rev: str) -> str | None:
    res = g.run("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", ok=(0, 1))
    return res.stdout.strip() or None if res.returncode == 0 else None


def _is_ancestor(g: Git, a: str, b: str) -> bool:
    return g.run("merge-base", "--is-ancestor", a, b, ok=(0, 1)).returncode == 0
