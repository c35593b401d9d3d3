"""Write scope: which paths an assignment may write, the paths a patch writes, and the check between.

A scope is a tuple of entries relative to the agent's cwd, in one normal form: POSIX, no `.` or `..`
components, a trailing `/` for a directory (everything beneath it may be written) and none for a
single file; `./` is the whole cwd. An empty scope means the assignment writes nothing (explorers
always have one). `normalize_scope` turns what a user typed into that form at assign time and says
what is wrong with each bad entry; `check_writes` checks written paths against a scope.

Two layers, both applied by `check_writes`:
- lexical (pure): the path is joined to the cwd the tool ran in and normalised, so `docs/../x` and
  `../elsewhere` are caught however they are spelled;
- on disk (`follow_links=True`): symlinks in the existing part of the path are resolved and the real
  path must also be inside the real path of a scope entry, so a link `docs/out -> /etc` does not
  widen `docs/`. A link created after the check (by a shell command, say) is not seen here; the
  after-turn comparison in `verify` stays the final word.

The hook process loads it (`fleet.hooks` says what that asks of a module).
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

Role = Literal["explorer", "worker", "lead"]

#: An assignment names a handful of paths; more is a sign of a glob expanded by a shell.
MAX_SCOPE_ENTRIES: Final = 64
#: Linux PATH_MAX.
MAX_PATH_CHARS: Final = 4096
#: File operations one patch may name; a patch with more is refused whole (never judged in part).
MAX_PATCH_PATHS: Final = 2000
#: A longer patch is refused whole (Codex passes the whole patch to the hook).
MAX_PATCH_CHARS: Final = 8 * 1024 * 1024

WHOLE_CWD: Final = "./"
#: The file-operation headers of Codex's apply_patch format. Codex's parser (0.169) splits the patch on
#: `\n` (dropping one `\r` before it), trims each hunk header of Unicode whitespace before matching
#: it, so `  *** Add File: ../x` is a header, and matches `*** Move to: ` only at the start of the line.
_HEADERS: Final = ("*** Add File: ", "*** Delete File: ", "*** Update File: ")
_MOVE: Final = "*** Move to: "
#: Whitespace exactly as Rust's `str::trim` (Unicode White_Space) sees it, so a header's path is the
#: one Codex writes. Not Python's `str.strip`, which also drops U+001C..U+001F: a trailing one would
#: be judged as `src/a.py` while Codex writes `src/a.py\x1f` (which `check_writes` refuses).
_TRIM: Final = "".join(chr(c) for c in (*range(0x09, 0x0E), 0x20, 0x85, 0xA0, 0x1680,
                                         *range(0x2000, 0x200B), 0x2028, 0x2029, 0x202F, 0x205F, 0x3000))
#: Something that looks like a file header but is not one exactly: Codex's reading of it is not
#: something to guess.
_HEADERISH: Final = re.compile(r"\*\s*\*.*?(?:add|delete|update)\s*file|\*\s*\*.*?move\s*to", re.IGNORECASE)
_BAD_CHARS: Final = re.compile(r"[\x00-\x1f]")

Why = Literal["unusable", "read_only", "escapes_cwd", "outside_scope", "symlink", "unreadable_patch"]


@dataclass(frozen=True)
class Violation:
    """One written path the scope does not allow: as written, where it lands, and why (`why` is the
    stable code, `message` a short English explanation naming the path)."""

    path: str
    resolved: str
    why: Why
    message: str


@dataclass(frozen=True)
class NormalizedScope:
    """Entries in normal form (deduplicated, in the order given) and one problem per bad entry."""

    entries: tuple[str, ...]
    problems: tuple[str, ...]


@dataclass(frozen=True)
class PatchWrites:
    """The paths a patch may write, or why they cannot be known (then the patch must be refused)."""

    paths: tuple[str, ...]
    problem: str | None = None


def patch_writes(patch: object) -> PatchWrites:
    """Every path an apply_patch text may write (added, updated, deleted, or moved to), as written,
    in order, each once: a superset of what Codex's parser takes as headers (any line that is a
    header once trimmed, a `Move to` at the start of a line both as is and trimmed). A patch too long,
    with too many headers, or with a line that looks like a header but is not one exactly, gets a
    `problem` instead: the caller refuses it, since a check that cannot see every path says no."""
    if not isinstance(patch, str):
        return PatchWrites((), "the patch is not text")
    if len(patch) > MAX_PATCH_CHARS:
        return PatchWrites((), f"the patch is longer than {MAX_PATCH_CHARS} characters")
    seen: dict[str, None] = {}
    for raw in patch.split("\n"):
        line = raw[:-1] if raw.endswith("\r") else raw
        trimmed = line.strip(_TRIM)
        found = [trimmed[len(h):] for h in (*_HEADERS, _MOVE) if trimmed.startswith(h)]
        if line.startswith(_MOVE):
            found.append(line[len(_MOVE):])
        if not found and trimmed.startswith("*") and _HEADERISH.match(trimmed):
            return PatchWrites((), f"the line {_show(trimmed)} looks like a file header but is not one exactly")
        for path in found:
            if not path.strip(_TRIM):
                return PatchWrites((), f"the line {_show(trimmed)} names no file")
            seen.setdefault(path, None)
        if len(seen) > MAX_PATCH_PATHS:
            return PatchWrites((), f"the patch names more than {MAX_PATCH_PATHS} files")
    return PatchWrites(tuple(seen))


def patch_paths(patch: str) -> list[str]:
    """`patch_writes`' paths (empty when it has a problem: use `patch_writes` to refuse those)."""
    return list(patch_writes(patch).paths)


