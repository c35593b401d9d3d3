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

Files, the per-agent lock, lock-free reads and repair are `fleet.leases.files`' (`LeaseFiles`, which
`LeaseStore` extends); the record format and its durability are `fleet.leases.records`'.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Final

from fleet.errors import FleetError, LeaseHeld, LeaseLost
from fleet.logs import LazyLogger

from . import records
from .files import LeaseFiles, RepairResult
from .records import TOKEN_BLOCK, RecordPaths, boot_id
from .rules import (
    DEFAULT_TTL,
    MAX_TTL,
    TRANSIENT_TTL,
    ClaimResult,
    Grant,
    Lease,
    LeaseInfo,
    ReleaseResult,
    StoredRecord,
    check_fence,
    claim_result,
    decide_claim,
    free_record,
    lease_held_error,
    lease_state,
    lease_to_record,
    not_holder_error,
    release_result,
    validate_agent,
    validate_holder,
    validate_token,
    validate_ttl,
    validate_wait,
)

__all__ = ["TOKEN_BLOCK", "ClaimResult", "LeaseInfo", "LeaseStore", "ReleaseResult", "RepairResult"]

logger = LazyLogger(__name__)


@contextlib.contextmanager
def transient_held(agent: str, lease: Lease, transient: bool,
                   end: Callable[[str, Lease], None]) -> Iterator[Lease]:
    """`guard`'s body runs under `lease`; a `transient` one is ended (`end`) on the way out, an error
    included (a failure to end it is logged, the body's error raised: the short TTL lets it lapse)."""
    if not transient:
        yield lease
        return
    try:
        yield lease
    except BaseException:
        try:
            end(agent, lease)
        except (FleetError, OSError):
            logger.warning("could not release the transient lease on %s", agent, exc_info=True)
        raise
    end(agent, lease)

#: Claim retries back off exponentially between these bounds (jittered); a waiter also watches the
#: record and retries at once when it changed (`LeaseFiles._sleep_until_changed`).
BACKOFF_START: Final = 0.005
BACKOFF_CAP: Final = 0.25


class LeaseStore(LeaseFiles):
    """Leases for the agents of one state dir. Safe to use from many processes and threads at once.

    `clock` gives the epoch seconds lease times are measured in (tests inject one); waiting uses
    the monotonic clock. `surface` ("cli", "mcp", "api") is written into every audit record.
    """

    def refresh_mirror(self, agents: list[str]) -> int:
        """Nothing to copy: the approval hook reads these files themselves (`LeaseBackend`)."""
        return 0

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
                import random  # noqa: PLC0415 (~3 ms at start-up, for a contended claim only)

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
                return release_result(agent, current, released=False)
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
                raise not_holder_error(agent, holder, current)
            records.write_record(paths, free_record(agent, stored.last_token, now, stored.boot_id))
            if forced:
                self._audit(
                    "lease.force_release", agent, holder, current.token, previous_holder=current.holder
                )
            else:
                self._audit("lease.release", agent, holder, current.token, transient=current.transient)
        return release_result(agent, current, released=True, forced=forced)

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
        with transient_held(agent, lease, transient, self._end_transient) as held:
            yield held

    # --- internals -----------------------------------------------------------------------------

    def _claim_once(self, agent: str, holder: str, ttl: float, token: int | None) -> ClaimResult:
        with self._locked(agent) as paths:
            now = self._clock()
            stored = records.read_record(paths)
            self._fence(stored.lease if stored else None, agent, holder, token, now)
            grant = self._grant(paths, stored, holder, ttl, now, transient=False)
        return claim_result(grant.lease, grant.status)

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

