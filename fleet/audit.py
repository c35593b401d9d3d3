"""`audit.jsonl`: one record per operation and per lease event, appended, never rewritten."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from .fsutil import append_jsonl


def record(state_dir: Path, event: str, **fields: Any) -> None:
    """Append one audit record: time, event (an operation or lease event) and its fields.

    Callers pass surface, holder, agent, outcome and error code where they apply.
    """
    entry: dict[str, Any] = {"time": round(time.time(), 3), "event": event}
    entry.update({k: v for k, v in fields.items() if v is not None})
    append_jsonl(state_dir / "audit.jsonl", entry)
