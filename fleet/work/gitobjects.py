"""Git's object files compared without hashing every pack at every snapshot.

A loose object (`objects/ab/cdef...`) is named by the hash of its content, and each pack file
(`objects/pack/pack-*.{pack,idx,rev,bitmap,mtimes}`) ends with the hash of everything before it. git
never rewrites either, but it does touch them: writing an object that exists already "freshens" the
old file's mtime (and so its ctime). So an object file is recorded by its stat and, for a pack file,
its trailing hash (`state`); when the stat moved since the baseline, `same_content` proves the
content unchanged by recomputing the hash (a loose object against its name, a pack file against the
trailer recorded at baseline). Only a file that fails that proof counts as changed. A new loose
object is no change (git reads packs first, so it shadows nothing); a new pack, or a removed object
file, is.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import zlib
from typing import Final

_FLAGS: Final = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
#: Bytes of a hash per object format.
HASH_LEN: Final = {"sha1": 20, "sha256": 32}
#: An object file, relative to the git dir.
OBJECT: Final = re.compile(r"objects/(?:(?P<dir>[0-9a-f]{2})/(?P<rest>[0-9a-f]{38}|[0-9a-f]{62})"
                           r"|pack/pack-[0-9a-f]{40,64}\.(?:pack|idx|rev|bitmap|mtimes))")
#: A loose object larger than this (compressed, or inflated: a zip bomb) cannot be proven, so it counts
#: as changed.
MAX_LOOSE: Final = 64 * 1024 * 1024


def is_object(inner: str) -> bool:
    """Whether `inner` (a path relative to the git dir) names an object file."""
    return OBJECT.fullmatch(inner) is not None


def is_loose(inner: str) -> bool:
    """Whether `inner` names a loose object. Only a new loose object is no change: git looks in packs
    first, so a new pack could shadow an existing loose object with other content under its name."""
    m = OBJECT.fullmatch(inner)
    return m is not None and m.group("dir") is not None


def state(dir_fd: int, name: str, inner: str, fmt: str) -> str:
    """`obj:<size>:<mtime_ns>:<ctime_ns>:<ino>:<trailer hex or ->` of the file `name` in the
    directory open at `dir_fd`, or `error:<errno>`."""
    try:
        fd = os.open(name, _FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        return f"error:{exc.errno}"
    try:
        st = os.fstat(fd)
        trailer = "-"
        n = HASH_LEN.get(fmt, 20)
        if inner.startswith("objects/pack/") and st.st_size >= n:
            trailer = os.pread(fd, n, st.st_size - n).hex()
        return f"obj:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}:{trailer}"
    except OSError as exc:
        return f"error:{exc.errno}"
    finally:
        os.close(fd)


def same_content(dir_fd: int, name: str, inner: str, before: str, fmt: str, budget: list[int]) -> bool:
    """Whether the object file `name` (in `dir_fd`) still holds what its baseline state `before` described:
    a loose object hashes to its name, a pack file's body hashes to the trailer it had at baseline.
    Spends `budget` (bytes left to hash); False when it cannot prove it (over budget, unreadable)."""
    m = OBJECT.fullmatch(inner)
    if m is None or fmt not in HASH_LEN or not before.startswith("obj:"):
        return False
    try:
        fd = os.open(name, _FLAGS, dir_fd=dir_fd)
    except OSError:
        return False
    with open(fd, "rb", buffering=0) as f:
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_size > budget[0] or (m.group("dir") and st.st_size > MAX_LOOSE):
                budget[0] = -1 if stat.S_ISREG(st.st_mode) else budget[0]
                return False
            budget[0] -= st.st_size
            data = f.read()
        except OSError:
            return False
    if m.group("dir"):
        return _inflated_hash(data, fmt) == m.group("dir") + m.group("rest")
    n = HASH_LEN[fmt]
    trailer = before.rsplit(":", 1)[1]
    return len(data) >= n and data[-n:].hex() == trailer and hashlib.new(fmt, data[:-n]).hexdigest() == trailer


def _inflated_hash(data: bytes, fmt: str) -> str | None:
    """The hash of `data` inflated, in bounded steps; None if it is no zlib stream or inflates past
    `MAX_LOOSE`."""
    digest = hashlib.new(fmt)
    inflater = zlib.decompressobj()
    out = 0
    try:
        chunk = inflater.decompress(data, 1 << 20)
        while chunk:
            out += len(chunk)
            if out > MAX_LOOSE:
                return None
            digest.update(chunk)
            chunk = inflater.decompress(inflater.unconsumed_tail, 1 << 20)
    except zlib.error:
        return None
    return digest.hexdigest() if inflater.eof else None
