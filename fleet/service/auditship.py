"""Copying the audit records that only reach `audit.jsonl` into the shared store's `fleet_audit`.

The PermissionRequest hook runs inside Codex and stays stdlib-only (`fleet.hooks`): its
`approval.policy` records go to the state dir's `audit.jsonl` alone. With `[store]`, the watchdog's
tick on the agent's host (`fleet.service.tick`) copies them to the store afterwards, exactly once:

- **Cursor**: `<state_dir>/audit.shipped` keeps how far the file has been read (a byte offset just
  after a complete line), with the file's device and inode and a hash of its first bytes. It is
  written atomically, and only after the copies are committed. A file that was replaced (rotated by
  renaming) or truncated and rewritten (`copytruncate`) no longer matches and is read from its start.
- **No duplicates**: each copy carries a key, the SHA-256 of its line, unique in the namespace
  (`fleet.store.schema` version 5), and the insert skips keys already there. A crash between the
  commit and the cursor's write, a lost cursor or a re-read after rotation finds every copy made
  and adds none. Two byte-identical lines (same time to the millisecond, agent, request and verdict)
  are one record.
- **Bounds**: at most `READ_BOUND` bytes a tick (a long backlog, such as the first tick after a store
  was configured, takes several ticks); only complete lines count, so a record being appended is
  read whole next time; a line over `MAX_LINE` is not one of fleet's records and is skipped.

What it cannot do: records appended to a file after the tick's last read and then rotated away by
renaming are in the renamed file only. fleet itself never rotates `audit.jsonl`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import stat
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol

from fleet.errors import StateDirError
from fleet.fsutil import read_bytes_nofollow, write_json_atomic

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .core import Service

#: The events written to `audit.jsonl` only (by the hook), which the tick copies to the store.
FILE_ONLY_EVENTS: Final = frozenset({"approval.policy"})
#: How a line of one of those events looks before it is parsed (`append_jsonl`'s separators).
_NEEDLES: Final = tuple(f'"event":"{e}"'.encode() for e in sorted(FILE_ONLY_EVENTS))
#: The cursor file in the state dir.
CURSOR_NAME: Final = "audit.shipped"
#: Bytes of `audit.jsonl` read per tick: thousands of records, and milliseconds of parsing.
READ_BOUND: Final = 4 << 20
#: A hook record is a few hundred bytes (its reason is bounded); anything longer is not one.
MAX_LINE: Final = 64 << 10
#: How much of the file's start the cursor hashes to notice a file rewritten from scratch.
HEAD_BYTES: Final = 256


class KeyedSink(Protocol):
    """Where copies go: `fleet.store.auditlog.PgAuditSink`."""

    def write_keyed(self, records: Sequence[tuple[str, dict[str, Any]]]) -> int: ...


@dataclass(frozen=True)
class Cursor:
    """How far one `audit.jsonl` has been copied. `skipping`: the offset is inside an overlong line."""

    device: int
    inode: int
    offset: int
    head: str
    skipping: bool = False


def head_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def resume_at(cursor: Cursor | None, device: int, inode: int, size: int, head: bytes) -> tuple[int, bool]:
    """Where to read on (offset, skipping): the cursor's place when it is this file's, else the start.
    `head` is the file's first `min(cursor.offset, HEAD_BYTES)` bytes."""
    if (cursor is None or (cursor.device, cursor.inode) != (device, inode) or size < cursor.offset
            or head_hash(head) != cursor.head):
        return 0, False
    return cursor.offset, cursor.skipping


def complete_lines(chunk: bytes, start: int, *, skipping: bool, at_bound: bool) -> tuple[list[bytes], int, bool]:
    """The complete lines of `chunk` (read at offset `start`), the offset after the last of them, and
    whether that offset is inside a line being skipped. A line still being written stays for the next
    read; `skipping` drops bytes up to the next newline first; a chunk read to the bound with no newline
    is one overlong line, skipped from here to its end."""
    if skipping:
        newline = chunk.find(b"\n")
        if newline < 0:
            return [], start + len(chunk), True
        # what follows starts a line, and is less than a bound's worth: a line that may still be short
        chunk, start, at_bound = chunk[newline + 1:], start + newline + 1, False
    last = chunk.rfind(b"\n")
    if last < 0:
        return ([], start + len(chunk), True) if at_bound and chunk else ([], start, False)
    return chunk[:last].split(b"\n"), start + last + 1, False


def copies(lines: list[bytes]) -> list[tuple[str, dict[str, Any]]]:
    """(key, record) for every line that is a well-formed record of a `FILE_ONLY_EVENTS` event."""
    out = []
    for line in lines:
        if len(line) > MAX_LINE or not any(n in line for n in _NEEDLES):  # cheap: most lines are other events
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if not isinstance(entry, dict) or entry.get("event") not in FILE_ONLY_EVENTS or not _finite(entry.get("time")):
            continue
        out.append((hashlib.sha256(line).hexdigest(), entry))
    return out


def _finite(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        return False


def read_cursor(path: Path) -> Cursor | None:
    """The cursor, None when there is none or it cannot be read (reading from the start is safe)."""
    try:
        raw = json.loads(read_bytes_nofollow(path, 4096))
        cursor = Cursor(**raw)
    except (OSError, ValueError, TypeError):
        return None
    fields = (cursor.device, cursor.inode, cursor.offset)
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in fields):
        return None
    return cursor


def ship_file(state_dir: Path, sink: KeyedSink) -> int:
    """Copy the `FILE_ONLY_EVENTS` records of `state_dir`'s `audit.jsonl` not yet copied to `sink`;
    how many were new there. Raises the sink's errors (the cursor then stays where it was)."""
    path = state_dir / "audit.jsonl"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return 0
    except OSError as exc:  # a symlink planted in its place, or no permission: nothing is read
        raise StateDirError(f"fleet cannot read {path} to copy its approval records to the store: {exc}.",
                            hint="It must be a regular file of yours, not a symlink; run `fleet doctor`.") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise StateDirError(f"{path} is not a regular file; its approval records cannot be copied to the store.",
                                hint="Move it aside (fleet writes a new one); run `fleet doctor`.")
        cursor = read_cursor(state_dir / CURSOR_NAME)
        first = os.pread(fd, HEAD_BYTES, 0)  # the file's start: the cursor's check, and the new cursor's
        offset, skipping = resume_at(cursor, st.st_dev, st.st_ino, st.st_size,
                                     first[:min(cursor.offset if cursor else 0, HEAD_BYTES)])
        chunk = os.pread(fd, min(READ_BOUND, max(0, st.st_size - offset)), offset)
    finally:
        os.close(fd)
    lines, end, skipping = complete_lines(chunk, offset, skipping=skipping, at_bound=len(chunk) == READ_BOUND)
    new = sink.write_keyed(copies(lines))
    done = Cursor(st.st_dev, st.st_ino, end, head_hash(first[:min(end, HEAD_BYTES)]), skipping)
    if done != cursor:
        with contextlib.suppress(OSError):  # unwritten: the next tick copies again, and adds nothing
            write_json_atomic(state_dir / CURSOR_NAME, asdict(done))
    return new


def ship_audit(svc: Service) -> int:
    """`ship_file` for `svc`'s fleet into its store's `fleet_audit` (0 without a store)."""
    if svc.config.store is None:
        return 0
    from fleet.store.auditlog import PgAuditSink  # noqa: PLC0415 (only with [store]: psycopg)

    return ship_file(svc.config.state_dir, PgAuditSink(svc.store))
