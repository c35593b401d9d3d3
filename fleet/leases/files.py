"""The lease files of one state dir, as the store reaches them: paths, the per-agent lock, lock-free
reads, repair of damaged files, and the audit trail. `fleet.leases.store` builds claim, release and
guard on top; the record format and its durability are in `fleet.leases.records`.

Every read-modify-write runs under a per-agent flock on `<agent>.lock`, taken on a descriptor
opened for that one acquisition (so threads exclude each other like processes do, and nothing is
cached between calls), released by the kernel the instant a holder dies, so a SIGKILLed process
never leaves it stuck. It is a plain `fcntl.flock`, not `filelock`: importing filelock costs ~20 ms
(it pulls in logging, secrets and decimal), a sixth of a `fleet claim`.
Plain reads (`get`, `info`) take no lock and create nothing: a record carries a checksum, and a
read that does not match it (a write in progress) is retried, then made under the lock.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final, TypedDict

from fleet import audit, fsutil
from fleet.errors import LeaseCorrupt, StateDirError, Timeout

from . import records
from .records import TOKEN_BLOCK, RecordPaths, boot_id, corrupt
from .rules import (
    AGENT_RE,
    Lease,
    LeaseInfo,
    StoredRecord,
    free_record,
    lease_info,
    validate_agent,
    validate_holder,
)

__all__ = ["LOCK_POLL", "LOCK_TIMEOUT", "PEEK_TRIES", "SHARED_STORE_MARKER", "WATCH_INTERVAL", "Clock", "LeaseFiles",
           "LeaseInfo", "RepairResult", "shared_marker"]

Clock = Callable[[], float]

#: Work under the lock takes about a millisecond; two seconds of waiting means a peer is wedged.
LOCK_TIMEOUT: Final = 2.0
#: A contended flock is polled this often: a coarser poll would dominate the hand-over latency.
LOCK_POLL: Final = 0.001
#: A waiter stats the record this often and retries at once when it changed, which is what hands a
#: released lease to the next waiter within a few milliseconds.
WATCH_INTERVAL: Final = 0.004
#: Lock-free reads of a record caught mid-write before reading under the lock; a write takes ~20 us.
PEEK_TRIES: Final = 3
_GRANT_EVENTS: Final = frozenset({"lease.grant", "lease.takeover", "lease.renew"})
#: `<state_dir>/leases/<it>` exists while the fleet keeps its leases in the shared store
#: (`fleet.service.core`): readers of the files alone (Codex's approval hook) then know they cannot
#: tell who holds an agent, and fail closed.
SHARED_STORE_MARKER: Final = "shared-store"


def shared_marker(state_dir: Path) -> Path:
    """The state dir's `SHARED_STORE_MARKER`."""
    return state_dir / "leases" / SHARED_STORE_MARKER


class RepairResult(TypedDict):
    agent: str
    repaired: bool
    moved: list[str]
    token_high_water: int


