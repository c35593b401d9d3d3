"""Fenced, expiring leases on named agents, stored as small files under `<state_dir>/leases/`.

What a lease guarantees: among callers that go through fleet (CLI, MCP server, this API), at most
one holder at a time may drive an agent, and every grant gets a token that is strictly larger than
any token given out for that agent before, across release, restart, and repair. A caller that
presents a token it no longer owns is refused with `LeaseLost` (fencing).

What it does not guarantee: a lease is an agreement, not a force field. Nothing stops someone from
typing into the agent's tmux pane directly. Fencing happens at calls: a holder whose lease expires
in the middle of an operation is not interrupted; it is stopped at its next fenced call. Guarded
operations do not keep the lock while they run, so an operation that outlives its lease can overlap
the next holder's first operation.

Files, per agent (the directory is 0700, every file 0600, none may be a symlink):

- `<agent>.json`: the record. A held lease, or after release a free record that keeps the last
  token. Read and written only under the lock.
- `<agent>.lock`: a `filelock.FileLock` (flock) taken for every read and read-modify-write. The
  kernel drops it the instant a holder dies, so a SIGKILLed process never leaves it stuck.
- `.<agent>.json.spare`: the next record is written here, then swapped with `<agent>.json` in one
  atomic rename (`renameat2(RENAME_EXCHANGE)`); the old record's inode becomes the next spare.
  Where the exchange is unsupported, a plain temp file + `os.replace` is used instead.
- `<agent>.seq`: the token reservation, written durably with `fsutil.write_json_atomic` (fsync of
  file and directory) before any record uses a token above it. Tokens are strictly increasing but
  not contiguous: a repair, or a reboot after a power loss, skips to the end of the reservation.

Durability, and why the record is not fsynced: measured on a 2-core VM, an fsynced atomic write
costs ~0.7 ms and creating any new file ~0.2 ms (`os.replace` onto an existing name adds an ext4
auto_da_alloc flush), which would cap claim+release at ~600/s; the exchange into a reused inode
costs ~20 us. A process crash loses nothing (the page cache survives, and the rename is atomic).
An OS crash can roll the record back or tear it: a torn record fails closed, and a record from an
earlier boot (each record carries the boot id it was written in) is trusted only up to the durable
`.seq` reservation, so the next token still starts above everything that boot handed out. Holders
do not outlive the machine's crash anyway; what must survive it is token order.

A corrupt, truncated, wrong-shaped or symlinked file fails closed with `LeaseCorrupt`: nothing is
written until `repair` moves the bad file aside.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import json
import logging
import os
import random
import re
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypedDict

from filelock import FileLock
from filelock import Timeout as FileLockTimeout

from fleet import audit, fsutil
from fleet.errors import FleetError, LeaseCorrupt, LeaseHeld, NotLeaseHolder, StateDirError, Timeout

from .rules import (
    AGENT_RE,
    DEFAULT_TTL,
    TRANSIENT_TTL,
    ClaimStatus,
    Grant,
    Lease,
    LeaseState,
    StoredRecord,
    check_fence,
    decide_claim,
    free_record,
    lease_held_error,
    lease_state,
    lease_to_record,
    parse_record,
    validate_agent,
    validate_holder,
    validate_token,
    validate_ttl,
    validate_wait,
)

logger = logging.getLogger(__name__)

Clock = Callable[[], float]

#: Work under the lock takes well under a millisecond; two seconds of waiting means a peer is wedged.
LOCK_TIMEOUT: Final = 2.0
#: filelock polls a contended flock; its 50 ms default would dominate the hand-over latency.
LOCK_POLL: Final = 0.001
#: Tokens reserved per durable `.seq` write. The reservation is what a power loss can skip.
TOKEN_BLOCK: Final = 1000
#: Claim retries back off exponentially between these bounds (jittered) ...
BACKOFF_START: Final = 0.005
BACKOFF_CAP: Final = 0.25
#: ... but a waiter also stats the record this often and retries at once when it changed, which
#: is what hands a released lease to the next waiter within a few milliseconds.
WATCH_INTERVAL: Final = 0.004
#: Largest record or reservation file fleet reads; anything bigger is corrupt.
MAX_RECORD_BYTES: Final = 64 * 1024
_GRANT_EVENTS: Final = frozenset({"lease.grant", "lease.takeover", "lease.renew"})
_TOKEN_IN_TEXT: Final = re.compile(rb'"(?:token|reserved)"\s*:\s*(\d{1,18})')


class ClaimResult(TypedDict):
    agent: str
    holder: str
    token: int
    acquired_at: float
    renewed_at: float
    expires_at: float
    ttl: float
    status: ClaimStatus


class ReleaseResult(TypedDict):
    agent: str
    released: bool
    previous_holder: str | None
    token: int | None
    forced: bool


class LeaseInfo(TypedDict):
    agent: str
    state: LeaseState
    holder: str | None
    token: int | None
    expires_in: float | None
    expires_at: float | None
    acquired_at: float | None
    ttl: float | None
    transient: bool | None


class RepairResult(TypedDict):
    agent: str
    repaired: bool
    moved: list[str]
    token_high_water: int


@dataclass(frozen=True)
class _Paths:
    agent: str
    record: Path
    lock: Path
    seq: Path
    spare: Path


_LOCKS: dict[str, FileLock] = {}
_LOCKS_GUARD = threading.Lock()


def _lock_for(path: Path) -> FileLock:
    """One FileLock object per path per process: a second object on the same path would deadlock."""
    key = str(path)
    with _LOCKS_GUARD:
        lock = _LOCKS.get(key)
        if lock is None:
            lock = FileLock(
                key,
                timeout=LOCK_TIMEOUT,
                mode=fsutil.FILE_MODE,
                poll_interval=LOCK_POLL,
                fallback_to_soft=False,
                preserve_lock_file=True,
            )
            _LOCKS[key] = lock
        return lock


@functools.cache
def _boot_id() -> str:
    """This boot's id, or "" where unknown (every record then counts as from an earlier boot)."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


