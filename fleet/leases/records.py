"""The lease files of one agent: the record, its token reservation, and what to do with damaged ones.

Per agent, under `<state_dir>/leases/` (the directory is 0700, every file 0600, none may be a symlink):

- `<agent>.json`: the record. A held lease, or after release a free record that keeps the last
  token. Written only under the agent's lock; read without it when its checksum matches (below).
- `.<agent>.json.spare`: the next record is written here, then swapped with `<agent>.json` in one
  atomic rename (`renameat2(RENAME_EXCHANGE)`); the old record's inode becomes the next spare.
  Where the exchange is unsupported, a plain temp file + `os.replace` is used instead.
- `<agent>.seq`: the token reservation, written durably with `fsutil.write_json_atomic` (fsync of
  file and directory) before any record uses a token above it. Tokens are strictly increasing but
  not contiguous: a repair, or a reboot after a power loss, skips to the end of the reservation.
- `<agent>.lock`: the per-agent flock; `fleet.leases.store` owns it.

Why not temp + fsync + rename for the record: the bar is a claim+release rate of at least 1,000/s.
`bench/bench_leases.py --compare-writes` on the 2-core VM this was built on (ext4, other work on the
disk): the fsynced temp + rename write held 570-720/s, an unsynced one 750-1,000/s (each write
creates an inode, and `os.replace` onto an existing name adds an ext4 auto_da_alloc flush), the
exchange into a reused inode ~2,000/s. A process crash loses nothing (the page cache survives, and the
exchange is atomic). An OS crash can roll the record back or tear it: a torn record fails closed,
and a record from an earlier boot (each record carries the boot id it was written in) is trusted
only up to the durable `.seq` reservation, so the next token still starts above everything that
boot handed out. Holders do not outlive the machine's crash anyway; what must survive it is token
order.

The price of rewriting the spare in place: a reader that opened the record just before an exchange
could see the next write half done. So every record carries `check`, the CRC-32 of its other
fields, and `peek_record` (no lock) trusts only a record whose check matches; anything else
(a write in progress, a record from before checks) is read again under the lock, where a mismatch
means damage (an OS crash tore it) and fails closed.

A corrupt, truncated, wrong-shaped or symlinked file fails closed with `LeaseCorrupt` until
`fleet lease-repair` moves it aside. Nothing here locks, decides or audits; `store` does, and calls
in with the lock held for everything but `peek_record`.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import re
import stat
import time
import zlib
from pathlib import Path
from typing import Any, Final, NamedTuple

from fleet import fsutil
from fleet.errors import LeaseCorrupt

from .rules import StoredRecord, parse_record

#: Tokens reserved per durable `.seq` write. The reservation is what a power loss can skip.
TOKEN_BLOCK: Final = 1000
#: Largest record or reservation file fleet reads; anything bigger is corrupt.
MAX_RECORD_BYTES: Final = 64 * 1024
_TOKEN_IN_TEXT: Final = re.compile(rb'"(?:token|reserved)"\s*:\s*(\d{1,18})')
#: `renameat2` flag: swap two existing names atomically (Linux >= 3.15; ext4, xfs, btrfs, tmpfs).
RENAME_EXCHANGE: Final = 2
_AT_FDCWD: Final = -100
#: The exchange pays off over many writes (an MCP server, the watchdog); reaching it costs a ~3 ms
#: ctypes import, more than a CLI call's one or two writes gain, so those go by `os.replace`.
REPLACE_FIRST: Final = 2
_exchange_supported = True
_writes = 0


class RecordPaths(NamedTuple):
    """The file names of one agent's lease; `agent` has been validated before any path is built."""

    agent: str
    record: Path
    lock: Path
    seq: Path
    spare: Path

    @classmethod
    def of(cls, lease_dir: Path, agent: str) -> RecordPaths:
        return cls(
            agent,
            lease_dir / f"{agent}.json",
            lease_dir / f"{agent}.lock",
            lease_dir / f"{agent}.seq",
            lease_dir / f".{agent}.json.spare",
        )


@functools.cache
def boot_id() -> str:
    """This boot's id, or "" where unknown (every record then counts as from an earlier boot)."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def corrupt(agent: str, path: Path, reason: str) -> LeaseCorrupt:
    return LeaseCorrupt(
        f"The lease file {path} is unusable ({reason}); fleet will not guess who holds agent {agent}.",
        hint=f"Run `fleet lease-repair {agent}` to move it aside and free the agent.",
        agent=agent,
        path=str(path),
    )


def read_file(agent: str, path: Path) -> bytes | None:
    """The bytes of a lease file, None when it does not exist; anything unsafe or oversized is corrupt."""
    try:
        raw = fsutil.read_bytes_nofollow(path, limit=MAX_RECORD_BYTES + 1)
    except FileNotFoundError:
        return None
    except fsutil.UnsafePath as exc:
        raise corrupt(agent, path, "a symlink or not a regular file") from exc
    if len(raw) > MAX_RECORD_BYTES:
        raise corrupt(agent, path, "too large")
    return raw


#: What `peek_record` returns when it cannot vouch for what it read: read again under the lock.
UNSURE: Final = object()


def _checksum(obj: dict[str, Any]) -> int:
    return zlib.crc32(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode())


def encode_record(obj: dict[str, Any]) -> bytes:
    """The record file's bytes: `obj` plus `check`, the CRC-32 of `obj` in canonical JSON."""
    return (json.dumps({**obj, "check": _checksum(obj)}, indent=2, sort_keys=True) + "\n").encode()


