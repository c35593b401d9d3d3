"""Approvals from Codex's exact signal: the files and journal records of fleet's approval hold.

Codex 0.169 runs the PermissionRequest hook just before it would open an approval dialog (never when
no approval is needed), with `tool_name` (`Bash`, `apply_patch`) and `tool_input` (`command`, and
`description`: the model's justification). Fleet's hook (`fleet.hooks.hold`) holds the call: it
journals `approval_requested` (`request_record`), then waits for an answer to *this* request in
`<agent_dir>/approval-answer.json`, which `fleet approve` / `fleet deny` or the watchdog's approve
policy write with `write_answer`, and journals `approval_answered` or `approval_released`.
(notes/codex-cli.md)

`pending(events)` folds the journal into the approval the agent waits on now, if any: the latest
request of the open turn with no answer and no later sign of that turn going on (a tool starting or
finishing, the turn ending). That, not the screen, is `waiting_approval`.

This module is the format the hook, the service and the watchdog's facts share; the hold itself is
the hook's. The hook process loads it (`fleet.hooks` says what that asks of a module).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, Literal

from fleet.fsutil import read_bytes_nofollow, write_atomic

ANSWER_FILE: Final = "approval-answer.json"
#: The answer names a request; a file bigger than this is not ours.
MAX_ANSWER_BYTES: Final = 16 * 1024
#: Shown in status and escalations; a longer command is cut (the journal keeps this much, marks the
#: copy with `CUT_MARK`, and records `command_truncated` and `command_length`). The policy judges the
#: whole command before it is cut, and never allows one this long.
MAX_COMMAND_CHARS: Final = 4000
#: Ends a cut copy, so that it never reads as whole (and, not being ASCII, can never be approved by rule).
CUT_MARK: Final = " \u2026[cut]"
MAX_MESSAGE_CHARS: Final = 2000
#: Events after a request that mean the call went on (answered at the dialog, or the turn moved on).
_MOVED_ON: Final = frozenset({"tool_started", "tool_completed", "turn_completed", "turn_failed", "turn_aborted",
                              "turn_started", "launched", "stopped"})

Decision = Literal["allow", "deny"]


def new_request_id() -> str:
    return "ap-" + os.urandom(8).hex()


def payload_command(payload: Mapping[str, Any]) -> str:
    """The whole command (or patch) of a PermissionRequest payload, as Codex sent it; a non-string
    is shown as its JSON."""
    tool_input = payload.get("tool_input")
    command = tool_input.get("command", "") if isinstance(tool_input, dict) else ""
    return command if isinstance(command, str) else json.dumps(command, ensure_ascii=False)


def request_record(payload: Mapping[str, Any], request: str, now: float, hold: float) -> dict[str, Any]:
    """The `approval_requested` journal event for a PermissionRequest hook payload. A command longer
    than `MAX_COMMAND_CHARS` is journaled cut, marked, with `command_truncated` and its full length."""
    tool_input = payload.get("tool_input")
    tool_input = tool_input if isinstance(tool_input, dict) else {}
    command = payload_command(payload)
    cut = len(command) > MAX_COMMAND_CHARS
    record: dict[str, Any] = {
        "time": round(now, 3),
        "event": "approval_requested",
        "source": "hook",
        "hook": "PermissionRequest",
        "request": request,
        "session_id": payload.get("session_id"),
        "turn_id": payload.get("turn_id"),
        "tool": str(payload.get("tool_name") or ""),
        "command": command[:MAX_COMMAND_CHARS] + CUT_MARK if cut else command,
        "justification": str(tool_input.get("description") or "")[:MAX_MESSAGE_CHARS],
        "hold_until": round(now + hold, 3),
    }
    if cut:
        record.update(command_truncated=True, command_length=len(command))
    return record


def write_answer(agent_dir: str | os.PathLike[str], request: str, decision: Decision, *, by: str,
                 message: str = "", now: float | None = None) -> None:
    """Answer `request` for the hook that holds it: one atomic file write (temp + rename), never
    through a symlink. A later answer to the same request replaces an unread one."""
    body = json.dumps({"request": request, "decision": decision, "message": message[:MAX_MESSAGE_CHARS],
                       "by": by, "time": round(time.time() if now is None else now, 3)})
    write_atomic(Path(agent_dir) / ANSWER_FILE, body.encode(), durable=False)


def read_answer(agent_dir: str | os.PathLike[str], request: str) -> dict[str, Any] | None:
    """The answer to `request`, if one is waiting (an answer to another request is ignored)."""
    try:
        raw = read_bytes_nofollow(Path(agent_dir) / ANSWER_FILE, MAX_ANSWER_BYTES)
    except OSError:  # none yet, or not a plain file (`UnsafePath`)
        return None
    try:
        answer = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(answer, dict) or answer.get("request") != request or answer.get("decision") not in ("allow",
                                                                                                        "deny"):
        return None
    return answer


def pending(events: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The approval the agent waits on now (its `approval_requested` record plus `held`: whether the
    hook still holds it), or None. Only the events after the latest launch count."""
    current: dict[str, Any] | None = None
    for ev in events:
        kind = ev.get("event")
        if kind == "approval_requested":
            current = {**ev, "held": True}
        elif current is None:
            continue
        elif kind == "approval_answered" and ev.get("request") == current.get("request"):
            current = None
        elif kind == "approval_released" and ev.get("request") == current.get("request"):
            current = {**current, "held": False, "released_at": ev.get("time")}
        elif kind in _MOVED_ON:
            current = None
    return current
