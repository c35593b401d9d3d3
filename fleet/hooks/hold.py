"""fleet's approval hold: the PermissionRequest hook's body, which holds Codex's call until an answer.

Fleet's hook (`receiver.py hook AGENT_DIR --hold SECONDS`, see `fleet.agents.codex`):

1. journals `approval_requested` (request id, tool, command, justification, `hold_until`);
2. lets the `[watchdog] approve` policy answer at once if it can (`fleet.hooks.approve`);
3. else polls `<agent_dir>/approval-answer.json` every `POLL` seconds for an answer to *this* request,
   which `fleet approve` / `fleet deny` or the watchdog's approve policy write with
   `fleet.agents.approvals.write_answer`;
4. on an answer: removes the file, journals `approval_answered` and prints the decision;
   after `hold` seconds without one: journals `approval_released` and exits silently, so the dialog
   opens and a person can answer at the pane (the watchdog escalates it, naming the command).

The hook may answer `allow` (the dialog never opens) or `deny` with a message (the model sees the
rejection); if it exits without a decision, or Codex's per-hook timeout kills it, the dialog opens as
usual. Everything fails open. (notes/codex-cli.md)
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from fleet.agents.approvals import ANSWER_FILE, MAX_MESSAGE_CHARS, Decision, new_request_id, read_answer, request_record
from fleet.vocab import WATCHDOG_POLICY_HOLDER

#: How often the holding hook looks for an answer: a person's answer lands within this.
POLL: Final = 0.2


def decision_output(decision: Decision, message: str = "") -> dict[str, Any]:
    """What the hook prints for Codex: allow skips the dialog, deny rejects the call with `message`."""
    verdict: dict[str, Any] = {"behavior": decision}
    if decision == "deny":
        verdict["message"] = message or "Denied by the fleet supervisor."
    return {"hookSpecificOutput": {"hookEventName": "PermissionRequest", "decision": verdict}}



PolicyHook = Callable[[dict[str, Any], Mapping[str, Any]], "tuple[Decision, str] | None"]


def hold(agent_dir: str, payload: Mapping[str, Any], seconds: float, append: Callable[[dict[str, Any]], None], *,
         policy: PolicyHook | None = None,
         clock: Callable[[], float] = time.time,
         sleep: Callable[[float], None] = time.sleep) -> dict[str, Any] | None:
    """The PermissionRequest hook's body: journal the request, let `policy` answer it at once if it
    can (given the journaled record and the payload, whose whole command is what it must judge: a
    decision and its reason, or None), else wait up to `seconds`
    for an answer; return the hook output (None: no decision, the dialog opens). `append` writes one
    journal event. A failing `policy` counts as no answer."""
    request = new_request_id()
    start = clock()
    record = request_record(payload, request, start, seconds)
    append(record)
    try:
        decided = policy(record, payload) if policy is not None else None
    except Exception:
        decided = None
    if decided is not None:
        verdict, reason = decided
        append({"time": round(clock(), 3), "event": "approval_answered", "source": "hook", "request": request,
                "turn_id": payload.get("turn_id"), "decision": verdict, "by": WATCHDOG_POLICY_HOLDER,
                "message": reason[:MAX_MESSAGE_CHARS]})
        return decision_output(verdict, reason if verdict == "deny" else "")
    while True:
        answer = read_answer(agent_dir, request)
        if answer is not None:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(agent_dir, ANSWER_FILE))
            decision: Decision = answer["decision"]
            append({"time": round(clock(), 3), "event": "approval_answered", "source": "hook", "request": request,
                    "turn_id": payload.get("turn_id"), "decision": decision, "by": str(answer.get("by") or ""),
                    "message": str(answer.get("message") or "")})
            return decision_output(decision, str(answer.get("message") or ""))
        if clock() - start >= seconds:
            append({"time": round(clock(), 3), "event": "approval_released", "source": "hook", "request": request,
                    "turn_id": payload.get("turn_id")})
            return None
        sleep(POLL)
