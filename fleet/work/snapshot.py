"""Snapshots of an agent's cwd and what changed between two of them: the eyes of verification.

Order of use (the service's job): `before = snapshot(cwd)` when the assignment is sent (kept in the
ledger with `to_json`); when the report is in, `after = snapshot(cwd, since=before)` and
`changed_files(before, after)`, and only then the checks, so that files the checks write (a pytest
`__pycache__`) are never blamed on the agent.

What a snapshot sees: **every file under the cwd**, by content (sha256 and every permission bit),
symlinks by target, whatever any ignore rule says and whatever its name: `.gitignore`d trees,
`__pycache__`, caches, nested repositories and `.git` itself. An agent cannot hide a write from it
with a `.gitignore`, `.git/info/exclude`, `core.excludesFile` or a global ignore file, because none is
read. Empty directories are not recorded.

Inside a git work tree the snapshot also records, through hardened git (`gitrun`, which never reads
the work tree and runs no program a repository names): HEAD, the index's staged entries (what differs
from HEAD: a staged change the work tree does not show counts), and at report time the paths that
differ between the two HEADs (a commit, a reset or an amend counts as a change to those paths; a HEAD
that moved to anything but a descendant, which rewrites history, counts as `<git dir>/HEAD`). When
the repository's own git dir lies inside the cwd (a cwd at the repository's root), its parts are
compared as follows:
- config, hooks/, info/, modules/, worktrees/, packed-refs, refs/ and logs/ (every ref and reflog but
  those of the branch HEAD is on), `shallow`, and anything else in it: by content, like any file (they
  are code or data git will act on later);
- HEAD: which branch it names (or that it is detached); that branch's ref and reflog, `logs/HEAD`,
  `index`, `COMMIT_EDITMSG`, `ORIG_HEAD`, `FETCH_HEAD`: not by content, since a commit rewrites them,
  but by what they mean (HEAD movement and staged entries, above);
- objects/: loose objects and pack files by stat, and where the stat moved (git "freshens" an object
  it writes again) by proof that the content is what it was (`gitobjects`): a new loose object is no
  change; a new pack, or a changed, replaced or removed object file, is.

A snapshot that could not see everything says so in `notes`, and the verdict then rejects the work as
`unverifiable`: more than `MAX_FILES` entries, more than `MAX_HASH_BYTES` to hash (the rest would be
compared by size and mtime only, which a forged mtime defeats), a directory or file it could not read.
Neither mode sees writes outside the cwd (a sandbox that allows them), nor a change made and undone
within the turn.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from . import gitobjects, gitrun

#: Entries (files, symlinks, git objects) a snapshot records; past it the comparison is unverifiable.
MAX_FILES: Final = 100_000
#: Bytes hashed per snapshot; past it the comparison is unverifiable (a stat can be forged).
MAX_HASH_BYTES: Final = 512 * 1024 * 1024
#: Staged index entries recorded; a bigger staged change is a generated tree, not an agent's edit.
MAX_STAGED: Final = 50_000
#: Paths named in a note; the rest are counted.
MAX_NAMED: Final = 10
#: Version of `to_json`; a baseline of another version cannot be compared and is refused.
VERSION: Final = 3
#: Files of the git dir whose content a commit rewrites; compared by meaning (HEAD, staged entries).
GIT_BOOKKEEPING: Final = frozenset({"index", "COMMIT_EDITMSG", "ORIG_HEAD", "FETCH_HEAD", "HEAD", "logs/HEAD"})
_EMPTY_TREE: Final = {"sha1": "4b825dc642cb6eb9a060e54bf8d69288fbee4904",
                      "sha256": "6ef19b41225c5369f1c104d45d8d85efa9b057b53b14b4b9b939dd74decc5321"}


class SnapshotError(RuntimeError):
    """The cwd cannot be snapshotted (missing, git failing or refusing, the repository swapped)."""


@dataclass(frozen=True)
class Snapshot:
    """The state of a cwd at one moment. `files` maps cwd-relative POSIX paths to a state string
    (`sha256:<hex>:<mode>`, `stat:<size>:<mtime_ns>:<mode>` past the hash budget (mode: the
    permission bits in octal), `link:<target>`,
    `obj:<size>:<mtime_ns>:<ctime_ns>:<ino>` for a git object, `symref:<ref>`/`detached` for the git
    dir's HEAD, `special:<type>`, `error:<errno>`). In git mode `git_dir` is the repository's absolute
    git dir, `git_rel` its cwd-relative path when it lies inside the cwd, `staged` maps cwd-relative
    paths to their index entry where it differs from HEAD, and `committed` is what differs between
    `since`'s HEAD and this one. `notes` says what this snapshot could not see."""

    cwd: str
    kind: Literal["git", "tree"]
    taken_at: float
    files: Mapping[str, str | None]
    head: str | None = None
    git_dir: str | None = None
    git_rel: str | None = None
    staged: Mapping[str, str] = field(default_factory=dict)
    committed: frozenset[str] = frozenset()
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"version": VERSION, "cwd": self.cwd, "kind": self.kind, "taken_at": self.taken_at,
                "head": self.head, "git_dir": self.git_dir, "git_rel": self.git_rel, "files": dict(self.files),
                "staged": dict(self.staged), "committed": sorted(self.committed), "notes": list(self.notes)}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Snapshot:
        """Raises `ValueError` for anything but a version 3 snapshot (an older baseline saw less)."""
        if obj.get("version") != VERSION or obj.get("kind") not in ("git", "tree"):
            raise ValueError(f"not a version {VERSION} snapshot (a baseline from an older fleet cannot be compared; "
                             "assign the work again)")
        return cls(cwd=str(obj["cwd"]), kind=obj["kind"], taken_at=float(obj["taken_at"]), files=dict(obj["files"]),
                   head=obj.get("head"), git_dir=obj.get("git_dir"), git_rel=obj.get("git_rel"),
                   staged=dict(obj.get("staged") or {}), committed=frozenset(obj.get("committed", ())),
                   notes=tuple(obj.get("notes", ())))


