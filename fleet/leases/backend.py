"""The lease store interface: what the service layer may ask of any lease backend.

Two backends satisfy it: `fleet.leases.store.LeaseStore` (lock files under the state dir, the
embedded default) and `fleet.leases.pg.PgLeaseStore` (rows in the shared PostgreSQL store). Both
keep one contract, checked by one suite run against each (tests/store/test_store_leases.py):

- claim grants a free or expired lease with a token larger than any the agent had before (per agent,
  strictly increasing, never reused, across release, expiry, takeover, restarts and repair), renews
  the holder's own live lease (token kept), and refuses anyone else with `lease_held`;
- expiry is judged on the backend's clock (the host's for files, the database's for PostgreSQL);
- a caller presenting a token that is not the live lease's is refused with `lease_lost`, decided
  in the same critical section (file lock, or database transaction) that would act on it;
- `guard` runs a body under the holder's live lease or a transient one, released on exit if it is
  still that lease;
- `get` and `info` never take the write path; `repair` moves damaged records aside where a backend
  can have them (the database cannot: it reports nothing to repair);
- `refresh_mirror` copies this host's agents' leases where Codex's approval hook reads them
  (`fleet.leases.mirror`); the files are that place already, so for them it does nothing.

A lease is an agreement among callers that go through fleet, not a force field (see `store`).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Protocol

from .rules import DEFAULT_TTL, TRANSIENT_TTL, Lease

if TYPE_CHECKING:
    from .files import LeaseInfo, RepairResult
    from .store import ClaimResult, ReleaseResult


class LeaseBackend(Protocol):
    """A lease store for the agents of one fleet; safe to use from many threads and processes."""

    def claim(self, agent: str, holder: str, ttl: float = DEFAULT_TTL, wait: float = 0.0,
              token: int | None = None) -> ClaimResult: ...

    def release(self, agent: str, holder: str, force: bool = False, token: int | None = None) -> ReleaseResult: ...

    def guard(self, agent: str, holder: str, token: int | None = None, *,
              ttl: float = TRANSIENT_TTL) -> contextlib.AbstractContextManager[Lease]: ...

    def get(self, agent: str) -> Lease | None: ...

    def info(self, agent: str) -> LeaseInfo: ...

    def known_agents(self) -> list[str]: ...

    def repair(self, agent: str, holder: str) -> RepairResult: ...

    def refresh_mirror(self, agents: list[str]) -> int: ...
