"""This host's copy of its agents' lease rows in the shared store, for readers that cannot reach it.

Codex's approval hook (`fleet.hooks.approve`) must know whether a person or another lead holds the
agent before the `[watchdog] approve` policy may answer for them. With the leases in PostgreSQL the
hook cannot ask the database: it runs inside Codex, stays light (no driver, no connection, no
credentials), and must answer at once. So each host keeps a mirror under
`<state_dir>/leases/shared/<agent>.json`:

- written by `PgLeaseStore` right after each transaction that grants, renews or frees a lease
  commits. Every lease change of an agent is made on its own host (other hosts forward `claim`,
  `release`, sends and assignments to it: `fleet.service.hosts`), so the mirror follows the row;
- refreshed from the store for all of the host's agents by every watchdog tick, which repairs a copy
  a crash or a change made elsewhere left behind;
- ordered by the row's token, then the database time of its last change (`changed_at`, not the
  time it was read): a copy of an older row is never written over a newer one, so two writers racing
  after their commits (a change and the tick's refresh included) cannot leave the older state behind;
- carrying the database clock's offset from this host's, so an expiry is judged on the database's clock.

A reader trusts a copy only while it is fresh (`MAX_AGE` since this host last wrote it); a missing,
stale or unreadable copy means "cannot tell", which the hook treats as "a person decides".
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any, Final, NamedTuple

from fleet import fsutil

from .rules import Lease

#: The mirror's folder under `<state_dir>/leases/`.
MIRROR_DIR: Final = "shared"
#: How long a copy is trusted after this host last wrote it: ten watchdog ticks at the default period.
#: Past it (no tick, no lease change), the hook leaves approvals to a person.
MAX_AGE: Final = 600.0
_MAX_BYTES: Final = 4096
#: How long anyone waits for the copy's lock (fleet holds it for microseconds) before giving up on it
#: (a reader) or replacing the file (a writer).
_LOCK_WAIT: Final = 0.2
#: Each state dir's mirror folder, made once per process.
_made: dict[Path, str] = {}


class Mirrored(NamedTuple):
    """One agent's mirrored lease: `lease` None when free; `token` the row's token (the freed lease's
    when free) and `as_of` the database time of the row's last change, which order copies; `offset`
    the database clock minus this host's when written; `seen_at` this host's clock then."""

    lease: Lease | None
    token: int
    as_of: float
    offset: float
    seen_at: float

    def db_now(self, now: float) -> float:
        """This host's `now` on the database's clock."""
        return now + self.offset


def mirror_dir(state_dir: Path) -> Path:
    return Path(state_dir) / "leases" / MIRROR_DIR


def write(state_dir: Path, agent: str, lease: Lease | None, *, token: int, as_of: float, db_now: float,
          now: float | None = None) -> bool:
    """Record `lease` (None: free) as the agent's row after the change at database time `as_of` that left
    it at `token`, unless the copy on disk is of a later change: copies are ordered by (token, as_of),
    the token first (it only grows, whatever the clocks do), so of two writers racing after their
    commits the later change wins. `db_now` is the database's clock when the row was read, for the
    offset. True when written. Raises OSError when it cannot be written.

    One file per agent, rewritten in place under an exclusive `flock` (readers take a shared one): no
    temp file and rename on every lease change, which cost more than the change itself. Anyone who
    can read the file can lock it, an agent included: a lock held past `_LOCK_WAIT` gets the file
    replaced (a new inode the holder has no lock on), never waited on."""
    local = time.time() if now is None else now
    folder = _made.get(state_dir)
    if folder is None:  # plain strings after the first: a lease change pays for no path objects
        folder = str(fsutil.ensure_dir(mirror_dir(state_dir)))
        _made[state_dir] = folder
    path = f"{folder}/{agent}.json"
    for _ in range(3):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except FileNotFoundError:  # the folder went away since: made again
            folder = _made[state_dir] = str(fsutil.ensure_dir(mirror_dir(state_dir)))
            path = f"{folder}/{agent}.json"
            continue
        try:
            if not fsutil.flock_within(fd, _LOCK_WAIT):
                with contextlib.suppress(FileNotFoundError):
                    if os.lstat(path).st_ino == os.fstat(fd).st_ino:
                        os.unlink(path)
                continue
            try:
                on_disk: Mirrored | None = _parse(agent, os.pread(fd, _MAX_BYTES + 1, 0))
            except (ValueError, TypeError, KeyError):
                on_disk = None  # torn by a crash mid-write, or not ours: replaced
            if on_disk is not None and (on_disk.token, on_disk.as_of) > (token, as_of):
                return False
            record: dict[str, Any] = {"agent": agent, "token": token, "as_of": as_of, "offset": db_now - local,
                                      "seen_at": local, "lease": lease._asdict() if lease else None}
            data = json.dumps(record).encode()
            os.pwrite(fd, data, 0)
            os.ftruncate(fd, len(data))
            return True
        finally:
            os.close(fd)
    raise OSError(f"the lease mirror of {agent} stayed locked by someone else")


def forget(state_dir: Path, agent: str) -> None:
    """Remove the agent's copy, so readers cannot tell (a change may have landed that it lacks)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(mirror_dir(state_dir) / f"{agent}.json")


def read(state_dir: Path, agent: str) -> Mirrored | None:
    """The agent's copy, None when there is none; raises ValueError when it cannot be trusted as written
    (torn, foreign, or naming another agent) and OSError when it cannot be read (a symlink included),
    or when someone holds its lock for long (fleet's writers never do)."""
    try:
        fd = os.open(mirror_dir(state_dir) / f"{agent}.json", os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        if not fsutil.flock_within(fd, _LOCK_WAIT, shared=True):
            raise OSError(f"the lease mirror of {agent} stayed locked")
        raw = os.read(fd, _MAX_BYTES + 1)
    finally:
        os.close(fd)
    return _parse(agent, raw)


def _parse(agent: str, raw: bytes) -> Mirrored | None:
    if not raw:
        return None  # created, not yet written: as good as none
    if len(raw) > _MAX_BYTES:
        raise ValueError(f"the lease mirror of {agent} is too large")
    data = json.loads(raw)
    if not isinstance(data, dict) or data.get("agent") != agent:
        raise ValueError(f"the lease mirror of {agent} names another agent")
    row = data.get("lease")
    lease = None if row is None else Lease(**{k: row[k] for k in Lease._fields})
    if lease is not None and (lease.agent != agent or lease.token != data["token"]):
        raise ValueError(f"the lease mirror of {agent} holds another lease than it says")
    token = data["token"]
    if not isinstance(token, int) or isinstance(token, bool):
        raise ValueError(f"the lease mirror of {agent} has no token")
    return Mirrored(lease, token, float(data["as_of"]), float(data["offset"]), float(data["seen_at"]))


def fresh(state_dir: Path, agent: str, now: float, max_age: float = MAX_AGE) -> Mirrored | None:
    """The copy if this host wrote it within `max_age` (and not in the future), else None; never raises."""
    with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
        copy = read(state_dir, agent)
        if copy is not None and -5.0 <= now - copy.seen_at <= max_age:
            return copy
    return None