def snapshot(cwd: str | os.PathLike[str], *, since: Snapshot | None = None, now: float | None = None) -> Snapshot:
    """Snapshot `cwd`. Pass the send-time snapshot as `since` at report time: the mode follows it (a
    cwd that was no repository is walked as a plain tree even if the agent ran `git init`), and a git
    baseline whose repository git can no longer read, or that now resolves to another git dir (a
    swapped `.git`), raises. Raises `SnapshotError` if the cwd is missing or git fails."""
    root = os.path.abspath(os.fspath(cwd))
    if not os.path.isdir(root):
        raise SnapshotError(f"{root} is not a directory")
    taken = time.time() if now is None else now
    repo = _discover(root) if since is None or since.kind == "git" else None
    if since is not None and since.kind == "git":
        if repo is None:
            raise SnapshotError(f"{root} was in a git work tree at send time, and git cannot read it as one now")
        if repo[0] != since.git_dir:
            raise SnapshotError(f"the repository of {root} was {since.git_dir} at send time and is {repo[0]} now")
    if repo is None:
        notes: list[str] = []
        return Snapshot(cwd=root, kind="tree", taken_at=taken, files=_walk(root, None, notes),
                        notes=tuple(notes))
    return _git_snapshot(root, taken, since, *repo)


def changed_files(before: Snapshot, after: Snapshot) -> list[str]:
    """The cwd-relative paths that changed between the two snapshots, sorted. A loose git object that
    appeared is no change (objects are content-addressed); anything else that differs is. Pure."""
    objects = f"{before.git_rel}/" if before.git_rel is not None and before.git_rel == after.git_rel else None
    out: set[str] = set()
    for p in set(before.files) | set(after.files):
        old, new = before.files.get(p), after.files.get(p)
        if old == new or (old is None and objects is not None and p.startswith(objects)
                          and gitobjects.is_loose(p[len(objects):])):
            continue
        out.add(p)
    if before.kind == "git" and after.kind == "git":
        out |= {p for p in set(before.staged) | set(after.staged) if before.staged.get(p) != after.staged.get(p)}
        out |= after.committed
    return sorted(out)