def _decode(raw: bytes) -> tuple[dict[str, Any], bool | None]:
    """The record object and whether its check matches (None: it has none). ValueError if not JSON."""
    obj = json.loads(raw)
    if not isinstance(obj, dict):
        raise ValueError("the record is not a JSON object")
    check = obj.pop("check", None)
    return obj, None if check is None else check == _checksum(obj)


def read_record(paths: RecordPaths) -> StoredRecord | None:
    """The stored record, None when the agent never had one. The caller holds the lock."""
    raw = read_file(paths.agent, paths.record)
    if raw is None:
        return None
    try:
        obj, intact = _decode(raw)
        if intact is False:
            raise ValueError("its checksum does not match its content")
        return parse_record(obj, paths.agent)
    except ValueError as exc:  # includes JSONDecodeError and UnicodeDecodeError
        raise corrupt(paths.agent, paths.record, str(exc) or "not valid JSON") from exc


def peek_record(paths: RecordPaths) -> StoredRecord | object | None:
    """The record read without the lock, or `UNSURE` when this read cannot be trusted (a write was
    in progress, or the record has no check): the caller reads again under the lock. A symlink, an
    oversized file or a whole record with a bad shape is corrupt as it is (`LeaseCorrupt`)."""
    raw = read_file(paths.agent, paths.record)
    if raw is None:
        return None
    try:
        obj, intact = _decode(raw)
    except ValueError:
        return UNSURE
    if not intact:
        return UNSURE
    try:
        return parse_record(obj, paths.agent)
    except ValueError as exc:
        raise corrupt(paths.agent, paths.record, str(exc)) from exc


def write_record(paths: RecordPaths, obj: dict[str, Any]) -> None:
    """Replace the record atomically, without fsync (see the module doc); the caller holds the lock.

    The new content goes into the spare inode (rewritten in place, never truncated to zero, which
    would also trigger an ext4 flush), then the two names are exchanged (after a process's first
    `REPLACE_FIRST` writes: before, the spare simply replaces the record).
    """
    data = encode_record(obj)
    path, spare = paths.record, paths.spare
    try:
        fd = os.open(spare, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, fsutil.FILE_MODE)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EISDIR):
            raise corrupt(paths.agent, spare, "a symlink or not a regular file") from exc
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise corrupt(paths.agent, spare, "not a regular file")
        os.fchmod(fd, fsutil.FILE_MODE)
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)
    global _writes  # noqa: PLW0603 -- counts this process's writes (see REPLACE_FIRST)
    _writes += 1
    if _writes <= REPLACE_FIRST or not _exchange(spare, path):
        os.replace(spare, path)


@functools.cache
def _renameat2() -> Any:
    import ctypes  # noqa: PLC0415 (~3 ms; only writers need it)

    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


def _exchange(a: Path, b: Path) -> bool:
    """Swap the names `a` and `b` atomically; False when `b` is missing or exchange is unsupported."""
    global _exchange_supported  # noqa: PLW0603 -- learnt once per process
    fn = _renameat2() if _exchange_supported else None
    if fn is None:
        return False
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    import ctypes  # noqa: PLC0415 (as above)

    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        _exchange_supported = False
        return False
    if err == errno.ENOENT:
        return False
    raise OSError(err, os.strerror(err), str(b))


def read_seq(paths: RecordPaths) -> int:
    """The highest token reserved for the agent (0 when nothing was ever reserved)."""
    raw = read_file(paths.agent, paths.seq)
    if raw is None:
        return 0
    try:
        obj = json.loads(raw)
    except ValueError as exc:
        raise corrupt(paths.agent, paths.seq, "not valid JSON") from exc
    reserved = obj.get("reserved") if isinstance(obj, dict) else None
    if (
        not isinstance(reserved, int)
        or isinstance(reserved, bool)
        or reserved < 0
        or obj.get("agent") != paths.agent
    ):
        raise corrupt(paths.agent, paths.seq, "not a token reservation")
    return reserved


def reserve(paths: RecordPaths, high_water: int) -> None:
    """Durably reserve every token up to `high_water` (fsync of file and directory) before use."""
    fsutil.write_json_atomic(paths.seq, {"agent": paths.agent, "reserved": high_water})


def is_unsafe(path: Path) -> bool:
    """True when `path` exists and is not a regular file (a symlink, a directory, a fifo)."""
    try:
        return not stat.S_ISREG(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def move_aside(path: Path, now: float) -> Path:
    """Rename a damaged file to `<name>.corrupt-<UTC time>[-n]`, never deleting it; a symlink is
    renamed itself, never its target."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 0
    while os.path.lexists(target):
        n += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    os.rename(path, target)
    return target


def tokens_in(path: Path) -> list[int]:
    """Token-like numbers still readable in a damaged regular file (a symlink is not followed)."""
    try:
        raw = fsutil.read_bytes_nofollow(path, limit=MAX_RECORD_BYTES)
    except OSError:  # includes UnsafePath
        return []
    return [int(m) for m in _TOKEN_IN_TEXT.findall(raw)]


def signature(path: Path) -> tuple[int, int, int] | None:
    """Identity of the record's current inode and content: changes whenever it is replaced."""
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)
