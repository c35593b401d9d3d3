r"""Assignment states and the transitions allowed between them: one table, no I/O.

```
queued -> sent -> working -> reported -> verified | rejected
            \________________^
any open state -> cancelled;  queued, sent, working -> failed
```

- `queued`: accepted, waiting for an agent (`--queue`); `sent`: delivered, receipt recorded;
  `working`: the agent's turn is running; `reported`: a valid report is in, verification pending.
- End states: `verified`, `rejected` (with reasons), `failed` (not delivered, agent exited, deadline
  passed with nothing), `cancelled`. Nothing leaves an end state: a redo is a new assignment.
- `sent -> reported` is allowed because a short turn can end before fleet sees it start.

The ledger enforces this table inside its compare-and-set `transition`. Stdlib only.
"""

from __future__ import annotations

import re
from typing import Final, Literal, get_args

from fleet.errors import AssignmentNotFound, InvalidTransition, StateConflict

__all__ = [
    "ASSIGNMENT_ID_PATTERN", "ASSIGNMENT_ID_RE", "END_STATES", "OPEN_STATES", "STATES", "TRANSITIONS",
    "AssignmentNotFound", "AssignmentState", "InvalidTransition", "StateConflict", "can_transition",
    "check_transition", "is_open",
]

AssignmentState = Literal["queued", "sent", "working", "reported", "verified", "rejected", "failed", "cancelled"]
STATES: Final[tuple[AssignmentState, ...]] = get_args(AssignmentState)
OPEN_STATES: Final[frozenset[AssignmentState]] = frozenset({"queued", "sent", "working", "reported"})
END_STATES: Final[frozenset[AssignmentState]] = frozenset({"verified", "rejected", "failed", "cancelled"})

TRANSITIONS: Final[dict[str, frozenset[str]]] = {
    "queued": frozenset({"sent", "failed", "cancelled"}),
    "sent": frozenset({"working", "reported", "failed", "cancelled"}),
    "working": frozenset({"reported", "failed", "cancelled"}),
    "reported": frozenset({"verified", "rejected", "cancelled"}),
    "verified": frozenset(),
    "rejected": frozenset(),
    "failed": frozenset(),
    "cancelled": frozenset(),
}

#: `as-` + 26 Crockford base32 characters (a ULID: 48-bit millisecond time, 80 random bits), so ids
#: sort by creation time as plain strings.
ASSIGNMENT_ID_PATTERN: Final = r"^as-[0-9A-HJKMNP-TV-Z]{26}(?!\n)$"
ASSIGNMENT_ID_RE: Final = re.compile(ASSIGNMENT_ID_PATTERN)


def can_transition(current: str, to: str) -> bool:
    return to in TRANSITIONS.get(current, frozenset())


def is_open(state: str) -> bool:
    return state in OPEN_STATES


def check_transition(assignment: str, current: str, to: str) -> None:
    """Raise `InvalidTransition` (naming both states and what is allowed) unless `current -> to` is."""
    if can_transition(current, to):
        return
    allowed = sorted(TRANSITIONS.get(current, frozenset()))
    nxt = f"it can go to {', '.join(allowed)}" if allowed else f"{current} is an end state"
    raise InvalidTransition(
        f"Assignment {assignment} cannot go from {current} to {to}: {nxt}.",
        hint=f"Run `fleet show {assignment}` to see its state and events.",
        assignment=assignment, state=current, to=to,
    )
