"""Does the index hold what verification saw? The last check before fleet commits verified work.

Verification hashes the worktree's files (`fleet.work.snapshot`: `sha256:<hex>:<mode>`, `link:<target>`,
None for a deleted file); the commit is made from the index after `git add`, moments later. A check
command runs the agent's own code (a test's conftest) in its sandbox, and a process the agent left
running can write meanwhile: either can swap a verified file for something else before `add` reads it.
So once the index is final (its admin dir lies outside every agent's tree), each verified path's entry
is compared with the state verification recorded. A blob matches when its bytes, or its bytes as a
checkout would write them (`cat-file --filters`: eol, ident, encoding; no filter program runs, see
`gitwt`), hash to the recorded content. A state that holds no content hash (past the snapshot's hash
budget, a special file, an error) cannot be matched, so it counts as a mismatch: fleet does not
commit what it cannot show was verified. And nothing else may be staged: an entry the index holds
beyond the verified paths (put there by anyone who could write the index) is a mismatch too.

A file git ignores is not committed (as ever): a verified path that is neither tracked nor dirty but
still there is left out of the comparison. So that nothing verified can be dropped or converted that
way, a `.gitignore` or `.gitattributes` that changed after verification (dirty, yet not among the
verified paths) is a mismatch, and so is one on disk at or above a verified path that the index does
not hold exactly as it is (one that ignores itself, or one written after the dirty list was taken).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Collection, Mapping
from typing import IO

from fleet.fsutil import read_regular

from .gitwt import Git

#: Files that change what `git add` stores without being what is committed: a `.gitignore` can drop a
#: verified file, a `.gitattributes` can convert one (`working-tree-encoding`, eol) so that the blob
#: matches the verified bytes only through a conversion that is not committed with it.
_STEERING = frozenset({".gitignore", ".gitattributes"})

#: Index modes of a regular file (executable or not) and of a symlink.
_FILE_MODES = {"100644": False, "100755": True}
#: A `.gitignore` or `.gitattributes` bigger than this is not compared but refused.
_MAX_STEERING = 1 << 20
_LINK_MODE = "120000"


def index_entries(g: Git) -> dict[str, tuple[str, str]]:
    """The index's stage-0 entries: path -> (mode, object id)."""
    out: dict[str, tuple[str, str]] = {}
    for item in g.out("ls-files", "--stage", "-z").split("\0"):
        meta, _, path = item.partition("\t")
        fields = meta.split(" ")
        if path and len(fields) == 3 and fields[2] == "0":
            out[path] = (fields[0], fields[1])
    return out


def mismatches(g: Git, expected: Mapping[str, str | None], dirty: Collection[str]) -> list[str]:
    """The paths of `expected` (relative to the worktree's top, `g.cwd`) whose index entry is not the
    state verification recorded, the paths staged against HEAD that `expected` does not name, and
    a changed `.gitignore` or `.gitattributes` it does not name, sorted. `dirty`: `dirty_files` before `git add`."""
    entries = index_entries(g)
    staged = g.out("diff-index", "--cached", "--name-only", "-z", "--no-renames", "HEAD", "--").split("\0")
    extra = {p for p in staged if p and p not in expected}
    extra |= {p for p in dirty if os.path.basename(p) in _STEERING and p not in expected}
    extra |= _uncommitted_steering(g, expected, entries)
    ignored = {p for p in expected if p not in entries and p not in dirty and _still_there(g.cwd, p)}
    return sorted(extra | {p for p, state in expected.items()
                           if p not in ignored and not _matches(g, p, state, entries.get(p))})


