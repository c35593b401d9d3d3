"""Leases in the shared PostgreSQL store: the `LeaseBackend` contract (`fleet.leases.backend`) on rows.

One row per (namespace, agent) in `fleet_lease` (`fleet.store.schema`), never deleted. Every
read-modify-write is one transaction that first locks the agent's row (`SELECT ... FOR UPDATE`),
then reads the database's clock (`clock_timestamp()`, after the lock is granted), decides with the
same pure rules the file store uses (`fleet.leases.rules`: fencing, renewal, refusal), and writes.
So a stale token is refused inside the very transaction that would have acted on it, expiry is
judged on one clock for every host, and a new token is issued by the database (`token + 1` on the
locked row, returned by the UPDATE): per agent, strictly increasing, never reused.

Waiting for a held lease (`claim(wait=...)`) listens on the `fleet_lease` channel: a release or
the end of a transient lease notifies at commit, and the waiters retry at once; expiry is not
notified, so a waiter also retries after `retry_after` and on a backoff.

After each committed change, the row's new state is copied to this host's lease mirror
(`fleet.leases.mirror`), which Codex's approval hook reads; `refresh_mirror` (every tick) copies a
set of agents' rows at once.

Audit records go to this host's `<state_dir>/audit.jsonl`, as with the file store, and to the store's
`fleet_audit` table (`fleet.store.auditlog`): a change's records are inserted in its own transaction
(they commit together, one round trip fewer) and appended to the file once it committed; a refusal's
go to both after its rollback (a failure of the table then is logged and dropped); an unreachable database raises
`store_unavailable` and audits nothing. What this does not guarantee is the file store's: a lease is
an agreement among callers that go through fleet, and a holder whose lease expires mid-operation is
stopped at its next fenced call, not interrupted.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final, TypeVar

from fleet import audit, fsutil
from fleet.errors import FleetError, LeaseLost, StoreUnavailable
from fleet.logs import LazyLogger
from fleet.store.auditlog import PgAuditSink
from fleet.store.db import Database

from . import mirror
from .files import RepairResult
from .rules import (
    DEFAULT_TTL,
    MAX_TTL,
    TRANSIENT_TTL,
    ClaimResult,
    Lease,
    LeaseInfo,
    ReleaseResult,
    check_fence,
    claim_result,
    decide_claim,
    lease_held_error,
    lease_info,
    lease_state,
    not_holder_error,
    release_result,
    validate_agent,
    validate_holder,
    validate_token,
    validate_ttl,
    validate_wait,
)
from .store import BACKOFF_CAP, BACKOFF_START, transient_held

logger = LazyLogger(__name__)

#: The channel releases are announced on; the payload is `<namespace>/<agent>`.
CHANNEL: Final = "fleet_lease"
_COLUMNS: Final = "holder, token, acquired_at, renewed_at, expires_at, ttl, transient"
_LOCK_ROW: Final = f"SELECT {_COLUMNS} FROM fleet_lease WHERE namespace = %s AND agent = %s FOR UPDATE"
_CLOCK: Final = "SELECT extract(epoch FROM clock_timestamp())::float8"
_READ: Final = (f"SELECT extract(epoch FROM clock_timestamp())::float8, {_COLUMNS} FROM (SELECT 1) AS one "
                "LEFT JOIN fleet_lease ON namespace = %s AND agent = %s")
_FREE: Final = ("UPDATE fleet_lease SET holder = NULL, acquired_at = NULL, renewed_at = NULL, expires_at = NULL, "
                "ttl = NULL, transient = false, changed_at = %s WHERE namespace = %s AND agent = %s")

Event = tuple[str, str, str, "int | None", dict[str, Any]]
#: An event that is not audited: the row's state after the change, for this host's mirror once committed.
_MIRROR: Final = "mirror"
T = TypeVar("T")


def lease_of(agent: str, row: tuple[Any, ...] | None) -> Lease | None:
    """The lease a row holds (holder, token, times..., transient), None when free or absent."""
    if row is None or row[0] is None:
        return None
    holder, token, acquired, renewed, expires, ttl, transient = row
    return Lease(agent, holder, int(token), float(acquired), float(renewed), float(expires), float(ttl),
                 bool(transient))


class PgLeaseStore:
    """Leases of one fleet (the store's namespace) in PostgreSQL; audits to `state_dir`'s audit log.

    Safe from many threads (a connection each, `fleet.store.db`) and many processes and hosts (row
    locks). `surface` is written into every audit record, as with `LeaseStore`.
    """

    def __init__(self, db: Database, state_dir: Path, *, surface: str = "api") -> None:
        self._db = db
        self.state_dir = Path(state_dir)
        self._surface = surface
        self._ns = db.namespace
        self._dir_made = False
        self._audit_sink = PgAuditSink(db)

    def __repr__(self) -> str:
        return f"PgLeaseStore({self._db!r})"

    # --- reads ---------------------------------------------------------------------------------

    def _query(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        """One statement outside a transaction; run once more if a stale connection failed it."""
        return self._db.query(sql, params)

    def _transact(self, body: Callable[[Any, list[Event]], T]) -> T:
        """Run `body(cursor, events)` in one transaction, audit its events (`_audited`): those of a change
        go to the shared audit table in the same transaction (they commit together, or neither does),
        and to the local file once it committed; run it once more on a fresh connection when a stale
        one failed before COMMIT (nothing had landed)."""
        def once() -> T:
            events: list[Event] = []
            entries: list[dict[str, Any]] = []
            with self._audited(events, entries), self._db.transaction() as cur:
                result = body(cur, events)
                entries += [self._entry(*e) for e in events if e[0] != _MIRROR]
                if entries:
                    self._audit_sink.insert(cur, entries)
                return result

        return self._db.retrying(once)

    def _read(self, agent: str) -> tuple[float, Lease | None]:
        row = self._query(_READ, (self._ns, agent))[0]  # the LEFT JOIN always yields the clock row
        return float(row[0]), lease_of(agent, None if row[1] is None else row[1:])

    def get(self, agent: str) -> Lease | None:
        """The lease on record (live or expired), or None when free; one statement, no lock."""
        return self._read(validate_agent(agent))[1]

    def info(self, agent: str) -> LeaseInfo:
        """The lease as shown to people, its state judged on the database's clock."""
        now, lease = self._read(validate_agent(agent))
        return lease_info(agent, lease, now)

    def known_agents(self) -> list[str]:
        """Agents with a lease row in this namespace (held, expired or free), sorted."""
        rows = self._query("SELECT agent FROM fleet_lease WHERE namespace = %s ORDER BY agent", (self._ns,))
        return [str(r[0]) for r in rows]

    def repair(self, agent: str, holder: str) -> RepairResult:
        """Nothing to move aside: rows cannot be torn like files. Reports the agent's last token."""
        agent = validate_agent(agent)
        validate_holder(holder)
        rows = self._query("SELECT token FROM fleet_lease WHERE namespace = %s AND agent = %s", (self._ns, agent))
        return {"agent": agent, "repaired": False, "moved": [], "token_high_water": int(rows[0][0]) if rows else 0}

    # --- writes --------------------------------------------------------------------------------

    def claim(self, agent: str, holder: str, ttl: float = DEFAULT_TTL, wait: float = 0.0,
              token: int | None = None) -> ClaimResult:
        """Grant, renew, or refuse (`LeaseHeld`), as `LeaseStore.claim`; with `wait` > 0, retry when a
        release is announced, at `retry_after`, or on a backoff, until granted or the wait runs out."""
        agent, holder = validate_agent(agent), validate_holder(holder)
        ttl, wait, token = validate_ttl(ttl), validate_wait(wait), validate_token(token)
        deadline = time.monotonic() + wait
        backoff = BACKOFF_START
        listening = False
        try:
            while True:
                try:
                    return self._claim_once(agent, holder, ttl, token)
                except FleetError as refusal:
                    if refusal.code != "lease_held":
                        raise
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        self._audit("lease.refuse", agent, holder, refusal.data.get("token"), wanted="claim",
                                    current_holder=refusal.data.get("holder"), waited=wait)
                        raise
                    if not listening:  # then retry at once: a release just before LISTEN is not missed
                        self._listen(True)
                        listening = True
                        continue
                    retry_after = float(refusal.data.get("retry_after", BACKOFF_CAP))
                    delay = min(random.uniform(backoff / 2, backoff), max(retry_after, 0.001), remaining)
                # Woken, look without a lock first: of the waiters a release wakes, those that lost the
                # race wait again instead of queueing on the row lock (the attempt still decides).
                while True:
                    self._wait_for_release(delay)
                    backoff = min(backoff * 2, BACKOFF_CAP)
                    remaining = deadline - time.monotonic()
                    now, lease = self._read(agent)
                    if remaining <= 0 or lease is None or lease.holder == holder or lease_state(lease, now) != "held":
                        break
                    delay = min(random.uniform(backoff / 2, backoff), max(lease.expires_in(now), 0.001), remaining)
        finally:
            if listening and self._db.reused():  # a dropped connection took its LISTEN with it
                with contextlib.suppress(StoreUnavailable):
                    self._listen(False)

    def release(self, agent: str, holder: str, force: bool = False, token: int | None = None) -> ReleaseResult:
        """End `holder`'s lease, as `LeaseStore.release` (`force`, `token` and refusals alike)."""
        agent, holder, token = validate_agent(agent), validate_holder(holder), validate_token(token)

        def body(cur: Any, events: list[Event]) -> ReleaseResult:
            current, _, now = self._lock(cur, agent)
            self._fence(events, current, agent, holder, token, now)
            if current is None or lease_state(current, now) != "held":
                return release_result(agent, current, released=False)
            forced = current.holder != holder
            if forced and not force:
                events.append(("lease.refuse", agent, holder, current.token,
                               {"wanted": "release", "current_holder": current.holder}))
                raise not_holder_error(agent, holder, current)
            self._free(cur, events, agent, now, current.token)
            if forced:
                events.append(("lease.force_release", agent, holder, current.token,
                               {"previous_holder": current.holder}))
            else:
                events.append(("lease.release", agent, holder, current.token, {"transient": current.transient}))
            return release_result(agent, current, released=True, forced=forced)

        return self._transact(body)

    @contextlib.contextmanager
    def guard(self, agent: str, holder: str, token: int | None = None, *,
              ttl: float = TRANSIENT_TTL) -> Iterator[Lease]:
        """Run a body under `holder`'s live lease or a transient one, as `LeaseStore.guard`; no row
        lock or transaction is held while the body runs."""
        agent, holder, token = validate_agent(agent), validate_holder(holder), validate_token(token)
        ttl = validate_ttl(min(ttl, MAX_TTL))

        def body(cur: Any, events: list[Event]) -> tuple[Lease, bool]:
            current, last, now = self._lock(cur, agent)
            self._fence(events, current, agent, holder, token, now)
            if current is not None and lease_state(current, now) == "held":
                if current.holder != holder:
                    events.append(("lease.refuse", agent, holder, current.token,
                                   {"wanted": "operate", "current_holder": current.holder}))
                    raise lease_held_error(current, now)
                return current, False
            return self._grant(cur, events, agent, holder, ttl, now, current, last, transient=True), True

        lease, transient = self._transact(body)
        with transient_held(agent, lease, transient, self._end_transient) as held:
            yield held

    # --- internals -----------------------------------------------------------------------------

    def _claim_once(self, agent: str, holder: str, ttl: float, token: int | None) -> ClaimResult:
        def body(cur: Any, events: list[Event]) -> tuple[Lease, bool]:
            current, last, now = self._lock(cur, agent)
            self._fence(events, current, agent, holder, token, now)
            renewing = current is not None and lease_state(current, now) == "held"
            return self._grant(cur, events, agent, holder, ttl, now, current, last, transient=False), renewing

        lease, renewing = self._transact(body)
        return claim_result(lease, "renewed" if renewing else "claimed")

    def _lock(self, cur: Any, agent: str) -> tuple[Lease | None, int, float]:
        """Lock the agent's row (creating it at token 0), then read the clock: (lease, last token, now)."""
        # Pipelined: the clock query goes out with the lock, and the server reads the clock only
        # once the lock is granted (statements run in order). Each read has a cursor of its own:
        # in pipeline mode a cursor's result is reliable only for the one statement it ran.
        conn = cur.connection
        locked, clock = conn.execute(_LOCK_ROW, (self._ns, agent)), conn.execute(_CLOCK)
        row = locked.fetchone()
        if row is None:
            conn.execute("INSERT INTO fleet_lease (namespace, agent) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                         (self._ns, agent))
            locked, clock = conn.execute(_LOCK_ROW, (self._ns, agent)), conn.execute(_CLOCK)
            row = locked.fetchone()
        now = float(clock.fetchone()[0])
        return lease_of(agent, row), int(row[1]), now

    def _grant(self, cur: Any, events: list[Event], agent: str, holder: str, ttl: float, now: float,
               current: Lease | None, last: int, *, transient: bool) -> Lease:
        """Decide and write a claim (a renewal, or a grant with the database's next token); raises
        `LeaseHeld` for another holder's live lease. The caller holds the row lock."""
        grant = decide_claim(current, last, agent=agent, holder=holder, ttl=ttl, now=now, transient=transient)
        lease = grant.lease
        if grant.status == "renewed":
            cur.execute("UPDATE fleet_lease SET renewed_at = %s, expires_at = %s, ttl = %s, transient = false, "
                        "changed_at = %s WHERE namespace = %s AND agent = %s",
                        (lease.renewed_at, lease.expires_at, lease.ttl, now, self._ns, agent))
            events.append(("lease.renew", agent, holder, lease.token, {"ttl": ttl}))
            events.append((_MIRROR, agent, holder, lease.token, {"lease": lease, "as_of": now}))
            return lease
        row = cur.connection.execute(
            "UPDATE fleet_lease SET token = token + 1, holder = %s, acquired_at = %s, renewed_at = %s, "
            "expires_at = %s, ttl = %s, transient = %s, changed_at = %s WHERE namespace = %s AND agent = %s "
            "RETURNING token",
            (holder, lease.acquired_at, lease.renewed_at, lease.expires_at, lease.ttl, transient, now, self._ns,
             agent)).fetchone()
        lease = lease._replace(token=int(row[0]))  # the database's token (equal to last + 1 under the lock)
        previous = grant.previous
        events.append(("lease.takeover" if previous else "lease.grant", agent, holder, lease.token,
                       {"ttl": ttl, "transient": transient or None,
                        "previous_holder": previous.holder if previous else None,
                        "previous_token": previous.token if previous else None}))
        events.append((_MIRROR, agent, holder, lease.token, {"lease": lease, "as_of": now}))
        return lease

    def _free(self, cur: Any, events: list[Event], agent: str, now: float, token: int) -> None:
        cur.execute(_FREE, (now, self._ns, agent))
        cur.execute("SELECT pg_notify(%s, %s)", (CHANNEL, f"{self._ns}/{agent}"))
        events.append((_MIRROR, agent, "", token, {"lease": None, "as_of": now}))

    def _end_transient(self, agent: str, lease: Lease) -> None:
        def body(cur: Any, events: list[Event]) -> None:
            current, _, now = self._lock(cur, agent)
            if current != lease:
                return  # taken over after expiry, or turned into a real lease by a claim
            self._free(cur, events, agent, now, lease.token)
            events.append(("lease.release", agent, lease.holder, lease.token, {"transient": True}))

        self._transact(body)

    def _fence(self, events: list[Event], current: Lease | None, agent: str, holder: str, token: int | None,
               now: float) -> None:
        lost: LeaseLost | None = check_fence(current, holder, token, now, agent)
        if lost is not None:
            events.append(("lease.fenced", agent, holder, token, {"current_holder": lost.data.get("holder"),
                                                                  "current_token": lost.data.get("token")}))
            raise lost

    def _listen(self, on: bool) -> None:
        with self._db.mapped_errors():
            conn = self._db.connection()
            conn.execute(f"LISTEN {CHANNEL}" if on else f"UNLISTEN {CHANNEL}")
            if not on:
                for _ in conn.notifies(timeout=0):  # drop what queued up while listening
                    pass

    def _wait_for_release(self, delay: float) -> None:
        """Sleep up to `delay` seconds, returning as soon as any release is announced."""
        with self._db.mapped_errors():
            for _ in self._db.connection().notifies(timeout=delay, stop_after=1):
                break

    @contextlib.contextmanager
    def _audited(self, events: list[Event], entries: list[dict[str, Any]]) -> Iterator[None]:
        """Once the transaction committed: its `entries` (already in the shared table) to the local file,
        and the mirror. Rolled back on a refusal: `events` to both. None when the store failed (nothing
        is known to have happened)."""
        try:
            yield
        except StoreUnavailable:  # the commit's answer may be what was lost: the change may have landed
            for event, agent, *_ in events:
                if event == _MIRROR:
                    with contextlib.suppress(OSError):
                        mirror.forget(self.state_dir, agent)
            raise
        except FleetError:
            self._write(events)
            raise
        self._local_dir()
        for made in entries:
            audit.write(self.state_dir, made)
        for event, agent, _, token, fields in events:
            if event == _MIRROR:
                self._mirror(agent, fields["lease"], int(token or 0), fields["as_of"], fields["as_of"])

    def _write(self, events: list[Event]) -> None:
        """A refusal's audit records, after its rollback (its mirror events are void: nothing changed)."""
        for event, agent, holder, token, fields in events:
            if event != _MIRROR:
                self._audit(event, agent, holder, token, **fields)

    def _mirror(self, agent: str, lease: Lease | None, token: int, as_of: float, db_now: float) -> bool:
        """This host's copy of the row (`fleet.leases.mirror`); a failure is logged, never raised (the
        change has committed), and the copy removed, so the hook cannot tell rather than read a stale
        one, until the tick copies the row again."""
        try:
            return mirror.write(self.state_dir, agent, lease, token=token, as_of=as_of, db_now=db_now)
        except OSError as exc:
            logger.warning("could not write the lease mirror of %s: %s", agent, exc)
            with contextlib.suppress(OSError):
                mirror.forget(self.state_dir, agent)
            return False

    def refresh_mirror(self, agents: list[str]) -> int:
        """Copy the rows of `agents` (this host's) into the mirror, as one read on the database's clock;
        an agent without a row is free. Returns how many copies were written (a newer one is kept)."""
        agents = [validate_agent(a) for a in agents]
        if not agents:
            return 0
        rows = self._query(f"SELECT extract(epoch FROM clock_timestamp())::float8, agent, token, changed_at, "
                           f"{_COLUMNS} FROM (SELECT 1) AS one LEFT JOIN fleet_lease ON namespace = %s "
                           "AND agent = ANY(%s)", (self._ns, agents))
        now = float(rows[0][0])
        found = {str(r[1]): (lease_of(str(r[1]), r[4:]), int(r[2]), float(r[3])) for r in rows if r[1] is not None}
        written = 0
        for agent in agents:
            lease, token, changed = found.get(agent, (None, 0, 0.0))  # no row: never leased
            written += self._mirror(agent, lease, token, changed, now)
        return written

    def _entry(self, event: str, agent: str, holder: str, token: int | None, fields: dict[str, Any]) -> dict[str, Any]:
        return audit.entry(event, agent=agent, holder=holder, token=token, surface=self._surface, **fields,
                           store="postgresql")

    def _local_dir(self) -> None:
        if not self._dir_made:
            fsutil.ensure_dir(self.state_dir)
            self._dir_made = True

    def _audit(self, event: str, agent: str, holder: str, token: int | None, **fields: Any) -> None:
        self._local_dir()
        audit.write(self.state_dir, self._entry(event, agent, holder, token, fields), (self._audit_sink,))
