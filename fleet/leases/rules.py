"""Lease rules without I/O: the record, its states, the claim decision and input validation.

Everything here takes the clock reading as an argument so a test can set fields, call one function
and assert the outcome. `fleet.leases` adds the files, the per-agent lock and the audit trail.
"""

from __future__ import annotations

import math
import re
from typing import Any, Final, Literal, NamedTuple, TypedDict

from fleet.errors import HolderReserved, InvalidInput, LeaseHeld, LeaseLost, NotLeaseHolder
from fleet.vocab import AGENT_NAME, AGENT_NAME_RULE, HOLDER_PATTERN, RESERVED_HOLDER_WORDS

LeaseState = Literal["free", "held", "expired"]
ClaimStatus = Literal["claimed", "renewed"]

#: Half an hour: long enough for a human or agent to finish a task, short enough that a vanished
#: holder does not block an agent for the rest of the day.
DEFAULT_TTL: Final = 1800.0
#: One day. A longer lease is a reservation, which fleet does not offer.
MAX_TTL: Final = 86400.0
MIN_TTL: Final = 1.0
#: Ten minutes: a CLI call or MCP tool call should not hang longer than that waiting for a lease.
MAX_WAIT: Final = 600.0
#: The shortest transient lease an operation takes on a free agent; it is released (token compared)
#: when the operation ends, so its length matters only if the operation's process dies.
TRANSIENT_TTL: Final = 120.0
#: Added to an operation's own time bound for its transient lease: a slow tmux, the lease and audit
#: bookkeeping around the body. The lease must outlive the operation, or another holder could take
#: the agent while the operation still drives it.
TRANSIENT_SLACK: Final = 60.0
#: Version of the on-disk record; a reader refuses any other.
RECORD_VERSION: Final = 1

# One definition each: the same patterns the config schema and the operation schemas use.
HOLDER_RE: Final = re.compile(HOLDER_PATTERN)
AGENT_RE: Final = re.compile(AGENT_NAME)


class Lease(NamedTuple):
    """A granted lease as stored: times are epoch seconds from the store's clock."""

    agent: str
    holder: str
    token: int
    acquired_at: float
    renewed_at: float
    expires_at: float
    ttl: float
    transient: bool = False

    def expires_in(self, now: float) -> float:
        return round(self.expires_at - now, 3)


class Grant(NamedTuple):
    """The outcome of a successful claim decision; `previous` is the expired lease it replaced, if any."""

    lease: Lease
    status: ClaimStatus
    previous: Lease | None


class StoredRecord(NamedTuple):
    """A parsed record file: the live-or-expired lease (None once released), the last token it
    carries and the boot it was written in (for the token high-water rule in `fleet.leases`)."""

    lease: Lease | None
    last_token: int
    boot_id: str


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


def lease_state(lease: Lease | None, now: float) -> LeaseState:
    if lease is None:
        return "free"
    return "held" if now < lease.expires_at else "expired"


def decide_claim(
    current: Lease | None,
    last_token: int,
    *,
    agent: str,
    holder: str,
    ttl: float,
    now: float,
    transient: bool = False,
) -> Grant:
    """Grant a free or expired lease with `last_token + 1`, renew the holder's own live lease
    (token kept, the newly asked TTL from now, no longer transient), or raise `LeaseHeld`.

    An expired lease is never renewed, even for the same holder: its token was fenced the moment
    it expired (see `check_fence`), so the holder gets a new one.
    """
    state = lease_state(current, now)
    if current is not None and state == "held":
        if current.holder != holder:
            raise lease_held_error(current, now)
        renewed = current._replace(renewed_at=now, expires_at=now + ttl, ttl=ttl, transient=False)
        return Grant(renewed, "renewed", None)
    lease = Lease(
        agent=agent,
        holder=holder,
        token=last_token + 1,
        acquired_at=now,
        renewed_at=now,
        expires_at=now + ttl,
        ttl=ttl,
        transient=transient,
    )
    return Grant(lease, "claimed", current)


def transient_ttl(bound: float) -> float:
    """The transient lease's TTL for an operation that may run for `bound` seconds: at least
    `TRANSIENT_TTL`, always `TRANSIENT_SLACK` past the bound, never more than `MAX_TTL`."""
    return min(MAX_TTL, max(TRANSIENT_TTL, bound + TRANSIENT_SLACK))


