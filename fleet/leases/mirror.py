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
- ordered by the database's clock at the change (`as_of`, then the token): a copy older than the one
  on disk is never written over it, so two writers racing after their commits cannot leave the older
  state behind;
- carrying the database clock's offset from this host's, so an expiry is judged on the database's clock.

A reader trusts a copy only while it is fresh (`MAX_AGE` since this host last wrote it); a missing,
stale or unreadable copy means "cannot tell", which the hook treats as "a person decides".
"""

from __future__ import annotations

import contextlib
import fcntl
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
#: How long a reader waits for a writer's lock (held for microseconds) before giving up on the copy.
_READ_WAIT: Final = 0.2
_made: set[Path] = set()


class Mirrored(NamedTuple):
    """One agent's mirrored lease: `lease` None when free; `as_of` the database clock at the change
    or read it reflects; `offset` the database clock minus this host's then; `seen_at` this host's
    clock when written."""

    lease: Lease | None
    as_of: float
    offset: float
    seen_at: float

    def db_now(self, now: float) -> float:
        """This host's `now` on the database's clock."""
        return now + self.offset


def mirror_dir(state_dir: Path) -> Path:
    return Path(state_dir) / "leases" / MIRROR_DIR


def write(state_dir: Path, agent: str, lease: Lease | None, as_of: float, *, now: float | None = None) -> bool:
    """Record `lease` (None: free) as the agent's state at database time `as_of`, unless the copy on
    disk is newer. True when written. Raises OSError when the folder cannot be written.

    One file per agent, rewritten in place under an exclusive `flock` (readers take a shared one): no
    temp file and rename on every lease change, which cost more than the change itself."""
    local = time.time() if now is None else now
    folder = mirror_dir(state_dir)
    if folder not in _made:
        fsutil.ensure_dir(folder)
        _made.add(folder)
    fd = os.open(folder / f"{agent}.json", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            on_disk: Mirrored | None = _parse(agent, os.pread(fd, _MAX_BYTES, 0))
        except (ValueError, TypeError, KeyError):
            on_disk = None  # torn by a crash mid-write, or not ours: replaced
        token = lease.token if lease else 0
        if on_disk is not None and (on_disk.as_of, on_disk.lease.token if on_disk.lease else 0) > (as_of, token):
            return False
        record: dict[str, Any] = {"agent": agent, "as_of": as_of, "offset": as_of - local, "seen_at": local,
                                  "lease": lease._asdict() if lease else None}
        data = json.dumps(record).encode()
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))
        return True
    finally:
        os.close(fd)


def read(state_dir: Path, agent: str) -> Mirrored | None:
    """The agent's copy, None when there is none; raises ValueError when it cannot be trusted as written
    (torn, foreign, or naming another agent) and OSError when it cannot be read (a symlink included),
    or when a writer holds it for long (it never does)."""
    try:
        fd = os.open(mirror_dir(state_dir) / f"{agent}.json", os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        if not fsutil.flock_within(fd, _READ_WAIT, shared=True):
            raise OSError(f"the lease mirror of {agent} stayed locked")
        raw = os.read(fd, _MAX_BYTES + 1)
    finally:
        os.close(fd)
    if not raw:
        return None  # created, not yet written: as good as none
    return _parse(agent, raw)


def _parse(agent: str, raw: bytes) -> Mirrored | None:
    if not raw:
        return None
    if len(raw) > _MAX_BYTES:
        raise ValueError(f"the lease mirror of {agent} is too large")
    data = json.loads(raw)
    if not isinstance(data, dict) or data.get("agent") != agent:
        raise ValueError(f"the lease mirror of {agent} names another agent")
    row = data.get("lease")
    lease = None if row is None else Lease(**{k: row[k] for k in Lease._fields})
    if lease is not None and lease.agent != agent:
        raise ValueError(f"the lease mirror of {agent} holds another agent's lease")
    return Mirrored(lease, float(data["as_of"]), float(data["offset"]), float(data["seen_at"]))


def fresh(state_dir: Path, agent: str, now: float, max_age: float = MAX_AGE) -> Mirrored | None:
    """The copy if this host wrote it within `max_age` (and not in the future), else None; never raises."""
    with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
        copy = read(state_dir, agent)
        if copy is not None and -5.0 <= now - copy.seen_at <= max_age:
            return copy
    return None
