"""Fenced, expiring leases on named agents (see `store` for what a lease does and does not promise)."""

from __future__ import annotations

from .rules import DEFAULT_TTL, TRANSIENT_TTL, ClaimStatus, Lease, LeaseState, lease_state, transient_ttl
from .store import ClaimResult, LeaseInfo, LeaseStore, ReleaseResult, RepairResult

__all__ = [
    "DEFAULT_TTL",
    "TRANSIENT_TTL",
    "ClaimResult",
    "ClaimStatus",
    "Lease",
    "LeaseInfo",
    "LeaseState",
    "LeaseStore",
    "ReleaseResult",
    "RepairResult",
    "lease_state",
    "transient_ttl",
]
