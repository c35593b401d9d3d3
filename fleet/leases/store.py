"""Fenced, expiring leases on named agents: claim, renew, release, guard an operation, repair.

What a lease guarantees: among callers that go through fleet (CLI, MCP server, this API), at most
one holder at a time may drive an agent, and every grant gets a token that is strictly larger than
any token given out for that agent before, across release, restart, and repair. A caller that
presents a token it no longer owns is refused with `LeaseLost` (fencing): at a guarded operation,
at a renewal (`claim` with `token`) and at `release` with `token`. Without a token, a holder is
known only by its name, so an old process with the same name is indistinguishable from its
successor: pass the token to be fenced.

What it does not guarantee: a lease is an agreement, not a force field. Nothing stops someone from
typing into the agent's tmux pane directly. Fencing happens at calls: a holder whose lease expires
in the middle of an operation is not interrupted; it is stopped at its next fenced call. Guarded
operations do not keep the lock while they run; a transient lease is therefore given a TTL that
covers the operation's own time bound (`guard(..., ttl=)`), so it cannot lapse under it.

Every read-modify-write runs under a per-agent flock on `<agent>.lock`, taken on a descriptor
opened for that one acquisition (so threads exclude each other like processes do, and nothing is
cached between calls), released by the kernel the instant a holder dies, so a SIGKILLed process
never leaves it stuck. It is a plain `fcntl.flock`, not `filelock`: importing filelock costs ~20 ms
(it pulls in logging, secrets and decimal), a sixth of a `fleet claim`.
Plain reads (`get`, `info`) take no lock and create nothing: a record carries a checksum, and a
read that does not match it (a write in progress) is retried, then made under the lock. The files
and their durability are described in `fleet.leases.records`.
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
from fleet.errors import FleetError, LeaseCorrupt, LeaseHeld, LeaseLost, NotLeaseHolder, StateDirError, Timeout
from fleet.logs import LazyLogger

from . import records
from .records import TOKEN_BLOCK, RecordPaths, boot_id, corrupt
from .rules import (
    AGENT_RE,
    DEFAULT_TTL,
    MAX_TTL,
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
    validate_agent,
    validate_holder,
    validate_token,
    validate_ttl,
    validate_wait,
)

__all__ = ["TOKEN_BLOCK", "ClaimResult", "LeaseInfo", "LeaseStore", "ReleaseResult", "RepairResult"]

logger = LazyLogger(__name__)

Clock = Callable[[], float]

#: Work under the lock takes about a millisecond; two seconds of waiting means a peer is wedged.
LOCK_TIMEOUT: Final = 2.0
#: A contended flock is polled this often: a coarser poll would dominate the hand-over latency.
LOCK_POLL: Final = 0.001
#: Claim retries back off exponentially between these bounds (jittered) ...
BACKOFF_START: Final = 0.005
BACKOFF_CAP: Final = 0.25
#: ... but a waiter also stats the record this often and retries at once when it changed, which
#: is what hands a released lease to the next waiter within a few milliseconds.
WATCH_INTERVAL: Final = 0.004
#: Lock-free reads of a record caught mid-write before reading under the lock; a write takes ~20 us.
PEEK_TRIES: Final = 3
_GRANT_EVENTS: Final = frozenset({"lease.grant", "lease.takeover", "lease.renew"})


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
        self._paths_of: dict[str, RecordPaths] = {}
        self._dir_made = False

    # --- public operations ---------------------------------------------------------------------

    def claim(
        self, agent: str, holder: str, ttl: float = DEFAULT_TTL, wait: float = 0.0, token: int | None = None
    ) -> ClaimResult:
        """Grant, renew, or refuse (`LeaseHeld`). With `wait` > 0, retry until granted or the wait
        runs out, without holding the lock while sleeping; the last refusal is raised.

        With `token` the call is a fenced renewal: it renews only the live lease with that token
        and raises `LeaseLost` otherwise (it never turns into a fresh grant, and is not retried).
        """
        agent = validate_agent(agent)
        holder = validate_holder(holder)
        ttl = validate_ttl(ttl)
        wait = validate_wait(wait)
        token = validate_token(token)
        deadline = time.monotonic() + wait
        backoff = BACKOFF_START
        while True:
            try:
                return self._claim_once(agent, holder, ttl, token)
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
                import random  # ~3 ms at start-up, for a contended claim only

                delay = min(random.uniform(backoff / 2, backoff), max(retry_after, 0.001), remaining)
            self._sleep_until_changed(self._paths(agent).record, delay)
            backoff = min(backoff * 2, BACKOFF_CAP)

    def release(self, agent: str, holder: str, force: bool = False, token: int | None = None) -> ReleaseResult:
        """End `holder`'s lease. Anyone else is refused (`NotLeaseHolder`) unless `force`, which
        breaks whoever holds it and is audited with the forcer as holder. A free or expired agent
        is left as it is and reported with `released` false.

        With `token`, the lease released must be the live one with that token: a stale token (the
        lease expired, or was taken over, even by a holder of the same name) raises `LeaseLost`
        and changes nothing.
        """
        agent = validate_agent(agent)
        holder = validate_holder(holder)
        token = validate_token(token)
        with self._locked(agent) as paths:
            now = self._clock()
            stored = records.read_record(paths)
            current = stored.lease if stored else None
            self._fence(current, agent, holder, token, now)
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
            records.write_record(paths, free_record(agent, stored.last_token, now, stored.boot_id))
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
    def guard(
        self, agent: str, holder: str, token: int | None = None, *, ttl: float = TRANSIENT_TTL
    ) -> Iterator[Lease]:
        """Run a mutating operation under `holder`'s lease, or under a transient one if the agent
        is free or expired; yield that lease.

        `ttl` is the transient lease's length: the caller passes its operation's own time bound
        plus slack (default `TRANSIENT_TTL`), so the lease outlives the operation it guards;
        values past `MAX_TTL` are cut to it. A given `token` must be the live lease's token
        (`LeaseLost` otherwise, even for the same holder name). Another holder's live lease raises
        `LeaseHeld`. The holder's own lease is used as it is (TTL untouched). A transient lease is
        released on exit if it is still this one (same token, still transient: a `claim` inside
        the operation turns it into a real lease). The lock is not held while the body runs.
        """
        agent = validate_agent(agent)
        holder = validate_holder(holder)
        token = validate_token(token)
        ttl = validate_ttl(min(ttl, MAX_TTL))
        with self._locked(agent) as paths:
            now = self._clock()
            stored = records.read_record(paths)
            current = stored.lease if stored else None
            self._fence(current, agent, holder, token, now)
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
                lease = self._grant(paths, stored, holder, ttl, now, transient=True).lease
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

    # --- internals -----------------------------------------------------------------------------

    def _claim_once(self, agent: str, holder: str, ttl: float, token: int | None) -> ClaimResult:
        with self._locked(agent) as paths:
            now = self._clock()
            stored = records.read_record(paths)
            self._fence(stored.lease if stored else None, agent, holder, token, now)
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

    def _fence(self, current: Lease | None, agent: str, holder: str, token: int | None, now: float) -> None:
        """Raise (and audit) `LeaseLost` when `token` is given and is not the live lease's token."""
        lost: LeaseLost | None = check_fence(current, holder, token, now, agent)
        if lost is None:
            return
        self._audit(
            "lease.fenced",
            agent,
            holder,
            token,
            current_holder=lost.data.get("holder"),
            current_token=lost.data.get("token"),
        )
        raise lost

    def _grant(
        self,
        paths: RecordPaths,
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
            records.write_record(paths, lease_to_record(grant.lease, stored.boot_id))
            self._audit("lease.renew", paths.agent, holder, grant.lease.token, ttl=ttl)
            return grant
        reserved = records.read_seq(paths)
        boot = boot_id()
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
            records.reserve(paths, token + TOKEN_BLOCK - 1)
        records.write_record(paths, lease_to_record(grant.lease, boot))
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
            stored = records.read_record(paths)
            current = stored.lease if stored else None
            if stored is None or current is None or current != lease:
                return  # taken over after expiry, or turned into a real lease by a claim
            records.write_record(paths, free_record(agent, stored.last_token, self._clock(), stored.boot_id))
            self._audit("lease.release", agent, lease.holder, lease.token, transient=True)

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
