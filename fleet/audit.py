"""`audit.jsonl`: one record per operation and per lease event, appended, never rewritten.

Beside the local file, a record may go to further sinks (`AuditSink`): with a shared store, the
service and the PostgreSQL lease store pass `fleet.store.auditlog.PgAuditSink`, so every host's
records meet in one append-only table. The file is always written first; a sink that fails is logged
and its record dropped, never raised: an audit write must not turn a done operation into an error.
(The approval hook, stdlib-only, writes the file only.)
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from .fsutil import append_jsonl


class AuditSink(Protocol):
    """Somewhere else an audit record goes. `write` may raise; `record` logs and drops it."""

    def write(self, entry: dict[str, Any]) -> None: ...


def entry(event: str, **fields: Any) -> dict[str, Any]:
    """One audit record: time, event and the fields that are not None."""
    out: dict[str, Any] = {"time": round(time.time(), 3), "event": event}
    out.update({k: v for k, v in fields.items() if v is not None})
    return out


def record(state_dir: Path, event: str, *, sinks: Iterable[AuditSink] = (), **fields: Any) -> None:
    """Append one audit record: time, event (an operation or lease event) and its fields, to
    `<state_dir>/audit.jsonl` and then to each of `sinks` (whose failures are logged, not raised).

    Callers pass surface, holder, agent, outcome and error code where they apply.
    """
    write(state_dir, entry(event, **fields), sinks)


def write(state_dir: Path, made: dict[str, Any], sinks: Iterable[AuditSink] = ()) -> None:
    """Append a made record (`entry`) to the file, then to each of `sinks`, as `record` does."""
    append_jsonl(state_dir / "audit.jsonl", made)
    for sink in sinks:
        try:
            sink.write(made)
        except Exception as exc:  # any failure of a sink: the operation is done, its file record written
            import logging  # noqa: PLC0415 (rare, and `fleet status` start-up stays without it)

            logging.getLogger("fleet.audit").warning("fleet: audit record %s not written to %r (dropped): %s",
                                                     made.get("event"), sink, exc)