def lease_held_error(lease: Lease, now: float) -> LeaseHeld:
    expires_in = lease.expires_in(now)
    retry_after = max(0.0, expires_in)
    message = f"Agent {lease.agent} is leased to {lease.holder} for another {retry_after:.1f}s."
    return LeaseHeld(
        message,
        hint=(
            f"Run `fleet leases` to see who holds it, retry after {math.ceil(retry_after)}s, or pass --wait."
        ),
        agent=lease.agent,
        holder=lease.holder,
        token=lease.token,
        expires_in=expires_in,
        retry_after=retry_after,
    )


def lease_info(agent: str, lease: Lease | None, now: float) -> LeaseInfo:
    """The lease as shown to people (`info`); an expired lease still names its last holder."""
    if lease is None:
        return {"agent": agent, "state": lease_state(lease, now), "holder": None, "token": None, "expires_in": None,
                "expires_at": None, "acquired_at": None, "ttl": None, "transient": None}
    return {"agent": agent, "state": lease_state(lease, now), "holder": lease.holder, "token": lease.token,
            "expires_in": max(0.0, lease.expires_in(now)), "expires_at": lease.expires_at,
            "acquired_at": lease.acquired_at, "ttl": lease.ttl, "transient": lease.transient}


def claim_result(lease: Lease, status: ClaimStatus) -> ClaimResult:
    """What a granted or renewed claim answers."""
    return {"agent": lease.agent, "holder": lease.holder, "token": lease.token, "acquired_at": lease.acquired_at,
            "renewed_at": lease.renewed_at, "expires_at": lease.expires_at, "ttl": lease.ttl, "status": status}


def release_result(agent: str, current: Lease | None, *, released: bool, forced: bool = False) -> ReleaseResult:
    """What `release` answers: `current` is the lease it found (None: free), `released` whether it ended it."""
    return {"agent": agent, "released": released, "previous_holder": current.holder if current else None,
            "token": current.token if current else None, "forced": forced}


def not_holder_error(agent: str, holder: str, current: Lease) -> NotLeaseHolder:
    """`holder` may not release `current`, another holder's live lease, without `force`."""
    return NotLeaseHolder(
        f"{holder} cannot release agent {agent}: it is leased to {current.holder} (token {current.token}).",
        hint=f"Only the holder can release it; an operator can break it with `fleet release {agent} --force`.",
        agent=agent, holder=current.holder, token=current.token, your_holder=holder)


def check_fence(
    current: Lease | None, holder: str, token: int | None, now: float, agent: str | None = None
) -> LeaseLost | None:
    """The `LeaseLost` a caller presenting `token` gets, or None when the token is current (or absent).

    A token is current only while its lease is live: an expired lease fences its own holder too,
    since anyone may have taken the agent over in the meantime. `agent` names the agent when there
    is no record to take the name from.
    """
    if token is None:
        return None
    live = current if lease_state(current, now) == "held" else None
    if live is not None and live.token == token:
        return None
    agent = agent_of(current) or agent
    if live is None:
        message = f"Your lease on agent {agent} (token {token}) has ended; nobody holds it now."
    else:
        message = (
            f"Your lease on agent {live.agent} (token {token}) is no longer current; "
            f"{live.holder} holds it with token {live.token}."
        )
    return LeaseLost(
        message,
        hint="Claim the agent again with `fleet claim` and use the new token.",
        agent=agent,
        holder=live.holder if live else None,
        token=live.token if live else None,
        your_token=token,
        your_holder=holder,
    )


def agent_of(lease: Lease | None) -> str | None:
    return lease.agent if lease else None


# --- validation -------------------------------------------------------------------------------


def _finite(value: object) -> float | None:
    """`value` as a float if it is a finite int or float (bool is not a number here), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def validate_ttl(ttl: object) -> float:
    number = _finite(ttl)
    if number is None or not MIN_TTL <= number <= MAX_TTL:
        raise InvalidInput(
            f"The lease TTL must be a number of seconds from {MIN_TTL:g} to {MAX_TTL:g}, not {ttl!r}.",
            hint=f"Pass --ttl with a value in that range (default {DEFAULT_TTL:g}).",
            field="ttl",
        )
    return number


def validate_wait(wait: object) -> float:
    number = _finite(wait)
    if number is None or not 0 <= number <= MAX_WAIT:
        raise InvalidInput(
            f"The wait must be a number of seconds from 0 to {MAX_WAIT:g}, not {wait!r}.",
            hint="Pass --wait with a value in that range, or 0 to fail at once when the agent is leased.",
            field="wait",
        )
    return number


def validate_holder(holder: object) -> str:
    if not isinstance(holder, str) or not HOLDER_RE.fullmatch(holder):
        raise InvalidInput(
            f"The holder name {holder!r} is not valid: use 1-64 letters, digits or ._:@+/- "
            "starting with a letter or digit, with no spaces.",
            hint="Pass --holder with a name such as alice or ci:job-42.",
            field="holder",
        )
    return holder


def is_reserved_holder(holder: str) -> bool:
    """True for a holder name in fleet's own namespace (`RESERVED_HOLDER_WORDS`); pure."""
    return holder.split(":", 1)[0].casefold() in RESERVED_HOLDER_WORDS