def normalize_scope(entries: Iterable[str], cwd: str, *, follow_links: bool = True) -> NormalizedScope:
    """Bring user-typed write (or read) paths to normal form relative to `cwd` (absolute).

    Refused, each with a problem naming it: empty or control characters, a path outside `cwd`
    (absolute or via `..`), and with `follow_links` one whose existing part resolves outside the real
    `cwd`. With `follow_links`, an entry without a trailing `/` that is an existing directory is
    treated as that directory.
    """
    out: dict[str, None] = {}
    problems: list[str] = []
    root = posixpath.normpath(cwd)
    for raw in entries:
        if len(out) + len(problems) >= MAX_SCOPE_ENTRIES:
            problems.append(f"more than {MAX_SCOPE_ENTRIES} paths; name directories instead")
            break
        if not isinstance(raw, str) or not raw or len(raw) > MAX_PATH_CHARS or _BAD_CHARS.search(raw):
            problems.append(f"{_show(raw)} is not a usable path")
            continue
        rel = relative_to(root, raw)
        if rel is None:
            problems.append(f"{raw!r} is outside the working directory {root}")
            continue
        is_dir = raw.endswith(("/", "/.", "/..")) or rel == "."
        if follow_links:
            full = posixpath.join(root, rel)
            real, real_root = os.path.realpath(full), os.path.realpath(root)
            if not _inside(real, real_root):
                problems.append(f"{raw!r} resolves through a symlink to {real}, outside the working directory")
                continue
            is_dir = is_dir or os.path.isdir(full)
        out.setdefault(WHOLE_CWD if rel == "." else rel + "/" if is_dir else rel, None)
    return NormalizedScope(tuple(out), tuple(problems))


def relative_to(cwd: str, path: str) -> str | None:
    """`path` (absolute, or relative to `cwd`) as a normalised path relative to `cwd` (`.` for `cwd`
    itself), or None when it lands outside `cwd`. Lexical only."""
    root = posixpath.normpath(cwd)
    full = posixpath.normpath(posixpath.join(root, path))
    if full == root:
        return "."
    if not _inside(full, root):
        return None
    return full[len(root):].lstrip("/")


def allows(scope: Sequence[str], rel: str) -> bool:
    """Whether the normal-form `scope` covers `rel` (a normalised path relative to cwd). Pure."""
    for entry in scope:
        if entry == WHOLE_CWD:
            return rel != "."
        if entry.endswith("/"):
            if rel.startswith(entry):
                return True
        elif rel == entry:
            return True
    return False


def check_writes(
    written: Iterable[str],
    *,
    cwd: str,
    scope: Sequence[str],
    role: Role = "worker",
    tool_cwd: str | None = None,
    follow_links: bool = True,
) -> list[Violation]:
    """Every path in `written` that the assignment may not write, with the reason.

    `cwd` is the agent's working directory (the scope is relative to it); `tool_cwd` is the directory
    the tool ran in (the hook payload's `cwd`), against which relative written paths resolve; it
    defaults to `cwd`. A non-worker role, or an empty scope, may write nothing.
    """
    root = posixpath.normpath(cwd)
    base = posixpath.normpath(tool_cwd or cwd)
    read_only = role != "worker" or not scope
    real_root = os.path.realpath(root) if follow_links else root
    out: list[Violation] = []
    for path in written:
        if not isinstance(path, str) or not path or len(path) > MAX_PATH_CHARS or not path.isprintable():
            out.append(Violation(str(path), "", "unusable", f"{_show(path)} is not a usable path"))
            continue
        full = posixpath.normpath(posixpath.join(base, path))
        if read_only:
            why = "an explorer may not write files" if role != "worker" else "this assignment may not write files"
            out.append(Violation(path, full, "read_only", f"{path} ({why})"))
            continue
        rel = relative_to(root, full)
        if rel is None:
            out.append(Violation(path, full, "escapes_cwd", f"{path} (outside the working directory {root})"))
            continue
        if not allows(scope, rel):
            out.append(Violation(path, full, "outside_scope", f"{rel} (outside the write paths)"))
            continue
        if follow_links:
            real = os.path.realpath(full)
            real_rel = relative_to(real_root, real)
            if real_rel is None or not allows(_real_scope(scope, root, real_root), real_rel):
                out.append(Violation(path, full, "symlink", f"{rel} (a symlink leads it to {real})"))
    return out


def _real_scope(scope: Sequence[str], root: str, real_root: str) -> list[str]:
    """The scope entries with symlinks in their existing part resolved, relative to the real cwd."""
    out: list[str] = []
    for entry in scope:
        if entry == WHOLE_CWD:
            out.append(entry)
            continue
        real = os.path.realpath(posixpath.join(root, entry.rstrip("/")))
        rel = relative_to(real_root, real)
        if rel is not None:
            out.append(WHOLE_CWD if rel == "." else rel + "/" if entry.endswith("/") else rel)
    return out


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