#: `renameat2` flag: swap two existing names atomically (Linux >= 3.15; ext4, xfs, btrfs, tmpfs).
RENAME_EXCHANGE: Final = 2
_AT_FDCWD: Final = -100
_exchange_supported = True


@functools.cache
def _renameat2() -> Any:
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
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        _exchange_supported = False
        return False
    if err == errno.ENOENT:
        return False
    raise OSError(err, os.strerror(err), str(b))


def _write_record(paths: _Paths, obj: Any) -> None:
    """Replace the record atomically, without fsync; the caller holds the agent's lock.

    The new content goes into the spare inode (rewritten in place, never truncated to zero, which
    would also trigger an ext4 flush), then the two names are exchanged. Only lock holders read
    the record, so nobody can be reading the spare while it is rewritten.
    """
    data = (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()
    path, spare = paths.record, paths.spare
    try:
        fd = os.open(spare, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, fsutil.FILE_MODE)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EISDIR):
            raise _corrupt(paths.agent, spare, "a symlink or not a regular file") from exc
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _corrupt(paths.agent, spare, "not a regular file")
        os.fchmod(fd, fsutil.FILE_MODE)
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)
    if not _exchange(spare, path):
        os.replace(spare, path)


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _corrupt(agent: str, path: Path, reason: str) -> LeaseCorrupt:
    return LeaseCorrupt(
        f"The lease file {path} is unusable ({reason}); fleet will not guess who holds agent {agent}.",
        hint=f"Run `fleet lease-repair {agent}` to move it aside and free the agent.",
        agent=agent,
        path=str(path),
    )


