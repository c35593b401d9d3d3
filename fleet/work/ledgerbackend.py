"""The ledger interface: what the service layer may ask of any assignment ledger.

Two backends satisfy it: `fleet.work.ledger.Ledger` (SQLite at `<state_dir>/fleet.db`, the embedded
default) and `fleet.work.pgledger.PgLedger` (rows in the shared PostgreSQL store, `[store]`). Both
keep one contract, checked by one suite run against each (tests/store/test_store_ledger.py):

- `transition` and `reassign` are compare-and-set: `StateConflict` when the state (or agent) is not
  the expected one, `InvalidTransition` when the lifecycle table forbids the move,
  `AssignmentNotFound` for an unknown id; the row and its one event are written together or not at all;
- `annotate_once` records a fact once, whatever the number of processes (and hosts) copying it;
- request ids make `create` and `begin_request` idempotent; a reuse with another request is
  `RequestIdConflict`; records older than `REQUEST_TTL` are pruned;
- `events_since` pages by a cursor that only grows: a reader that saw cursor N never later finds a
  new event with a cursor <= N (writers are serialised, and an event's id is taken inside the writer's
  critical section);
- events are append-only (the storage refuses UPDATE and DELETE);
- times (`created_at`, `time`, ...) are epoch seconds from the writing process's clock.

`path` is the local SQLite file that also holds the watchdog's memory (`fleet.watchdog.store`): the
ledger file itself for SQLite, the same name under the state dir (holding only the watchdog's tables)
for PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

from .lifecycle import AssignmentState
from .records import Assignment, AssignmentSummary, Event, RequestRecord


class LedgerBackend(Protocol):
    """An assignment ledger; safe to share between threads, and used by many processes at once."""

    path: Path

    def close(self) -> None: ...

    def create(self, *, task: str, holder: str, actor: str, agent: str | None = None, prompt: str | None = None,
               skills: Iterable[str] = (), read_paths: Iterable[str] = (), write_paths: Iterable[str] = (),
               checks: Iterable[str] = (), deadline: float | None = None, request_id: str | None = None,
               request: Mapping[str, Any] | None = None, details: Mapping[str, Any] | None = None,
               repo: str | None = None, budget: int | None = None) -> tuple[Assignment, bool]: ...

    def transition(self, assignment: str, to: AssignmentState, *, actor: str,
                   expect: AssignmentState | Iterable[AssignmentState] | None = None,
                   details: Mapping[str, Any] | None = None, **fields: Any) -> Assignment: ...

    def reassign(self, assignment: str, *, from_agent: str, to_agent: str, actor: str,
                 expect: Iterable[AssignmentState] = ("sent", "working"),
                 details: Mapping[str, Any] | None = None, **fields: Any) -> Assignment: ...

    def handed_over(self, agent: str, since: float) -> str | None: ...

    def annotate(self, assignment: str, kind: str, *, actor: str, details: Mapping[str, Any] | None = None,
                 **fields: Any) -> Event: ...

    def annotate_once(self, assignment: str, kind: str, key: str, *, actor: str,
                      details: Mapping[str, Any] | None = None) -> Event | None: ...

    def record_event(self, kind: str, *, actor: str, agent: str | None = None,
                     details: Mapping[str, Any] | None = None) -> Event: ...

    def set_usage(self, assignment: str, usage: Mapping[str, int]) -> bool: ...

    def get(self, assignment: str) -> Assignment: ...

    def baseline(self, assignment: str) -> dict[str, Any] | None: ...

    def assignments(self, *, open_only: bool = False, agent: str | None = None,
                    states: Iterable[AssignmentState] | None = None, limit: int = 100,
                    before: str | None = None) -> list[Assignment]: ...

    def summaries(self, *, open_only: bool = False, agent: str | None = None,
                  states: Iterable[AssignmentState] | None = None, limit: int = 100,
                  before: str | None = None) -> list[AssignmentSummary]: ...

    def queued(self, limit: int = 100) -> list[Assignment]: ...

    def agent_load(self) -> dict[str, tuple[int, float | None]]: ...

    def events_since(self, cursor: int = 0, limit: int = ..., *,
                     assignment: str | None = None) -> tuple[list[Event], int]: ...

    def events_for(self, assignment: str) -> list[Event]: ...

    def latest_cursor(self) -> int: ...

    def data_version(self) -> int: ...

    def begin_request(self, scope: str, request_id: str, request: Mapping[str, Any]) -> RequestRecord: ...

    def find_request(self, scope: str, request_id: str) -> RequestRecord | None: ...

    def finish_request(self, scope: str, request_id: str, result: Mapping[str, Any]) -> None: ...

    def forget_request(self, scope: str, request_id: str) -> None: ...

    def prune_requests(self, max_age: float = ...) -> int: ...