def _uncommitted_steering(g: Git, expected: Collection[str], entries: Mapping[str, tuple[str, str]]) -> set[str]:
    """Each `.gitignore` and `.gitattributes` now on disk in a directory at or above a verified path
    that the index does not hold exactly as it is on disk. The `dirty` list misses one that ignores
    itself (`*`), and one written after it was taken; either would steer `add` (drop a verified file,
    convert one) and the `--filters` comparison without being committed. Read after `add`, so one the
    check cannot see was not there for `add` to read either, or it is in the index."""
    dirs = {""}
    for path in expected:
        d = os.path.dirname(path)
        while d and d not in dirs:
            dirs.add(d)
            d = os.path.dirname(d)
    out = set()
    for d in dirs:
        for name in _STEERING:
            rel = os.path.join(d, name) if d else name
            full = os.path.join(g.cwd, rel)
            if not os.path.lexists(full):
                continue  # a tracked one deleted since: a staged deletion, or dirty (above)
            data = read_regular(full, _MAX_STEERING)
            entry = entries.get(rel)
            if data is None or entry is None or not _matches(g, rel, _file_state(data, entry[0]), entry):
                out.add(rel)
    return {rel for rel in out if not _inside_ignored_dir(g, os.path.dirname(rel), out, entries)}


def _inside_ignored_dir(g: Git, directory: str, uncommitted: Collection[str],
                        entries: Mapping[str, tuple[str, str]]) -> bool:
    """Whether `directory` is ignored by rules that are committed (a `.gitignore` the index holds as it
    is on disk, `info/exclude`, the user's excludes): then nothing under it is committed whatever the
    steering files in it say (a virtualenv's own `.gitignore` of `*` inside an ignored `.venv/`). The
    rule that decides must not be one of the `uncommitted` files."""
    if not directory:
        return False
    done = g.run("check-ignore", "-v", "-z", "--no-index", "--stdin", ok=(0, 1),
                 stdin=directory.encode("utf-8", "surrogateescape") + b"\0")
    fields = done.stdout.split("\0")
    if done.returncode != 0 or len(fields) < 4:
        return False
    source, pattern = fields[0], fields[2]
    if not source or pattern.startswith("!") or source in uncommitted:
        return False
    return os.path.basename(source) not in _STEERING or source in entries


def _file_state(data: bytes, mode: str) -> str:
    """A snapshot-style state for `data` with the index entry's executable bit (only the bytes count)."""
    return f"sha256:{hashlib.sha256(data).hexdigest()}:{'755' if mode == '100755' else '644'}"


def _still_there(top: str, rel: str) -> bool:
    """`rel` exists under `top` through real directories only: a verified file reached through a
    directory the agent swapped for a symlink afterwards is not "still there" (git would not commit it)."""
    full = os.path.join(top, rel)
    parent = os.path.dirname(full)
    return os.path.realpath(parent) == os.path.normpath(parent) and os.path.lexists(full)


def _matches(g: Git, path: str, state: str | None, entry: tuple[str, str] | None) -> bool:
    if state is None:
        return entry is None
    if entry is None:
        return False
    mode, oid = entry
    kind, _, rest = state.partition(":")
    if kind == "link":
        target = rest.encode("utf-8", "surrogateescape")
        return mode == _LINK_MODE and _digest(g, ("cat-file", "blob", oid)) == hashlib.sha256(target).hexdigest()
    if kind != "sha256" or mode not in _FILE_MODES:
        return False
    digest, _, perms = rest.partition(":")
    try:
        executable = int(perms, 8) & 0o100 != 0
    except ValueError:
        return False
    if executable != _FILE_MODES[mode]:
        return False
    return _digest(g, ("cat-file", "blob", oid)) == digest or \
        _digest(g, ("cat-file", "--filters", f"--path={path}", oid)) == digest


def _digest(g: Git, args: tuple[str, ...]) -> str | None:
    """sha256 of `git ARGS`'s stdout, streamed (a verified file may be hundreds of MB); None when git
    fails or runs past `gitrun.TIMEOUT`."""
    def hash_all(stdout: IO[bytes]) -> tuple[str, bool]:
        digest = hashlib.sha256()
        while chunk := stdout.read(1 << 20):
            digest.update(chunk)
        return digest.hexdigest(), False

    digest, code = g.stream(args, hash_all)
    return digest if code == 0 else None
