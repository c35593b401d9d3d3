"""Verification: what an agent really changed, the checks' results, and the verdict on its report.

Order of use (the service's job): `before = snapshot(cwd)` when the assignment is sent (stored as
the ledger's baseline with `to_json`); when the report is in, `after = snapshot(cwd, since=before)`,
`changed = changed_files(before, after)`, then `run_checks(...)` (after the snapshot, so files the
checks themselves write are not blamed on the agent), then the pure `verdict(...)`.

What a snapshot sees:
- In a git work tree: HEAD, and `git status --porcelain=v1 -z --untracked-files=all -- .` limited to
  the cwd, with a content hash of every listed path (and, at report time, of every path listed at
  send time, so a pre-existing change that was edited again, or reverted, is seen). If HEAD moved
  (the agent committed), the paths that differ between the two commits count as changed too.
  Ignored files (`.gitignore`) are not seen: a write into an ignored path is invisible here.
- Elsewhere: a walk of the cwd recording each file's sha256 (or, past the hashing budget, its size
  and mtime_ns), symlinks as their target; cache directories that test runs create
  (`WALK_SKIP_DIRS`) are skipped. Bounded by `MAX_WALK_FILES` and `MAX_HASH_BYTES`; a snapshot that
  hit a cap says so in `notes` and the verification carries that note.
- Neither sees writes outside the cwd (a shell command in a sandbox that allows them), nor a change
  made and undone within the turn.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import stat
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from .checks import CheckResult
from .report import Report
from .scope import Role, allows, relative_to

Verdict = Literal["verified", "rejected"]
ReasonCode = Literal["no_report", "status", "outside_scope", "read_only", "check_failed", "unreported", "unchanged"]

#: Files a walk records; a cwd bigger than this is only partly compared (a note says so).
MAX_WALK_FILES: Final = 20_000
#: Status entries taken from git; more is a generated tree, not an agent's edit.
MAX_STATUS_ENTRIES: Final = 50_000
#: Bytes hashed per snapshot; past it, files are compared by size and mtime_ns.
MAX_HASH_BYTES: Final = 256 * 1024 * 1024
#: A single file larger than this is compared by size and mtime_ns, not hashed.
MAX_HASH_FILE: Final = 16 * 1024 * 1024
#: git must answer quickly; a hung git (a lock, a network filesystem) fails the snapshot instead.
GIT_TIMEOUT: Final = 60.0
#: Paths named per reason; the rest are counted.
MAX_NAMED: Final = 20
WALK_SKIP_DIRS: Final = frozenset({".git", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache",
                                   ".hypothesis", ".tox", ".nox"})
_GIT_ENV: Final = {"GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C", "GIT_TERMINAL_PROMPT": "0"}


class SnapshotError(RuntimeError):
    """The cwd cannot be snapshotted (missing, unreadable, git failing)."""


@dataclass(frozen=True)
class Snapshot:
    """The state of a cwd at one moment. `files` maps cwd-relative POSIX paths to a state string
    (`sha256:<hex>`, `stat:<size>:<mtime_ns>`, `link:<target>`, `dir`) or None (absent). In git mode
    `dirty` is what git status listed and `committed` what changed between `since`'s HEAD and this
    one."""

    cwd: str
    kind: Literal["git", "tree"]
    taken_at: float
    files: Mapping[str, str | None]
    head: str | None = None
    dirty: frozenset[str] = frozenset()
    committed: frozenset[str] = frozenset()
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"version": 1, "cwd": self.cwd, "kind": self.kind, "taken_at": self.taken_at, "head": self.head,
                "files": dict(self.files), "dirty": sorted(self.dirty), "committed": sorted(self.committed),
                "notes": list(self.notes)}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Snapshot:
        if obj.get("version") != 1 or obj.get("kind") not in ("git", "tree"):
            raise ValueError("not a version 1 snapshot")
        return cls(cwd=str(obj["cwd"]), kind=obj["kind"], taken_at=float(obj["taken_at"]),
                   files=dict(obj["files"]), head=obj.get("head"), dirty=frozenset(obj.get("dirty", ())),
                   committed=frozenset(obj.get("committed", ())), notes=tuple(obj.get("notes", ())))


@dataclass(frozen=True)
class Reason:
    code: ReasonCode
    message: str
    paths: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "paths": list(self.paths)}


@dataclass(frozen=True)
class Verification:
    verdict: Verdict
    reasons: tuple[Reason, ...]
    changed: tuple[str, ...]
    checks: tuple[CheckResult, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "reasons": [r.to_dict() for r in self.reasons],
                "changed": list(self.changed), "checks": [c.to_dict() for c in self.checks],
                "notes": list(self.notes)}


# -- snapshots -------------------------------------------------------------------------------------

def snapshot(cwd: str | os.PathLike[str], *, since: Snapshot | None = None, now: float | None = None) -> Snapshot:
    """Snapshot `cwd` (git mode inside a work tree, else a bounded walk). Pass the send-time snapshot
    as `since` at report time so its dirty paths are re-hashed and commits in between are seen.
    Raises `SnapshotError` if the cwd is missing or git fails."""
    root = os.path.abspath(os.fspath(cwd))
    if not os.path.isdir(root):
        raise SnapshotError(f"{root} is not a directory")
    taken = time.time() if now is None else now
    inside = _git(root, "rev-parse", "--is-inside-work-tree", check=False)
    if inside is not None and inside.strip() == "true":
        return _git_snapshot(root, taken, since)
    return _walk_snapshot(root, taken)


def changed_files(before: Snapshot, after: Snapshot) -> list[str]:
    """The cwd-relative paths that changed between the two snapshots, sorted. Pure."""
    if before.kind == "git" and after.kind == "git":
        out = set(after.dirty - before.dirty)
        out |= {p for p in before.dirty if before.files.get(p) != after.files.get(p)}
        out |= after.committed - before.dirty
        return sorted(out)
    keys = set(before.files) | set(after.files)
    return sorted(p for p in keys if before.files.get(p) != after.files.get(p))


def _git_snapshot(root: str, taken: float, since: Snapshot | None) -> Snapshot:
    prefix = (_git(root, "rev-parse", "--show-prefix") or "").strip()
    head_out = _git(root, "rev-parse", "--verify", "-q", "HEAD", check=False)
    head = head_out.strip() if head_out and head_out.strip() else None
    status = _git(root, "status", "--porcelain=v1", "-z", "--untracked-files=all", "--", ".") or ""
    notes: list[str] = []
    dirty: set[str] = set()
    fields = status.split("\0")
    i = 0
    while i < len(fields):
        entry = fields[i]
        i += 1
        if len(entry) < 4:
            continue
        xy, path = entry[:2], entry[3:]
        paths = [path]
        if "R" in xy or "C" in xy:  # -z: the source path follows as its own field
            if i < len(fields) and fields[i]:
                paths.append(fields[i])
            i += 1
        for p in paths:
            rel = _strip_prefix(p, prefix)
            if rel is not None:
                dirty.add(rel)
        if len(dirty) >= MAX_STATUS_ENTRIES:
            notes.append(f"git status listed more than {MAX_STATUS_ENTRIES} paths; the rest were not compared")
            break
    committed: set[str] = set()
    if since is not None and since.kind == "git" and since.head != head:
        committed = _committed(root, prefix, since.head, head)
    budget = [MAX_HASH_BYTES]
    wanted = dirty | (set(since.dirty) if since is not None and since.kind == "git" else set()) | committed
    files = {p: _file_state(os.path.join(root, p), budget) for p in sorted(wanted)}
    if budget[0] <= 0:
        notes.append(f"more than {MAX_HASH_BYTES} bytes to hash; larger files were compared by size and mtime")
    return Snapshot(cwd=root, kind="git", taken_at=taken, files=files, head=head, dirty=frozenset(dirty),
                    committed=frozenset(committed), notes=tuple(notes))


def _committed(root: str, prefix: str, old: str | None, new: str | None) -> set[str]:
    if old is None and new is not None:
        out = _git(root, "ls-tree", "-r", "-z", "--name-only", "--full-tree", new, "--", ".") or ""
    elif old is not None and new is not None:
        out = _git(root, "diff", "--name-only", "-z", "--no-renames", old, new, "--", ".") or ""
    else:
        return set()
    rels = (_strip_prefix(p, prefix) for p in out.split("\0") if p)
    return {r for r in rels if r is not None}


def _walk_snapshot(root: str, taken: float) -> Snapshot:
    files: dict[str, str | None] = {}
    notes: list[str] = []
    budget = [MAX_HASH_BYTES]
    stack = [""]
    capped = False
    while stack and not capped:
        rel_dir = stack.pop()
        try:
            entries = sorted(os.scandir(os.path.join(root, rel_dir)), key=lambda e: e.name)
        except OSError as exc:
            notes.append(f"could not read {rel_dir or '.'}: {exc.strerror}")
            continue
        for entry in entries:
            rel = posixpath.join(rel_dir, entry.name) if rel_dir else entry.name
            try:
                if entry.is_dir(follow_symlinks=False):
                    if entry.name not in WALK_SKIP_DIRS:
                        stack.append(rel)
                    continue
            except OSError:
                continue
            if len(files) >= MAX_WALK_FILES:
                notes.append(f"the walk stopped at {MAX_WALK_FILES} files; changes beyond were not seen")
                capped = True
                break
            files[rel] = _file_state(entry.path, budget)
    if budget[0] <= 0:
        notes.append(f"more than {MAX_HASH_BYTES} bytes to hash; larger files were compared by size and mtime")
    return Snapshot(cwd=root, kind="tree", taken_at=taken, files=files, notes=tuple(notes))


def _file_state(path: str, budget: list[int]) -> str | None:
    """The comparable state of one path; `budget` (bytes left to hash) is spent as files are hashed."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"error:{exc.errno}"
    if stat.S_ISLNK(st.st_mode):
        try:
            return f"link:{os.readlink(path)}"
        except OSError:
            return "link:?"
    if stat.S_ISDIR(st.st_mode):
        return "dir"
    if not stat.S_ISREG(st.st_mode):
        return f"special:{stat.S_IFMT(st.st_mode)}"
    mode = "x" if st.st_mode & 0o111 else ""
    if st.st_size > MAX_HASH_FILE or st.st_size > budget[0]:
        budget[0] -= st.st_size
        return f"stat:{st.st_size}:{st.st_mtime_ns}{mode}"
    digest = hashlib.sha256()
    try:
        with open(path, "rb", buffering=0) as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    except OSError as exc:
        return f"error:{exc.errno}"
    budget[0] -= st.st_size
    return f"sha256:{digest.hexdigest()}{mode}"


