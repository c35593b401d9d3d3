"""Each agent's git worktree of a repository, and a branch per assignment in it.

An agent with a `repo` works in its own worktree of that repository, at `<root>/<agent>` (`root` is
the caller's: fleet's state dir or a configured `worktrees_dir`). Never inside one of the
repository's work trees, and no work tree of it inside one. Every assignment runs on its own branch,
`fleet/<assignment id>`, cut from the tip of the base branch; the commit it was cut from is the
baseline verification compares with.

What is never done: nothing is stashed, reset, cleaned or deleted to make room. A dirty worktree
refuses a new assignment (`worktree_dirty`, naming the files); a locked or foreign one is refused
with a hint (`worktreeadmin` lists and prunes, refusing unmerged work). The user's checkout is not
touched here at all. Files a `.gitignore` ignores count as neither dirty nor work: they stay in the
worktree across assignments and are never committed.

Concurrency: one agent's worktree is driven by one assignment at a time (the agent's lease sees to
that). Creating two agents' worktrees of one repository at once is safe (git locks its own admin
files). git runs through `gitrun` (read-only queries) and `gitwt` (everything else): no hook, filter
or driver program of the repository runs. Branch names and paths come from fleet-made ids only
(agent names, assignment ids), checked against their patterns here: nothing option-like reaches git.
A worktree's `.git` file lies in the agent's writable tree, so fleet never lets git follow it: the
worktree's admin dir is found from the repository's side (`<common dir>/worktrees/*/gitdir`, git's own
files, outside every agent's tree: `pin`), a `.git` link that names anything else is refused
(`worktree_foreign`), and every later git call is told that admin dir and work tree explicitly, so a
link rewritten meanwhile (to the user's git dir, another agent's worktree or a repository the agent
made) is never followed.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from fleet import vocab
from fleet.errors import (
    GitFailed,
    InvalidInput,
    RepoInvalid,
    WorkChangedSinceVerified,
    WorktreeDirty,
    WorktreeForeign,
    WorktreeLocked,
    WorktreeOffBranch,
    WorktreePlacement,
)
from fleet.fsutil import read_regular

from . import gitrun, stagedcheck
from .gitwt import Git, identity_env
from .lifecycle import ASSIGNMENT_ID_RE

#: Assignment branches are `fleet/<assignment id>`: one namespace fleet owns in every repository.
BRANCH_PREFIX: Final = "fleet/"
#: A branch name fleet accepts as a base: git's rules, minus anything option-like or exotic.
BASE_NAME_RE: Final = re.compile(vocab.BRANCH_NAME)
#: Files named in a `worktree_dirty` message; the rest are counted (all go out in `files`, up to 200).
MAX_NAMED: Final = 10
_IN_THE_WAY: Final = re.compile(r"'(.+?)' (?:would be overwritten|not uptodate)")
#: A commit message's summary is cut here (the report's summary is bounded already; this is a guard).
MAX_SUMMARY: Final = 4000
#: The most fleet reads of a `.git` link or an admin dir's `gitdir` file (one path and a newline).
MAX_LINK: Final = 8192


@dataclass(frozen=True)
class Repo:
    """A repository fleet makes worktrees of: its main work tree (None when bare) and common git dir."""

    top: str | None
    common_dir: str


@dataclass(frozen=True)
class Worktree:
    """An agent's worktree as `ensure_worktree` left it: `created` (new), `repaired` (re-added over a
    directory git had lost, or its `.git` link mended), else reused as it was."""

    agent: str
    path: str
    repo: Repo
    created: bool = False
    repaired: bool = False


@dataclass(frozen=True)
class Prepared:
    """An assignment's branch, ready: `base_commit` is verification's baseline; `resumed` when the
    branch existed (an agent killed mid-assignment continues where it was, edits included)."""

    branch: str
    base_commit: str
    resumed: bool


@dataclass(frozen=True)
class Entry:
    path: str
    head: str | None
    branch: str | None
    locked: str | None
    prunable: str | None


@contextlib.contextmanager
def git_errors() -> Iterator[None]:
    """Turn a failing git into `git_failed` (an environment fault with git's own words)."""
    try:
        yield
    except gitrun.GitError as exc:
        raise GitFailed(f"{exc}.", hint="Run the same git command by hand in that directory to see why.") from None


def check_assignment_id(assignment_id: str) -> str:
    if not isinstance(assignment_id, str) or not ASSIGNMENT_ID_RE.match(assignment_id):
        raise InvalidInput(f"{assignment_id!r} is not an assignment id (as- followed by 26 characters).",
                           hint="Use the id `fleet assign` printed.")
    return assignment_id


def check_base(base: str) -> str:
    if not isinstance(base, str) or not BASE_NAME_RE.match(base):
        raise InvalidInput(f"{base!r} is not a branch name fleet uses as a base.",
                           hint="Name a local branch: letters, digits and . _ / + -, not starting with - or .")
    return base


def branch_of(assignment_id: str) -> str:
    """The branch an assignment works on (`fleet/<id>`)."""
    return BRANCH_PREFIX + check_assignment_id(assignment_id)


def open_repo(repo: str | os.PathLike[str]) -> Repo:
    """The repository at `repo` (a work tree of it or its git dir). Raises `repo_invalid`."""
    path = os.path.realpath(os.path.expanduser(os.fspath(repo)))
    with git_errors():
        out = gitrun.run(path, "rev-parse", "--path-format=absolute", "--git-common-dir", "--is-bare-repository",
                         check=False) if os.path.isdir(path) else None
        if out is None:
            raise RepoInvalid(f"{path} is not a git repository git can read.",
                              hint="Point `repo` at a clone (`git clone URL PATH`) or run `git init` there.",
                              repo=path)
        common, bare = out.splitlines()[:2]
    common = os.path.realpath(common)
    # Only messages show `top`: the git dir's parent, the main work tree unless `core.worktree` moved it.
    return Repo(top=None if bare == "true" else os.path.dirname(common), common_dir=common)


def current_branch(repo: str | os.PathLike[str]) -> str | None:
    """The branch the repository's main work tree is on (what `base` defaults to when an agent is first
    started), or None when it is detached, bare, or on a name fleet does not use as a base."""
    r = open_repo(repo)
    with git_errors():
        ref = _head_ref(r.common_dir)
    name = ref.removeprefix("refs/heads/") if ref and ref.startswith("refs/heads/") else None
    return name if name is not None and BASE_NAME_RE.match(name) else None


def ensure_worktree(repo: str | os.PathLike[str], root: str | os.PathLike[str], agent: str, *,
                    base: str | None = None) -> Worktree:
    """Make sure `agent` has a healthy worktree of `repo` at `<root>/<agent>`: reuse it, create it
    (detached at `base`'s tip, else the repository's HEAD), or repair one git lost track of. Raises
    `worktree_locked`, `worktree_foreign` (the path holds another repository's worktree or files),
    `worktree_placement`, `repo_invalid`. Idempotent."""
    if not isinstance(agent, str) or not re.match(vocab.AGENT_NAME, agent):
        raise InvalidInput(f"{agent!r} is not an agent name ({vocab.AGENT_NAME_RULE}).")
    r = open_repo(repo)
    with git_errors():
        root_real = _make_root(root)
        path = os.path.join(root_real, agent)
        g = Git(r.common_dir)
        entries = list_entries(g)
        _check_placement(r, path, entries)
        start = _start_commit(r, base)
        match = next((e for e in entries if os.path.realpath(e.path) == path), None)
        if match is not None:
            if match.locked is not None:
                raise WorktreeLocked(
                    f"The worktree {path} of agent {agent} is locked ({match.locked or 'no reason given'}).",
                    hint=f"If nothing else uses it: git -C {r.top or r.common_dir} worktree unlock {path}",
                    agent=agent, worktree=path)
            if not os.path.isdir(path):  # the directory is gone: its registration is all that is left
                g.run("worktree", "add", "--force", "--detach", path, start)
                return Worktree(agent, path, r, repaired=True)
            if _belongs(path, r):
                return Worktree(agent, path, r)
            # from git's own records, for every worktree: `repair PATH` would follow the link, and a
            # link naming another worktree's admin dir would make git point that one here
            g.run("worktree", "repair", check=False)
            if _belongs(path, r):
                return Worktree(agent, path, r, repaired=True)
            raise _foreign(agent, path, "git lists it as a worktree of this repository, but it no longer is one")
        if os.path.lexists(path):
            if os.path.isdir(path) and not os.path.islink(path) and not os.listdir(path):
                g.run("worktree", "add", "--detach", path, start)
                return Worktree(agent, path, r, created=True)
            raise _foreign(agent, path, "it holds files that are not a worktree of this repository")
        g.run("worktree", "add", "--detach", path, start)
        return Worktree(agent, path, r, created=True)


def prepare_branch(worktree: str | os.PathLike[str], assignment_id: str, base: str, *,
                   repo: str | os.PathLike[str] | None = None) -> Prepared:
    """Put the worktree on `fleet/<assignment id>`, new at the tip of `base`, and return the commit it
    starts from (verification's baseline). If that branch exists the worktree goes (or stays) on it,
    uncommitted edits included, and the baseline is where it forked from `base`. Raises
    `worktree_dirty` (files left from other work: nothing is stashed or lost), `repo_invalid` (no
    such base), `worktree_foreign` (given `repo`, the worktree is no longer one of it)."""
    branch = branch_of(assignment_id)
    check_base(base)
    wt = placed(worktree)
    with git_errors():
        admin = pin(wt, repo)
        g = Git(wt, admin)
        base_tip = rev_commit(wt, f"refs/heads/{base}", admin)
        if base_tip is None:
            raise RepoInvalid(f"The repository of {wt} has no branch {base}.",
                              hint="Set the agent's `base` to an existing branch.", base=base)
        existing = rev_commit(wt, f"refs/heads/{branch}", admin)
        if existing is not None:
            fork = gitrun.run(wt, "merge-base", existing, base_tip, git_dir=admin, check=False)
            base_commit = fork.strip() if fork else base_tip
            if _head_ref(wt, admin) != f"refs/heads/{branch}":
                _refuse_dirty(g, wt, assignment_id)
                _checkout(g, wt, assignment_id, "--no-guess", branch, "--")
            return Prepared(branch, base_commit, resumed=True)
        _refuse_dirty(g, wt, assignment_id)
        _checkout(g, wt, assignment_id, "--no-track", "-b", branch, base_tip, "--")
        return Prepared(branch, base_tip, resumed=False)


def commit_verified(worktree: str | os.PathLike[str], assignment_id: str, summary: str, author: str, *,
                    repo: str | os.PathLike[str] | None = None, paths: Sequence[str] | None = None,
                    expected: Mapping[str, str | None] | None = None) -> str:
    """Commit everything uncommitted and untracked (not ignored) in the worktree to the assignment's
    branch, as `<author> via fleet`, message `<id>: <summary>`; no hook runs. With `paths` (what
    verification saw the agent change), only those: files a check wrote stay uncommitted. Returns
    the branch's tip, which is the old tip when there was nothing to commit. With `expected` (path ->
    the snapshot state verification saw), the staged result must hold exactly that (`stagedcheck`),
    else nothing is committed. Raises `worktree_off_branch`, `worktree_foreign` (given `repo`, the
    worktree is no longer one of it), `work_changed_since_verified`."""
    branch = branch_of(assignment_id)
    if not isinstance(author, str) or not re.match(vocab.AGENT_NAME, author):
        raise InvalidInput(f"{author!r} is not an agent name ({vocab.AGENT_NAME_RULE}).")
    wt = placed(worktree)
    with git_errors():
        admin = pin(wt, repo)
        if _head_ref(wt, admin) != f"refs/heads/{branch}":
            raise WorktreeOffBranch(
                f"The worktree {wt} is not on {branch}, so fleet does not commit its files to that branch.",
                hint=f"Inspect it with `git -C {wt} status`; the branch keeps what was committed to it.",
                worktree=wt, branch=branch)
        g = Git(wt, admin)
        dirty = dirty_files(g) if paths is not None or expected is not None else []
        if paths is None:
            g.run("add", "-A", "--", ".")
        else:
            wanted = set(paths)
            chosen = [p for p in dirty if p in wanted]
            if chosen:  # literal pathspecs on stdin: no name is read as a pattern or an option
                g.run("add", "-A", "--pathspec-from-file=-", "--pathspec-file-nul",
                      stdin="".join(f":(literal){p}\0" for p in chosen).encode("utf-8", "surrogateescape"))
        if expected is not None and (changed := stagedcheck.mismatches(g, expected, dirty)):
            raise WorkChangedSinceVerified(
                f"{named_list(changed)} in {wt} no longer hold what verification saw, so fleet committed nothing.",
                hint="Something wrote them after the snapshot (a check, or a process the agent left running); "
                     "assign the work again.", worktree=wt, files=changed[:200], count=len(changed))
        if g.run("diff", "--cached", "--quiet", "--no-ext-diff", ok=(0, 1)).returncode == 1:
            g.run("commit", "-q", "--no-verify", "--cleanup=whitespace", "-F", "-",
                  stdin=_message(assignment_id, summary).encode("utf-8", "surrogateescape"),
                  env=identity_env(f"{author} via fleet", f"{author}@fleet.invalid"))
        return g.out("rev-parse", "--verify", "HEAD^{commit}").strip()


def release_branch(worktree: str | os.PathLike[str], assignment_id: str, *,
                   repo: str | os.PathLike[str] | None = None) -> bool:
    """Take the worktree off the assignment's branch (HEAD detached at the same commit, files kept),
    so another agent's worktree can check the branch out. False when it was not on it. Raises
    `worktree_foreign` (given `repo`, the worktree is no longer one of it)."""
    branch = branch_of(assignment_id)
    wt = placed(worktree)
    with git_errors():
        admin = pin(wt, repo)
        if _head_ref(wt, admin) != f"refs/heads/{branch}":
            return False
        Git(wt, admin).run("checkout", "-q", "--detach")
        return True


# -- helpers shared with merge ---------------------------------------------------------------------

def list_entries(g: Git) -> list[Entry]:
    """`git worktree list`, parsed (paths as git recorded them)."""
    out: list[Entry] = []
    cur: dict[str, str] = {}
    for field in g.out("worktree", "list", "--porcelain", "-z").split("\0"):
        if field:
            key, _, value = field.partition(" ")
            cur[key] = value
            continue
        if "worktree" in cur:
            out.append(Entry(cur["worktree"], cur.get("HEAD"), cur.get("branch"), cur.get("locked"),
                              cur.get("prunable")))
        cur = {}
    return out


def dirty_files(g: Git, *, untracked: bool = True) -> list[str]:
    """Paths with uncommitted changes (staged or not) and, with `untracked`, untracked files not
    ignored; a submodule counts by its commit only (git starts no process inside it)."""
    raw = g.out("status", "--porcelain=v1", "-z", "--no-renames", "--ignore-submodules=dirty",
                f"--untracked-files={'all' if untracked else 'no'}")
    return sorted({item[3:] for item in raw.split("\0") if len(item) > 3})


def rev_commit(cwd: str, ref: str, git_dir: str | None = None) -> str | None:
    out = gitrun.run(cwd, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", git_dir=git_dir, check=False)
    return out.strip() if out else None


def _head_ref(cwd: str, git_dir: str | None = None) -> str | None:
    out = gitrun.run(cwd, "symbolic-ref", "-q", "HEAD", git_dir=git_dir, check=False)
    return out.strip() if out else None


def contains(g: Git, tip: str, commit: str) -> bool:
    return g.run("merge-base", "--is-ancestor", commit, tip, ok=(0, 1)).returncode == 0


def _make_root(root: str | os.PathLike[str]) -> str:
    path = Path(os.path.expanduser(os.fspath(root)))
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return os.path.realpath(path)


def _check_placement(r: Repo, path: str, entries: list[Entry]) -> None:
    for e in entries:
        other = os.path.realpath(e.path)
        if other == path:
            continue
        if _inside(path, other) or _inside(other, path):
            raise WorktreePlacement(
                f"A worktree at {path} would {'lie inside' if _inside(path, other) else 'hold'} {other}, "
                "a work tree of the same repository.",
                hint="Set `worktrees_dir` (or the state dir) outside the repository's checkouts.", worktree=path)
    if _inside(path, r.common_dir):
        raise WorktreePlacement(f"A worktree at {path} would lie inside the git dir {r.common_dir}.",
                                hint="Set `worktrees_dir` outside the repository.", worktree=path)


def _inside(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def _start_commit(r: Repo, base: str | None) -> str:
    ref = f"refs/heads/{check_base(base)}" if base is not None else "HEAD"
    tip = rev_commit(r.common_dir, ref)
    if tip is None:
        what = f"no branch {base}" if base is not None else "no commit yet"
        raise RepoInvalid(f"{r.top or r.common_dir} has {what}.",
                          hint="Commit something first, or set `base` to an existing branch.")
    return tip


def admin_dirs(common_dir: str) -> dict[str, str]:
    """Each linked worktree of the repository (its path, `placed`) -> its admin dir, as git's own
    files in the common dir record it (`worktrees/<name>/gitdir`); no worktree's `.git` link is read.
    A path two admin dirs claim is left out (neither is trusted). Look one up with `admin_for`."""
    found: dict[str, list[str]] = {}
    try:
        with os.scandir(os.path.join(common_dir, "worktrees")) as it:
            admins = sorted(e.path for e in it if e.is_dir(follow_symlinks=False))
    except OSError:
        return {}
    for admin in admins:
        link = _read_link(os.path.join(admin, "gitdir"))
        if link is not None and os.path.basename(link) == ".git":
            found.setdefault(placed(os.path.join(admin, os.path.dirname(link))), []).append(admin)
    return {path: dirs[0] for path, dirs in found.items() if len(dirs) == 1}


def placed(path: str | os.PathLike[str]) -> str:
    """`path` with its parent's symlinks resolved and its last component kept as it is: a worktree's
    directory lies in a tree its agent may write, so a symlink there is never followed."""
    path = os.path.abspath(os.fspath(path))
    return os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))


def admin_for(path: str | os.PathLike[str], admins: dict[str, str]) -> str | None:
    """The admin dir of the worktree at `path` in `admins` (`admin_dirs`); None when there is none or
    the worktree's directory is a symlink (an agent replaced it: git's records name a directory)."""
    return None if os.path.islink(path) else admins.get(placed(path))


def pin(worktree: str | os.PathLike[str], repo: str | os.PathLike[str] | None = None) -> str:
    """The admin dir git keeps for the worktree in `repo` (default: the repository its `.git` link
    names), which every later git call is given instead of that link. Raises `worktree_foreign` when
    the repository knows no worktree there, or the link names anything else (rewritten by hand or
    by the agent; `fleet up` rewrites it from git's records, never from what it names)."""
    wt = placed(worktree)
    return _pin_repo(wt, open_repo(repo if repo is not None else wt))


def _pin_repo(wt: str, r: Repo) -> str:
    """`pin` of the worktree at `wt` (`placed` already) in the opened repository `r`."""
    admin = admin_for(wt, admin_dirs(r.common_dir))
    link = _read_link(os.path.join(wt, ".git"))
    target = link.removeprefix("gitdir: ") if link is not None and link.startswith("gitdir: ") else None
    if admin is None or target is None or os.path.realpath(os.path.join(wt, target)) != os.path.realpath(admin):
        raise WorktreeForeign(f"{wt} is no longer a worktree of {r.top or r.common_dir}: its `.git` link changed.",
                              hint=f"Inspect {wt} by hand; `fleet up` rewrites its link from git's own records.",
                              worktree=wt)
    return admin


def _belongs(path: str, r: Repo) -> bool:
    try:
        _pin_repo(placed(path), r)
    except WorktreeForeign:
        return False
    return True


def _read_link(path: str) -> str | None:
    """A small regular file's text without its final newline (None: missing, a symlink, a FIFO or
    other special file, too long or unreadable). Never blocks: an agent can leave a FIFO there."""
    raw = read_regular(path, MAX_LINK)
    if raw is None or b"\0" in raw:
        return None
    return raw.decode("utf-8", "surrogateescape").removesuffix("\n").removesuffix("\r") or None


def _foreign(agent: str, path: str, why: str) -> WorktreeForeign:
    return WorktreeForeign(f"fleet cannot use {path} as agent {agent}'s worktree: {why}.",
                           hint=f"Move {path} aside (fleet never deletes it), then start the agent again.",
                           agent=agent, worktree=path)


def _refuse_dirty(g: Git, wt: str, assignment_id: str) -> None:
    dirty = dirty_files(g)
    if dirty:
        raise WorktreeDirty(
            f"The worktree {wt} has uncommitted files ({named_list(dirty)}); assignment {assignment_id} needs "
            "a clean one.",
            hint=f"Commit them to a branch or remove them (`git -C {wt} status` shows them); fleet stashes nothing.",
            worktree=wt, files=dirty[:200], count=len(dirty))


def _checkout(g: Git, wt: str, assignment_id: str, *args: str) -> None:
    """`git checkout`, which never overwrites a file, ignored ones included: one in the way is dirt."""
    res = g.run("checkout", "-q", "--no-overwrite-ignore", *args, check=False)
    if res.returncode == 0:
        return
    blocked = paths_in_the_way(res.stderr)
    if not blocked:
        raise gitrun.GitError(f"git checkout failed in {wt}: {res.stderr.strip()[-500:]}", res.returncode)
    raise WorktreeDirty(
        f"The worktree {wt} has files in the way of assignment {assignment_id}'s branch ({named_list(blocked)}), "
        "ignored ones included.",
        hint="Move or remove them (fleet deletes nothing), then assign again.",
        worktree=wt, files=blocked[:200], count=len(blocked))


def paths_in_the_way(stderr: str) -> list[str]:
    """The paths git names as in the way of a checkout or a merge: `'PATH' would be overwritten`,
    `Entry 'PATH' not uptodate`, or the indented lines after a 'would be overwritten' message."""
    named = _IN_THE_WAY.findall(stderr)
    indented = [line.strip() for line in stderr.splitlines() if line.startswith(("\t", "    "))]
    return sorted(set(named + indented))


def named_list(files: Sequence[str]) -> str:
    head = ", ".join(files[:MAX_NAMED])
    return head + (f" and {len(files) - MAX_NAMED} more" if len(files) > MAX_NAMED else "")


def _message(assignment_id: str, summary: str) -> str:
    text = re.sub(r"[^\S\n]+", " ", re.sub(r"[\x00-\x08\x0b-\x1f\x7f]", "", summary or ""))[:MAX_SUMMARY].strip()
    first, _, rest = text.partition("\n")
    head = f"{assignment_id}: {first}" if first else assignment_id
    return head + (f"\n\n{rest.strip()}\n" if rest.strip() else "\n")