class LeaseFiles:
    """The lease files of the agents of one state dir: safe to use from many processes and threads
    at once. `clock` gives the epoch seconds lease times are measured in (tests inject one); waiting
    uses the monotonic clock. `surface` ("cli", "mcp", "api") is written into every audit record.
    """

    def __init__(self, state_dir: Path, *, clock: Clock = time.time, surface: str = "api") -> None:
        self.state_dir = Path(state_dir)
        self.lease_dir = self.state_dir / "leases"
        self._clock = clock
        self._surface = surface
        self._paths_of: dict[str, RecordPaths] = {}
        self._dir_made = False

    # --- reads and repair ----------------------------------------------------------------------

    def get(self, agent: str) -> Lease | None:
        """The lease on record (live or expired), or None when free. Raises `LeaseCorrupt` for a
        bad record. Takes no lock and creates nothing when the record reads whole (its checksum
        matches); otherwise reads it again under the lock."""
        paths = self._paths(agent)
        self._check_dir(must_exist=False)
        for _ in range(PEEK_TRIES):
            stored = records.peek_record(paths)
            if stored is not records.UNSURE:
                return stored.lease if isinstance(stored, StoredRecord) else None
        with self._locked(agent):
            locked = records.read_record(paths)
        return locked.lease if locked else None

    def info(self, agent: str) -> LeaseInfo:
        """The lease as shown to people; an expired lease still names its last holder."""
        lease = self.get(agent)
        return lease_info(agent, lease, self._clock())

    def known_agents(self) -> list[str]:
        """Agents that have a lease record (held, expired, free or corrupt), sorted."""
        try:
            names = os.listdir(self.lease_dir)
        except FileNotFoundError:
            return []
        return sorted(n[:-5] for n in names if n.endswith(".json") and AGENT_RE.fullmatch(n[:-5]))

    def repair(self, agent: str, holder: str) -> RepairResult:
        """Move unusable lease files aside (`<file>.corrupt-<time>`, never deleted) and free the agent.

        The token reservation is kept and raised past every token still readable in the bad files
        and the audit log's tail; if `.seq` itself was lost, a further `TOKEN_BLOCK` is skipped.
        A record that is fine is left alone (with its lease); without damage this is a no-op.
        """
        agent = validate_agent(agent)
        holder = validate_holder(holder)
        paths = self._paths(agent)
        moved: list[str] = []
        # A symlinked lock file cannot be locked safely; it has to go before the lock is taken.
        if records.is_unsafe(paths.lock):
            moved.append(str(records.move_aside(paths.lock, self._clock())))
        with self._locked(agent):
            now = self._clock()
            if records.is_unsafe(paths.spare):
                moved.append(str(records.move_aside(paths.spare, now)))
            seen: list[int] = []
            seq_lost = False
            try:
                reserved = records.read_seq(paths)
            except LeaseCorrupt:
                seen += records.tokens_in(paths.seq)
                moved.append(str(records.move_aside(paths.seq, now)))
                reserved, seq_lost = 0, True
            record_lost = False
            try:
                stored = records.read_record(paths)
            except LeaseCorrupt:
                seen += records.tokens_in(paths.record)
                moved.append(str(records.move_aside(paths.record, now)))
                stored, record_lost = None, True
            if stored is not None:
                seen.append(stored.last_token)
            if not moved:
                return {"agent": agent, "repaired": False, "moved": [], "token_high_water": reserved}
            seen += self._audited_tokens(agent)
            high_water = max([reserved, *seen]) + (TOKEN_BLOCK if seq_lost else 0)
            records.reserve(paths, high_water)
            if record_lost:
                records.write_record(paths, free_record(agent, high_water, now, boot_id()))
            self._audit("lease.repair", agent, holder, None, moved=moved, token_high_water=high_water)
        return {"agent": agent, "repaired": True, "moved": moved, "token_high_water": high_water}

    # --- the files, the lock and the audit trail -----------------------------------------------

    def _sleep_until_changed(self, path: Path, delay: float) -> None:
        """Sleep up to `delay` seconds, returning early when the record is replaced."""
        end = time.monotonic() + delay
        before = records.signature(path)
        while (left := end - time.monotonic()) > 0:
            time.sleep(min(WATCH_INTERVAL, left))
            if records.signature(path) != before:
                return

    def _paths(self, agent: str) -> RecordPaths:
        paths = self._paths_of.get(agent)
        if paths is None:  # validated before any path is built from it
            paths = self._paths_of[agent] = RecordPaths.of(self.lease_dir, validate_agent(agent))
        return paths

    def _check_dir(self, *, must_exist: bool) -> None:
        """Refuse a leases dir that is a symlink or a file; create it (0700) only for a writer."""
        if must_exist and not self._dir_made:
            fsutil.ensure_dir(self.lease_dir)
            self._dir_made = True
        try:
            st = os.lstat(self.lease_dir)
        except FileNotFoundError:
            if must_exist:
                raise
            return
        if not stat.S_ISDIR(st.st_mode):
            raise StateDirError(
                f"{self.lease_dir} is not a plain directory (a symlink or a file is in its place).",
                hint="Remove it; fleet does not follow symlinks inside its state dir.",
            )

    @contextlib.contextmanager
    def _locked(self, agent: str) -> Iterator[RecordPaths]:
        """The per-agent flock around one read-modify-write (not re-entrant: no method nests it)."""
        paths = self._paths(agent)
        self._check_dir(must_exist=True)
        try:
            fd = fsutil.open_lock_file(paths.lock)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.EISDIR) or records.is_unsafe(paths.lock):
                raise corrupt(agent, paths.lock, "a symlink or not a regular file") from exc
            raise
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise corrupt(agent, paths.lock, "a symlink or not a regular file")
            if not fsutil.flock_within(fd, LOCK_TIMEOUT, pause=LOCK_POLL, max_pause=LOCK_POLL):
                raise Timeout(
                    f"Timed out after {LOCK_TIMEOUT:g}s waiting for the lease lock of agent {agent}.",
                    hint="Another fleet process is stuck in a lease update; retry, and check `fleet leases`.",
                    agent=agent,
                )
            yield paths
        finally:
            os.close(fd)  # drops the flock

    def _audited_tokens(self, agent: str) -> list[int]:
        """Tokens the audit tail says were granted (not ones callers merely presented)."""
        tokens = []
        for entry in fsutil.read_jsonl_tail(self.state_dir / "audit.jsonl"):
            token = entry.get("token")
            if (
                entry.get("agent") == agent
                and entry.get("event") in _GRANT_EVENTS
                and isinstance(token, int)
                and not isinstance(token, bool)
            ):
                tokens.append(token)
        return tokens

    def _audit(self, event: str, agent: str, holder: str, token: int | None, **fields: Any) -> None:
        audit.record(
            self.state_dir, event, agent=agent, holder=holder, token=token, surface=self._surface, **fields
        )
