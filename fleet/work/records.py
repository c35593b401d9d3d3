"""The ledger's records: assignment rows, compact summaries, events, idempotency records, and the
assignment id. Pure data and pure functions; `fleet.work.ledger` reads and writes them.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from .lifecycle import OPEN_STATES, AssignmentState

LIST_COLUMNS: Final = ("id, agent, holder, task, prompt, skills, read_paths, write_paths, checks, deadline, state, "
                        "receipt, turn_id, report, verification, reason, request_id, created_at, updated_at, "
                        "sent_at, ended_at, repo, branch, base_commit, verified_commit, merged_commit, usage, budget")

#: A list shows the start of each task; `get` has the whole of it.
TASK_PREVIEW_CHARS: Final = 200
SUMMARY_COLUMNS: Final = (f"id, agent, holder, substr(task, 1, {TASK_PREVIEW_CHARS}), length(task), skills, "
                           "write_paths, deadline, state, turn_id, json_extract(report, '$.status'), "
                           "json_extract(verification, '$.verdict'), reason, created_at, updated_at, sent_at, ended_at")

_CROCKFORD: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


@dataclass(frozen=True)
class Assignment:
    """One ledger row (without the verification baseline, which `Ledger.baseline` returns)."""

    id: str
    agent: str | None
    holder: str
    task: str
    prompt: str | None
    skills: tuple[str, ...]
    read_paths: tuple[str, ...]
    write_paths: tuple[str, ...]
    checks: tuple[str, ...]
    deadline: float | None
    state: AssignmentState
    receipt: dict[str, Any] | None
    turn_id: str | None
    report: dict[str, Any] | None
    verification: dict[str, Any] | None
    reason: str | None
    request_id: str | None
    created_at: float
    updated_at: float
    sent_at: float | None
    ended_at: float | None
    #: A repo agent's assignment (`fleet.service.worktree`): None for a plain agent's.
    repo: str | None = None
    branch: str | None = None
    base_commit: str | None = None
    verified_commit: str | None = None
    merged_commit: str | None = None
    #: The tokens of the turns it caused so far (input, cached_input, output, reasoning, turns).
    usage: dict[str, int] | None = None
    #: Its token budget (`fleet.tokens.counted` of `usage` may not pass it), None for none.
    budget: int | None = None

    @property
    def open(self) -> bool:
        return self.state in OPEN_STATES

    def to_dict(self, *, with_prompt: bool = True) -> dict[str, Any]:
        out = {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}
        if not with_prompt:
            del out["prompt"]
        return out


@dataclass(frozen=True)
class AssignmentSummary:
    """The compact row a list shows: the task's first `TASK_PREVIEW_CHARS` characters (`task_chars`
    is its full length), the report's status and the verdict instead of the whole documents."""

    id: str
    agent: str | None
    holder: str
    task: str
    task_chars: int
    skills: tuple[str, ...]
    write_paths: tuple[str, ...]
    deadline: float | None
    state: AssignmentState
    turn_id: str | None
    report_status: str | None
    verdict: str | None
    reason: str | None
    created_at: float
    updated_at: float
    sent_at: float | None
    ended_at: float | None

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class Event:
    """One row of the append-only event log; `cursor` is its row id."""

    cursor: int
    time: float
    assignment: str | None
    agent: str | None
    actor: str
    kind: str
    from_state: str | None
    to_state: str | None
    details: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"cursor": self.cursor, "time": self.time, "assignment": self.assignment, "agent": self.agent,
                "actor": self.actor, "kind": self.kind, "from": self.from_state, "to": self.to_state,
                "details": self.details}


@dataclass(frozen=True)
class RequestRecord:
    """An idempotency record. `fresh` is True when this call created it (the caller goes ahead);
    otherwise `result` is what the first call stored (None while it is still running or died)."""

    scope: str
    request_id: str
    sha: str
    result: dict[str, Any] | None
    created_at: float
    fresh: bool


def new_assignment_id(now: float, random_bytes: bytes | None = None) -> str:
    """`as-` + a ULID: 48 bits of milliseconds since the epoch, then 80 random bits, Crockford base32.

    Ids from different milliseconds sort by time. `Ledger.create` also makes each new id sort after
    every id already in the ledger (`next_id`), so ids sort in creation order.
    """
    rand = random_bytes if random_bytes is not None else os.urandom(10)
    if len(rand) != 10:
        raise ValueError("a ULID takes exactly 10 random bytes")
    return _encode((int(now * 1000) & (2**48 - 1)) << 80 | int.from_bytes(rand, "big"))


def next_id(candidate: str, newest: str | None) -> str:
    """`candidate`, or the id right after `newest` when the clock has not moved past it (same
    millisecond, or a clock step back): ids then sort in creation order across all processes."""
    if newest is None or candidate > newest:
        return candidate
    value = 0
    for ch in newest[3:]:
        value = value * 32 + _CROCKFORD.index(ch)
    return _encode(value + 1)


def request_sha(request: Mapping[str, Any]) -> str:
    """The sha256 of a request's canonical JSON (sorted keys, no spaces): what a retry must match."""
    text = json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def assignment_from_row(r: tuple[Any, ...]) -> Assignment:
    """An `Assignment` from a row selected with `LIST_COLUMNS`."""
    return Assignment(
        id=r[0], agent=r[1], holder=r[2], task=r[3], prompt=r[4], skills=tuple(json.loads(r[5])),
        read_paths=tuple(json.loads(r[6])), write_paths=tuple(json.loads(r[7])), checks=tuple(json.loads(r[8])),
        deadline=r[9], state=r[10], receipt=loads_or_none(r[11]), turn_id=r[12], report=loads_or_none(r[13]),
        verification=loads_or_none(r[14]), reason=r[15], request_id=r[16], created_at=r[17], updated_at=r[18],
        sent_at=r[19], ended_at=r[20], repo=r[21], branch=r[22], base_commit=r[23], verified_commit=r[24],
        merged_commit=r[25], usage=loads_or_none(r[26]), budget=r[27],
    )


def summary_from_row(r: tuple[Any, ...]) -> AssignmentSummary:
    """An `AssignmentSummary` from a row selected with `SUMMARY_COLUMNS`."""
    return AssignmentSummary(r[0], r[1], r[2], r[3], r[4], tuple(json.loads(r[5])), tuple(json.loads(r[6])), *r[7:])


def loads_or_none(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _encode(value: int) -> str:
    chars = []
    for _ in range(26):
        value, digit = divmod(value, 32)
        chars.append(_CROCKFORD[digit])
    return "as-" + "".join(reversed(chars))
