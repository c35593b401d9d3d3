"""The pieces of SQL and the errors the ledger's operations share: which columns a write may set,
the listing query, the JSON encoding of stored fields. Pure: no connection, no I/O.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

from fleet.errors import InvalidInput, RequestIdConflict

from .lifecycle import OPEN_STATES, STATES, AssignmentNotFound, AssignmentState, StateConflict

#: Rows per listing at most: far above a fleet's assignments, small enough for one result.
MAX_LIST: Final = 10_000
#: Columns a transition or `annotate` may set, and whether each holds JSON.
FIELDS: Final[dict[str, bool]] = {
    "agent": False, "holder": False, "prompt": False, "deadline": False, "turn_id": False, "reason": False,
    "receipt": True, "report": True, "verification": True, "baseline": True,
    "repo": False, "branch": False, "base_commit": False, "verified_commit": False, "merged_commit": False,
    "budget": False,
}
#: A retry of the same request id is honoured for a week; older ids may be reused.
REQUEST_TTL: Final = 7 * 86400.0
#: Events per `events_since` page: enough for a lead's poll, small enough for one MCP result.
DEFAULT_EVENT_PAGE: Final = 200
MAX_EVENT_PAGE: Final = 5000
#: `assign`, or `send:<agent>` (a plain send's ids are per agent, as its journal lookup was).
REQUEST_SCOPE: Final = re.compile(r"^[a-z][a-z0-9_]{0,15}(?::[a-z][a-z0-9-]{0,31})?$")
#: Event details are a few fields; a bigger blob belongs in an assignment column.
MAX_DETAILS_BYTES: Final = 64 * 1024
EVENT_KIND: Final = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


def list_query(columns: str, open_only: bool, agent: str | None, states: Iterable[AssignmentState] | None,
                limit: int, before: str | None, *, table: str = "assignments",
                namespace: str | None = None) -> tuple[str, list[Any]]:
    """The listing's SQL with `?` placeholders; with `namespace`, only that namespace's rows (the
    shared store's tables)."""
    wanted = set(states) if states is not None else set(STATES)
    if open_only:
        wanted &= OPEN_STATES
    where = ["namespace = ?"] if namespace is not None else []
    params: list[Any] = [namespace] if namespace is not None else []
    if wanted != set(STATES):
        where.append(f"state IN ({', '.join('?' * len(wanted))})")
        params += sorted(wanted)
    if agent is not None:
        where.append("agent = ?")
        params.append(agent)
    if before is not None:
        where.append("id < ?")
        params.append(before)
    sql = f"SELECT {columns} FROM {table}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY id DESC LIMIT ?"
    params.append(max(1, min(limit, MAX_LIST)))
    return sql, params


def field_values(fields: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown:
        raise InvalidInput(f"Cannot set {', '.join(unknown)} on an assignment.",
                           hint=f"Settable fields: {', '.join(FIELDS)}.")
    return {k: (dumps(v) if FIELDS[k] and v is not None else v) for k, v in fields.items()}


def expected_states(expect: AssignmentState | Iterable[AssignmentState] | None) -> set[str] | None:
    if expect is None:
        return None
    return {expect} if isinstance(expect, str) else set(expect)


def event_text(kind: str, details: Mapping[str, Any]) -> str:
    """An event's details as stored (JSON), once its kind and size are checked."""
    if not EVENT_KIND.match(kind):
        raise InvalidInput(f"Bad event kind {kind!r}.", hint="Use a short snake_case word.")
    text = dumps(dict(details))
    if len(text.encode()) > MAX_DETAILS_BYTES:
        raise InvalidInput(f"Event details are larger than {MAX_DETAILS_BYTES} bytes.",
                           hint="Store large data in an assignment field instead.")
    return text


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def not_found(assignment: str) -> AssignmentNotFound:
    return AssignmentNotFound(f"No assignment {assignment!r} in the ledger.",
                              hint="Run `fleet assignments` to list them.", assignment=assignment)


def request_conflict(scope: str, request_id: str) -> RequestIdConflict:
    """`request_id_conflict`: an id reused for a different request in `scope`."""
    what = "assignment" if scope == "assign" else "request"
    return RequestIdConflict(
        f"The request id {request_id!r} was already used for a different {what}.",
        hint="Use a new request id for a new request; reuse one only to retry the identical request.",
        request_id=request_id, scope=scope,
    )


def check_scope(scope: str) -> None:
    """Refuse a request scope that is not `REQUEST_SCOPE`'s (`begin_request`)."""
    if not REQUEST_SCOPE.match(scope):
        raise InvalidInput(f"Bad request scope {scope!r}.", hint="Use a short lower-case word.")


def state_conflict(assignment: str, current: str, expected: set[str]) -> StateConflict:
    """A transition's compare-and-set failed: the assignment is `current`, not in `expected` (another
    process moved it first)."""
    return StateConflict(
        f"Assignment {assignment} is {current}, not {' or '.join(sorted(expected))}: "
        "another process moved it first.",
        hint=f"Run `fleet show {assignment}` to see what happened.",
        assignment=assignment, state=current,
    )


def reassign_conflict(assignment: str, current: str, agent: str | None, expected: set[str],
                      from_agent: str) -> StateConflict | None:
    """Why a `reassign` must not happen (the assignment is not in `expected` on `from_agent` any more:
    another process moved it first), or None."""
    if current in expected and agent == from_agent:
        return None
    want = " or ".join(sorted(expected))
    return StateConflict(f"Assignment {assignment} is {current} on {agent or 'no agent'}, not {want} on {from_agent}: "
                         "another process moved it first.", hint=f"Run `fleet show {assignment}` to see what happened.",
                         assignment=assignment, state=current, agent=agent)