# -- git mode --------------------------------------------------------------------------------------

def _discover(root: str) -> tuple[str, str] | None:
    """(absolute git dir, the cwd's prefix in the work tree), or None outside a work tree or without git."""
    try:
        out = gitrun.run(root, "rev-parse", "--absolute-git-dir", "--is-inside-work-tree", "--show-prefix",
                         check=False)
    except gitrun.GitError as exc:
        if exc.returncode is None and "not installed" in str(exc):
            return None
        raise SnapshotError(str(exc)) from None
    lines = (out or "").split("\n")
    if len(lines) < 3 or lines[1] != "true":
        return None
    return lines[0], lines[2]


def _git(root: str, git_dir: str, *args: str, check: bool = True) -> str | None:
    try:
        return gitrun.run(root, *args, git_dir=git_dir, check=check)
    except gitrun.GitError as exc:
        raise SnapshotError(str(exc)) from None


def _git_snapshot(root: str, taken: float, since: Snapshot | None, git_dir: str, prefix: str) -> Snapshot:
    notes: list[str] = []
    head = (_git(root, git_dir, "rev-parse", "--verify", "-q", "HEAD^{commit}", check=False) or "").strip() or None
    branch = (_git(root, git_dir, "symbolic-ref", "-q", "HEAD", check=False) or "").strip() or None
    rel = os.path.relpath(git_dir, root)
    git_rel = rel.replace(os.sep, "/") if rel != ".." and not rel.startswith(".." + os.sep) else None
    fmt = (_git(root, git_dir, "rev-parse", "--show-object-format") or "").strip()
    if fmt not in _EMPTY_TREE:
        raise SnapshotError(f"the repository of {root} uses object format {fmt!r}, which fleet does not know")
    base = head or _EMPTY_TREE[fmt]
    files = _walk(root, None if git_rel is None else _GitDir(git_rel, branch, fmt, since), notes)
    if git_rel is not None:
        files[f"{git_rel}/HEAD"] = f"symref:{branch}" if branch else "detached"
    raw = _git(root, git_dir, "diff-index", "--cached", "--raw", "-z", "--no-renames", "--full-index", base,
               "--") or ""
    staged = _staged(raw, prefix, notes)
    committed: set[str] = set()
    if since is not None and since.head != head:
        committed = _committed(root, git_dir, prefix, since.head, head)
        if since.head is not None and (head is None or _git(
                root, git_dir, "merge-base", "--is-ancestor", since.head, head, check=False) is None):
            committed.add(f"{rel.replace(os.sep, '/')}/HEAD")  # history rewritten, even with the same tree
    odd = sorted(shown_path(p) for p in [*staged, *committed] if not _is_text(p))
    if odd:
        notes.append(f"git names {_named(odd)}, which are not UTF-8 (rename them)")
        staged = {shown_path(p): v for p, v in staged.items()}
        committed = {shown_path(p) for p in committed}
    return Snapshot(cwd=root, kind="git", taken_at=taken, files=files, head=head, git_dir=git_dir, git_rel=git_rel,
                    staged=staged, committed=frozenset(committed), notes=tuple(notes))


def _staged(raw: str, prefix: str, notes: list[str]) -> dict[str, str]:
    """`diff-index --raw -z` output (`:<mode> <mode> <oid> <oid> <status>` NUL `<path>` NUL ...) as
    {cwd-relative path: "<new mode> <new oid> <status>"}."""
    fields = raw.split("\0")
    staged: dict[str, str] = {}
    for i in range(0, len(fields) - 1, 2):
        meta = fields[i].split(" ")
        rel = _strip_prefix(fields[i + 1], prefix)
        if len(meta) == 5 and rel is not None:
            staged[rel] = f"{meta[1]} {meta[3]} {meta[4]}"
        if len(staged) >= MAX_STAGED:
            notes.append(f"more than {MAX_STAGED} staged entries; the rest were not compared (unstage them, or "
                         "give the agent a smaller cwd)")
            break
    return staged


