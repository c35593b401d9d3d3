"""The pieces of SQL and the errors the ledger's operations share: which columns a write may set,
the listing query, the JSON encoding of stored fields. Pure: no connection, no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, Final

from fleet.errors import InvalidInput, RequestIdConflict

from .lifecycle import OPEN_STATES, STATES, AssignmentNotFound, AssignmentState

#: Rows per listing at most: far above a fleet's assignments, small enough for one result.
MAX_LIST: Final = 10_000
#: Columns a transition or `annotate` may set, and whether each holds JSON.
FIELDS: Final[dict[str, bool]] = {
    "agent": False, "holder": False, "prompt": False, "deadline": False, "turn_id": False, "reason": False,
    "receipt": True, "report": True, "verification": True, "baseline": True,
    "repo": False, "branch": False, "base_commit": False, "verified_commit": False, "merged_commit": False,
    "budget": False,
}


def list_query(columns: str, open_only: bool, agent: str | None, states: Iterable[AssignmentState] | None,
                limit: int, before: str | None) -> tuple[str, list[Any]]:
    wanted = set(states) if states is not None else set(STATES)
    if open_only:
        wanted &= OPEN_STATES
    where = [f"state IN ({', '.join('?' * len(wanted))})"] if wanted != set(STATES) else []
    params: list[Any] = sorted(wanted) if where else []
    if agent is not None:
        where.append("agent = ?")
        params.append(agent)
    if before is not None:
        where.append("id < ?")
        params.append(before)
    sql = f"SELECT {columns} FROM assignments"
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