def validate_caller_holder(holder: object) -> str:
    """`validate_holder`, and refuse fleet's own names: for holders that come from a surface (an
    argument, `$FLEET_HOLDER`), never for the ones fleet's own code passes to the lease store."""
    name = validate_holder(holder)
    if is_reserved_holder(name):
        first = name.split(":", 1)[0]
        raise HolderReserved(
            f"The holder name {name!r} is reserved for fleet itself ({first!r} names fleet's own "
            "watchdog, assignment leases or work layer).",
            hint="Pass --holder (or set $FLEET_HOLDER) with a name of your own, such as alice or ci:job-42.",
            field="holder",
        )
    return name


def validate_agent(agent: object) -> str:
    if not isinstance(agent, str) or not AGENT_RE.fullmatch(agent):
        raise InvalidInput(
            f"The agent name {agent!r} is not valid: use {AGENT_NAME_RULE}.",
            hint="Run `fleet status` to see the configured agent names.",
            field="agent",
        )
    return agent


def validate_token(token: object) -> int | None:
    if token is None:
        return None
    if not isinstance(token, int) or isinstance(token, bool) or token < 1:
        raise InvalidInput(
            f"The lease token must be a positive whole number, not {token!r}.",
            hint="Pass the token `fleet claim` printed, or omit it to act under a transient lease.",
            field="token",
        )
    return token


# --- the on-disk record -----------------------------------------------------------------------


def lease_to_record(lease: Lease, boot_id: str) -> dict[str, Any]:
    return {
        "version": RECORD_VERSION,
        "agent": lease.agent,
        "holder": lease.holder,
        "token": lease.token,
        "acquired_at": lease.acquired_at,
        "renewed_at": lease.renewed_at,
        "expires_at": lease.expires_at,
        "ttl": lease.ttl,
        "transient": lease.transient,
        "boot_id": boot_id,
    }


def free_record(agent: str, last_token: int, now: float, boot_id: str) -> dict[str, Any]:
    """A released agent keeps its record so the last token stays next to the lease it fenced."""
    return {
        "version": RECORD_VERSION,
        "agent": agent,
        "holder": None,
        "token": last_token,
        "released_at": now,
        "boot_id": boot_id,
    }


def parse_record(obj: object, agent: str) -> StoredRecord:
    """Check the shape of a decoded record; raise ValueError naming the first problem."""
    if not isinstance(obj, dict):
        raise ValueError("the record is not a JSON object")
    if obj.get("version") != RECORD_VERSION:
        raise ValueError(f"unknown record version {obj.get('version')!r}")
    if obj.get("agent") != agent:
        raise ValueError(f"the record names agent {obj.get('agent')!r}")
    token = obj.get("token")
    if not isinstance(token, int) or isinstance(token, bool) or token < 0:
        raise ValueError(f"bad token {token!r}")
    boot_id = obj.get("boot_id")
    if not isinstance(boot_id, str):
        raise ValueError("missing boot_id")
    holder = obj.get("holder")
    if holder is None:
        return StoredRecord(None, token, boot_id)
    if not isinstance(holder, str) or not HOLDER_RE.fullmatch(holder) or token < 1:
        raise ValueError(f"bad holder {holder!r} or token {token!r}")
    times = {}
    for key in ("acquired_at", "renewed_at", "expires_at", "ttl"):
        value = _finite(obj.get(key))
        if value is None:
            raise ValueError(f"bad {key} {obj.get(key)!r}")
        times[key] = value
    transient = obj.get("transient")
    if not isinstance(transient, bool):
        raise ValueError(f"bad transient {transient!r}")
    lease = Lease(agent=agent, holder=holder, token=token, transient=transient, **times)
    return StoredRecord(lease, token, boot_id)