def _committed(root: str, git_dir: str, prefix: str, old: str | None, new: str | None) -> set[str]:
    if new is None:  # HEAD became unborn: every path of the old commit is gone from history
        out = _git(root, git_dir, "ls-tree", "-r", "-z", "--name-only", "--full-tree", old or "") if old else ""
    elif old is None:
        out = _git(root, git_dir, "ls-tree", "-r", "-z", "--name-only", "--full-tree", new)
    else:
        out = _git(root, git_dir, "diff-tree", "-r", "-z", "--name-only", "--no-renames", old, new)
    rels = (_strip_prefix(p, prefix) for p in (out or "").split("\0") if p)
    return {r for r in rels if r is not None}


def _strip_prefix(path: str, prefix: str) -> str | None:
    if not prefix:
        return path
    return path[len(prefix):] if path.startswith(prefix) else None


# -- the walk --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _GitDir:
    """The repository's own git dir inside the cwd: where it is, the branch HEAD names, the object
    format, and the baseline (to prove a touched object unchanged)."""

    rel: str
    branch: str | None
    fmt: str
    since: Snapshot | None


def _walk(root: str, git: _GitDir | None, notes: list[str]) -> dict[str, str | None]:
    """Every entry under `root`: no directory skipped, no symlink followed anywhere (each directory
    is opened relative to its parent's descriptor with O_NOFOLLOW, so a directory swapped for a
    symlink while fleet walks fails to open instead of leading elsewhere). Inside the repository's
    own git dir (`git`), the bookkeeping files are left to git mode and objects go to `gitobjects`."""
    walker = _Walker(git)
    try:
        top = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise SnapshotError(f"fleet cannot open {root}: {exc.strerror}") from None
    frames = [(top, "", walker.scan(top, ""))]  # (directory fd, its path, subdirectories still to walk)
    try:
        while frames and not walker.capped:
            fd, rel_dir, pending = frames[-1]
            if not pending:
                os.close(fd)
                frames.pop()
                continue
            name = pending.pop()
            rel = f"{rel_dir}/{name}" if rel_dir else name
            try:
                child = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                walker.errors.append(f"{rel}/ ({exc.strerror})")
                continue
            frames.append((child, rel, walker.scan(child, rel)))
    finally:
        for fd, _, _ in frames:
            os.close(fd)
    if walker.capped:
        notes.append(f"the cwd holds more than {MAX_FILES} files; the rest were not compared (give the agent "
                     "a smaller cwd)")
    if walker.unhashed:
        notes.append(f"more than {MAX_HASH_BYTES >> 20} MiB to hash; {_named(sorted(walker.unhashed))} could only "
                     "be compared by size and mtime (remove large files from the cwd, or give the agent a smaller "
                     "cwd)")
    if walker.errors:
        notes.append(f"fleet could not read {_named(sorted(walker.errors))} (make it readable, or keep it out of "
                     "the cwd)")
    return walker.files