class LeaseStore:
    """Leases for the agents of one state dir. Safe to use from many processes and threads at once.

    `clock` gives the epoch seconds lease times are measured in (tests inject one); waiting uses
    the monotonic clock. `surface` ("cli", "mcp", "api") is written into every audit record.
    """

    def __init__(self, state_dir: Path, *, clock: Clock = time.time, surface: str = "api") -> None:
        self.state_dir = Path(state_dir)
        self.lease_dir = self.state_dir / "leases"
        self._clock = clock
        self._surface = surface
        self._path_cache: dict[str, _Paths] = {}

    # --- public operations ---------------------------------------------------------------------

    def claim(self, agent: str, holder: str, ttl: float = DEFAULT_TTL, wait: float = 0.0) -> ClaimResult:
        """Grant, renew, or refuse (`LeaseHeld`). With `wait` > 0, retry until granted or the wait
        runs out, without holding the lock while sleeping; the last refusal is raised."""
        agent = validate_agent(agent)
        holder = validate_holder(holder)
        ttl = validate_ttl(ttl)
        wait = validate_wait(wait)
        deadline = time.monotonic() + wait
        backoff = BACKOFF_START
        while True:
            try:
                return self._claim_once(agent, holder, ttl)
            except LeaseHeld as refusal:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._audit(
                        "lease.refuse",
                        agent,
                        holder,
                        refusal.data.get("token"),
                        wanted="claim",
                        current_holder=refusal.data.get("holder"),
                        waited=wait,
                    )
                    raise
                retry_after = float(refusal.data.get("retry_after", BACKOFF_CAP))
                delay = min(random.uniform(backoff / 2, backoff), max(retry_after, 0.001), remaining)
            self._sleep_until_changed(self._paths(agent).record, delay)
            backoff = min(backoff * 2, BACKOFF_CAP)

    def release(self, agent: str, holder: str, force: bool = False) -> ReleaseResult:
        """End `holder`'s lease. Anyone else is refused (`NotLeaseHolder`) unless `force`, which
        breaks whoever holds it and is audited with the forcer as holder. A free or expired agent
        is left as it is and reported with `released` false."""
        agent = validate_agent(agent)
        holder = validate_holder(holder)
        with self._locked(agent) as paths:
            now = self._clock()
            stored = self._read_record(paths)
            current = stored.lease if stored else None
            if stored is None or current is None or lease_state(current, now) != "held":
                return {
                    "agent": agent,
                    "released": False,
                    "previous_holder": current.holder if current else None,
                    "token": current.token if current else None,
                    "forced": False,
                }
            forced = current.holder != holder
            if forced and not force:
                self._audit(
                    "lease.refuse",
                    agent,
                    holder,
                    current.token,
                    wanted="release",
                    current_holder=current.holder,
                )
                raise NotLeaseHolder(
                    f"{holder} cannot release agent {agent}: it is leased to {current.holder} "
                    f"(token {current.token}).",
                    hint=f"Only the holder can release it; an operator can break it with "
                    f"`fleet release {agent} --force`.",
                    agent=agent,
                    holder=current.holder,
                    token=current.token,
                    your_holder=holder,
                )
            _write_record(paths, free_record(agent, stored.last_token, now, stored.boot_id))
            if forced:
                self._audit(
                    "lease.force_release", agent, holder, current.token, previous_holder=current.holder
                )
            else:
                self._audit("lease.release", agent, holder, current.token, transient=current.transient)
        return {
            "agent": agent,
            "released": True,
            "previous_holder": current.holder,
            "token": current.token,
            "forced": forced,
        }

    def get(self, agent: str) -> Lease | None:
        """The lease on record (live or expired), or None when free. Raises `LeaseCorrupt` for a
        bad record. Takes the lock briefly (the spare inode is rewritten in place)."""
        with self._locked(agent) as paths:
            stored = self._read_record(paths)
        return stored.lease if stored else None

    def info(self, agent: str) -> LeaseInfo:
        """The lease as shown to people; an expired lease still names its last holder."""
        lease = self.get(agent)
        now = self._clock()
        state = lease_state(lease, now)
        if lease is None:
            return {
                "agent": agent,
                "state": state,
                "holder": None,
                "token": None,
                "expires_in": None,
                "expires_at": None,
                "acquired_at": None,
                "ttl": None,
                "transient": None,
            }
        return {
            "agent": agent,
            "state": state,
            "holder": lease.holder,
            "token": lease.token,
            "expires_in": max(0.0, lease.expires_in(now)),
            "expires_at": lease.expires_at,
            "acquired_at": lease.acquired_at,
            "ttl": lease.ttl,
            "transient": lease.transient,
        }

    def known_agents(self) -> list[str]:
        """Agents that have a lease record (held, expired, free or corrupt), sorted."""
        try:
            names = os.listdir(self.lease_dir)
        except FileNotFoundError:
            return []
        return sorted(n[:-5] for n in names if n.endswith(".json") and AGENT_RE.fullmatch(n[:-5]))

    @contextlib.contextmanager
    def guard(self, agent: str, holder: str, token: int | None = None) -> Iterator[Lease]:
        """Run a mutating operation under `holder`'s lease, or under a transient one if the agent
        is free or expired; yield that lease.

        A given `token` must be the live lease's token (`LeaseLost` otherwise, even for the same
        holder name). Another holder's live lease raises `LeaseHeld`. The holder's own lease is
        used as it is (TTL untouched). A transient lease is released on exit if it is still this
        one (same token, still transient: a `claim` inside the operation turns it into a real lease).
        The lock is not held while the body runs.
        """
        agent = validate_agent(agent)
        holder = validate_holder(holder)
        token = validate_token(token)
        with self._locked(agent) as paths:
            now = self._clock()
            stored = self._read_record(paths)
            current = stored.lease if stored else None
            lost = check_fence(current, holder, token, now)
            if lost is not None:
                self._audit(
                    "lease.fenced",
                    agent,
                    holder,
                    token,
                    current_holder=lost.data.get("holder"),
                    current_token=lost.data.get("token"),
                )
                raise lost
            if current is not None and lease_state(current, now) == "held":
                if current.holder != holder:
                    self._audit(
                        "lease.refuse",
                        agent,
                        holder,
                        current.token,
                        wanted="operate",
                        current_holder=current.holder,
                    )
                    raise lease_held_error(current, now)
                lease, transient = current, False
            else:
                lease = self._grant(paths, stored, holder, TRANSIENT_TTL, now, transient=True).lease
                transient = True
        if not transient:
            yield lease
            return
        try:
            yield lease
        except BaseException:
            try:
                self._end_transient(agent, lease)
            except (FleetError, OSError):
                logger.warning("could not release the transient lease on %s", agent, exc_info=True)
            raise
        self._end_transient(agent, lease)

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
        if self._is_unsafe(paths.lock):
            moved.append(str(self._move_aside(paths.lock)))
        with self._locked(agent):
            now = self._clock()
            if self._is_unsafe(paths.spare):
                moved.append(str(self._move_aside(paths.spare)))
            seen: list[int] = []
            seq_lost = False
            try:
                reserved = self._read_seq(paths)
            except LeaseCorrupt:
                seen += self._tokens_in(paths.seq)
                moved.append(str(self._move_aside(paths.seq)))
                reserved, seq_lost = 0, True
            record_lost = False
            try:
                stored = self._read_record(paths)
            except LeaseCorrupt:
                seen += self._tokens_in(paths.record)
                moved.append(str(self._move_aside(paths.record)))
                stored, record_lost = None, True
            if stored is not None:
                seen.append(stored.last_token)
            if not moved:
                return {"agent": agent, "repaired": False, "moved": [], "token_high_water": reserved}
            seen += self._audited_tokens(agent)
            high_water = max([reserved, *seen]) + (TOKEN_BLOCK if seq_lost else 0)
            fsutil.write_json_atomic(paths.seq, {"agent": agent, "reserved": high_water})
            if record_lost:
                _write_record(paths, free_record(agent, high_water, now, _boot_id()))
            self._audit("lease.repair", agent, holder, None, moved=moved, token_high_water=high_water)
        return {"agent": agent, "repaired": True, "moved": moved, "token_high_water": high_water}

    # --- internals -----------------------------------------------------------------------------

    def _claim_once(self, agent: str, holder: str, ttl: float) -> ClaimResult:
        with self._locked(agent) as paths:
            now = self._clock()
            stored = self._read_record(paths)
            grant = self._grant(paths, stored, holder, ttl, now, transient=False)
        lease = grant.lease
        return {
            "agent": lease.agent,
            "holder": lease.holder,
            "token": lease.token,
            "acquired_at": lease.acquired_at,
            "renewed_at": lease.renewed_at,
            "expires_at": lease.expires_at,
            "ttl": lease.ttl,
            "status": grant.status,
        }

    def _grant(
        self,
        paths: _Paths,
        stored: StoredRecord | None,
        holder: str,
        ttl: float,
        now: float,
        *,
        transient: bool,
    ) -> Grant:
        """Decide and write a claim; the caller holds the lock."""
        current = stored.lease if stored else None
        if stored is not None and current is not None and lease_state(current, now) == "held":
            grant = decide_claim(
                current,
                current.token,
                agent=paths.agent,
                holder=holder,
                ttl=ttl,
                now=now,
                transient=transient,
            )
            # A renewal keeps the token, so the record keeps the boot it was stamped with.
            _write_record(paths, lease_to_record(grant.lease, stored.boot_id))
            self._audit("lease.renew", paths.agent, holder, grant.lease.token, ttl=ttl)
            return grant
        reserved = self._read_seq(paths)
        boot = _boot_id()
        if stored is None:
            last = reserved
        elif boot and stored.boot_id == boot:
            last = stored.last_token
        else:
            last = max(stored.last_token, reserved)
        grant = decide_claim(
            current, last, agent=paths.agent, holder=holder, ttl=ttl, now=now, transient=transient
        )
        token = grant.lease.token
        if token > reserved:
            fsutil.write_json_atomic(paths.seq, {"agent": paths.agent, "reserved": token + TOKEN_BLOCK - 1})
        _write_record(paths, lease_to_record(grant.lease, boot))
        previous = grant.previous
        self._audit(
            "lease.takeover" if previous else "lease.grant",
            paths.agent,
            holder,
            token,
            ttl=ttl,
            transient=transient or None,
            previous_holder=previous.holder if previous else None,
            previous_token=previous.token if previous else None,
        )
        return grant

    def _end_transient(self, agent: str, lease: Lease) -> None:
        with self._locked(agent) as paths:
            stored = self._read_record(paths)
            current = stored.lease if stored else None
            if stored is None or current is None or current != lease:
                return  # taken over after expiry, or turned into a real lease by a claim
            _write_record(paths, free_record(agent, stored.last_token, self._clock(), stored.boot_id))
            self._audit("lease.release", agent, lease.holder, lease.token, transient=True)

    def _sleep_until_changed(self, path: Path, delay: float) -> None:
        """Sleep up to `delay` seconds, returning early when the record is replaced."""
        end = time.monotonic() + delay
        before = _signature(path)
        while (left := end - time.monotonic()) > 0:
            time.sleep(min(WATCH_INTERVAL, left))
            if _signature(path) != before:
                return

    def _paths(self, agent: str) -> _Paths:
        paths = self._path_cache.get(agent)
        if paths is None:
            agent = validate_agent(agent)  # before any path is built from it
            fsutil.ensure_dir(self.lease_dir)
            d = self.lease_dir
            paths = _Paths(
                agent,
                d / f"{agent}.json",
                d / f"{agent}.lock",
                d / f"{agent}.seq",
                d / f".{agent}.json.spare",
            )
            self._path_cache[agent] = paths
        return paths

    @contextlib.contextmanager
    def _locked(self, agent: str) -> Iterator[_Paths]:
        """The per-agent flock around one read-modify-write."""
        paths = self._paths(agent)
        st = os.lstat(self.lease_dir)
        if not stat.S_ISDIR(st.st_mode):
            raise StateDirError(
                f"{self.lease_dir} is not a plain directory (a symlink or a file is in its place).",
                hint="Remove it; fleet does not follow symlinks inside its state dir.",
            )
        lock = _lock_for(paths.lock)
        try:
            lock.acquire()
        except FileLockTimeout as exc:
            raise Timeout(
                f"Timed out after {LOCK_TIMEOUT:g}s waiting for the lease lock of agent {agent}.",
                hint="Another fleet process is stuck in a lease update; retry, and check `fleet leases`.",
                agent=agent,
            ) from exc
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.EISDIR) or self._is_unsafe(paths.lock):
                raise _corrupt(agent, paths.lock, "a symlink or not a regular file") from exc
            raise
        try:
            yield paths
        finally:
            lock.release()

    def _read_record(self, paths: _Paths) -> StoredRecord | None:
        raw = self._read_file(paths.agent, paths.record)
        if raw is None:
            return None
        try:
            return parse_record(json.loads(raw), paths.agent)
        except ValueError as exc:  # includes JSONDecodeError and UnicodeDecodeError
            raise _corrupt(paths.agent, paths.record, str(exc) or "not valid JSON") from exc

    def _read_seq(self, paths: _Paths) -> int:
        raw = self._read_file(paths.agent, paths.seq)
        if raw is None:
            return 0
        try:
            obj = json.loads(raw)
        except ValueError as exc:
            raise _corrupt(paths.agent, paths.seq, "not valid JSON") from exc
        reserved = obj.get("reserved") if isinstance(obj, dict) else None
        if (
            not isinstance(reserved, int)
            or isinstance(reserved, bool)
            or reserved < 0
            or obj.get("agent") != paths.agent
        ):
            raise _corrupt(paths.agent, paths.seq, "not a token reservation")
        return reserved

    def _read_file(self, agent: str, path: Path) -> bytes | None:
        try:
            raw = fsutil.read_bytes_nofollow(path, limit=MAX_RECORD_BYTES + 1)
        except FileNotFoundError:
            return None
        except fsutil.UnsafePath as exc:
            raise _corrupt(agent, path, "a symlink or not a regular file") from exc
        if len(raw) > MAX_RECORD_BYTES:
            raise _corrupt(agent, path, "too large")
        return raw

    @staticmethod
    def _is_unsafe(path: Path) -> bool:
        try:
            return not stat.S_ISREG(os.lstat(path).st_mode)
        except FileNotFoundError:
            return False

    def _move_aside(self, path: Path) -> Path:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self._clock()))
        target = path.with_name(f"{path.name}.corrupt-{stamp}")
        n = 0
        while os.path.lexists(target):
            n += 1
            target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
        os.rename(path, target)  # renames a symlink itself, never its target
        return target

    @staticmethod
    def _tokens_in(path: Path) -> list[int]:
        """Token-like numbers still readable in a damaged regular file (a symlink is not followed)."""
        try:
            raw = fsutil.read_bytes_nofollow(path, limit=MAX_RECORD_BYTES)
        except OSError:  # includes UnsafePath
            return []
        return [int(m) for m in _TOKEN_IN_TEXT.findall(raw)]

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