def _strip_prefix(path: str, prefix: str) -> str | None:
    if not prefix:
        return path
    return path[len(prefix):] if path.startswith(prefix) else None


def _git(root: str, *args: str, check: bool = True) -> str | None:
    try:
        proc = subprocess.run(["git", "-C", root, *args], capture_output=True, timeout=GIT_TIMEOUT,
                              env={**os.environ, **_GIT_ENV}, stdin=subprocess.DEVNULL, check=False)
    except FileNotFoundError:
        if check:
            raise SnapshotError("git is not installed") from None
        return None
    except subprocess.TimeoutExpired:
        raise SnapshotError(f"git {args[0]} in {root} did not answer within {GIT_TIMEOUT:.0f} s") from None
    if proc.returncode != 0:
        if check:
            err = proc.stderr.decode(errors="replace").strip()[-500:]
            raise SnapshotError(f"git {' '.join(args[:2])} failed in {root}: {err}")
        return None
    return proc.stdout.decode("utf-8", errors="surrogateescape")


# -- the verdict -----------------------------------------------------------------------------------

def verdict(report: Report | None, changed: Iterable[str], write_paths: Sequence[str], role: Role,
            checks: Sequence[CheckResult] = (), notes: Iterable[str] = (), *, cwd: str | None = None) -> Verification:
    """`verified` only when the report's status is done, nothing changed outside `write_paths`
    (anything at all for a non-worker), every check passed, and the report's `changed` list agrees
    with what changed (a reported `dir/` covers changes beneath it; `./x` is `x`; an absolute path
    inside `cwd` is taken relative to it); else `rejected` with every reason, each naming its paths.
    Pure."""
    actual = sorted(set(changed))
    reasons: list[Reason] = []
    if report is None:
        reasons.append(Reason("no_report", "there is no valid fleet-report"))
    elif report.status != "done":
        reasons.append(Reason("status", f"the report's status is {report.status}, not done"))
    if role != "worker" or not write_paths:
        if actual:
            who = "an explorer" if role != "worker" else "this assignment"
            reasons.append(Reason("read_only", f"{who} may not change files, but {_named(actual)} changed",
                                  tuple(actual)))
    else:
        outside = [p for p in actual if not allows(write_paths, p)]
        if outside:
            reasons.append(Reason("outside_scope", f"{_named(outside)} changed outside the write paths "
                                  f"({', '.join(write_paths)})", tuple(outside)))
    for check in checks:
        if not check.passed:
            status = check.exit_status if check.exit_status is not None else 0
            how = f"timed out after {check.duration:.0f} s" if check.timed_out else (
                f"was killed by signal {-status}" if status < 0 else f"exited with status {status}")
            reasons.append(Reason("check_failed", f"the check `{check.cmd}` {how}"))
    if report is not None:
        claimed = [_normal(p, cwd) for p in report.changed]
        unreported = [p for p in actual if not any(_covers(c, p) for c in claimed)]
        unchanged = [c for c in claimed if not any(_covers(c, p) for p in actual)]
        if unreported:
            reasons.append(Reason("unreported", f"{_named(unreported)} changed but the report does not list it",
                                  tuple(unreported)))
        if unchanged:
            reasons.append(Reason("unchanged", f"the report lists {_named(unchanged)} but it did not change",
                                  tuple(unchanged)))
    return Verification(verdict="rejected" if reasons else "verified", reasons=tuple(reasons),
                        changed=tuple(actual), checks=tuple(checks), notes=tuple(notes))


def _normal(path: str, cwd: str | None) -> str:
    """A reported path in the form `changed_files` uses: relative, no `./`, `dir/` kept for a dir."""
    trailing = path.endswith("/")
    norm = posixpath.normpath(path)
    if cwd is not None and posixpath.isabs(norm):
        rel = relative_to(cwd, norm)
        norm = rel if rel is not None else norm
    if norm == ".":
        return "./"
    return norm + "/" if trailing else norm


def _covers(claim: str, path: str) -> bool:
    if claim == "./":
        return True
    return path.startswith(claim) if claim.endswith("/") else path == claim


def _named(paths: Sequence[str]) -> str:
    shown = ", ".join(paths[:MAX_NAMED])
    return shown + (f" and {len(paths) - MAX_NAMED} more" if len(paths) > MAX_NAMED else "")