_DIR_FLAGS: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS: Final = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class _Walker:
    """What one walk has recorded so far; `scan` records one directory's non-directory entries."""

    def __init__(self, git: _GitDir | None) -> None:
        self.git = git
        self.files: dict[str, str | None] = {}
        self.budget = [MAX_HASH_BYTES]
        self.unhashed: list[str] = []
        self.errors: list[str] = []
        self.capped = False
        self.skip = set() if git is None else {f"{git.rel}/{n}" for n in GIT_BOOKKEEPING} | (
            {f"{git.rel}/{git.branch}", f"{git.rel}/logs/{git.branch}"} if git.branch else set())
        self.objects = None if git is None else f"{git.rel}/objects/"

    def scan(self, fd: int, rel_dir: str) -> list[str]:
        """Record the entries of the directory open at `fd`; return its subdirectories' names."""
        try:
            with os.scandir(fd) as it:
                entries = list(it)
        except OSError as exc:
            self.errors.append(f"{rel_dir or '.'}/ ({exc.strerror})")
            return []
        subdirs: list[str] = []
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            if not _is_text(entry.name):  # bytes that are no UTF-8: no ledger or terminal can carry the path
                self.errors.append(f"{shown_path(rel)} (a name that is not UTF-8)")
                continue
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError as exc:
                self.errors.append(f"{rel} ({exc.strerror})")
                continue
            if is_dir:
                subdirs.append(entry.name)
                continue
            if rel in self.skip:
                continue
            if len(self.files) >= MAX_FILES:
                self.capped = True
                return []
            if self.git is not None and self.objects is not None and rel.startswith(self.objects) \
                    and gitobjects.is_object(inner := rel[len(self.git.rel) + 1:]):
                state = self._object_state(self.git, fd, entry.name, inner, rel)
            else:
                state = _file_state(fd, entry, self.budget)
                if state.startswith("stat:"):
                    self.unhashed.append(rel)
            if state.startswith("error:"):
                self.errors.append(f"{rel} ({state})")
            self.files[rel] = state
        return subdirs

    def _object_state(self, git: _GitDir, dir_fd: int, name: str, inner: str, rel: str) -> str:
        """An object file's state; where its stat moved since the baseline but its content is proven
        the same, the baseline's state (so the comparison sees no change). Unprovable: noted."""
        state = gitobjects.state(dir_fd, name, inner, git.fmt)
        old = git.since.files.get(rel) if git.since is not None else None
        if old is None or old == state or not old.startswith("obj:") or not state.startswith("obj:"):
            return state
        if gitobjects.same_content(dir_fd, name, inner, old, git.fmt, self.budget):
            return old
        if self.budget[0] < 0:
            self.unhashed.append(rel)
        return state


def _file_state(dir_fd: int, entry: os.DirEntry[str], budget: list[int]) -> str:
    """The comparable state of one non-directory entry; `budget` (bytes left to hash) is spent."""
    name = entry.name
    try:
        if entry.is_symlink():
            return f"link:{os.readlink(name, dir_fd=dir_fd)}"
        if not entry.is_file(follow_symlinks=False):
            return f"special:{stat.S_IFMT(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode):o}"
        fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        return "error:gone"
    except OSError as exc:
        return f"error:{exc.errno}"
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # swapped for a FIFO or a device since the scandir
            return f"special:{stat.S_IFMT(st.st_mode):o}"
        mode = f":{stat.S_IMODE(st.st_mode):o}"  # every permission bit: setuid, sticky, group/other write
        if st.st_size > budget[0]:
            budget[0] = -1
            return f"stat:{st.st_size}:{st.st_mtime_ns}{mode}"
        digest = hashlib.sha256()
        size = 0
        while chunk := os.read(fd, 1 << 20):
            digest.update(chunk)
            size += len(chunk)
        budget[0] -= size
        return f"sha256:{digest.hexdigest()}{mode}"
    except OSError as exc:
        return f"error:{exc.errno}"
    finally:
        os.close(fd)


_NOT_UTF8: Final = re.compile("[\udc80-\udcff]")


def _is_text(name: str) -> bool:
    """Whether `name` (decoded with surrogateescape, as os and gitrun decode) was valid UTF-8."""
    return _NOT_UTF8.search(name) is None


def shown_path(path: str) -> str:
    """`path` with each byte that was not UTF-8 written as `\\xNN`: text any ledger or terminal takes."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _named(paths: list[str]) -> str:
    shown = ", ".join(paths[:MAX_NAMED])
    return shown + (f" and {len(paths) - MAX_NAMED} more" if len(paths) > MAX_NAMED else "")

