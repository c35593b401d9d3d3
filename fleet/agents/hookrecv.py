"""Codex hook and notify receiver: appends one normalized event to an agent's journal.

Run by Codex itself (`python -S hookrecv.py hook AGENT_DIR` with the hook payload on stdin, or
`python -S hookrecv.py notify AGENT_DIR [--chain PROG ARGS...] JSON`). Standalone on purpose: it
imports nothing from fleet so that it starts in a few milliseconds, and it prints nothing, because a
hook's stdout can be fed back to the model. It never fails the hook: errors go to `hookrecv.err`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

TITLE_PREFIX = "Generate a concise, single-line task title"
PROMPT_CAP = 65536
HOOK_EVENTS = {
    "SessionStart": "session_started",
    "UserPromptSubmit": "turn_started",
    "Stop": "turn_completed",
    "PreToolUse": "tool_started",
    "PostToolUse": "tool_completed",
}


def _append(agent_dir: str, record: dict[str, object]) -> None:
    line = (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
    fd = os.open(
        os.path.join(agent_dir, "events.jsonl"),
        os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW,
        0o600,
    )
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def _hook(agent_dir: str) -> None:
    payload = json.loads(sys.stdin.read() or "{}")
    name = payload.get("hook_event_name", "")
    record: dict[str, object] = {
        "time": round(time.time(), 3),
        "event": HOOK_EVENTS.get(name, "hook"),
        "source": "hook",
        "hook": name,
        "session_id": payload.get("session_id"),
        "turn_id": payload.get("turn_id"),
        "transcript_path": payload.get("transcript_path"),
    }
    if name == "UserPromptSubmit":
        record["prompt"] = str(payload.get("prompt", ""))[:PROMPT_CAP]
    elif name == "Stop":
        record["last_message"] = str(payload.get("last_assistant_message") or "")[:PROMPT_CAP]
    elif name in ("PreToolUse", "PostToolUse"):
        record["tool_name"] = payload.get("tool_name")
    elif name == "SessionStart":
        record["start_source"] = payload.get("source")
    _append(agent_dir, {k: v for k, v in record.items() if v is not None})


def _notify(agent_dir: str, args: list[str]) -> None:
    payload = json.loads(args[-1])
    chain = args[args.index("--chain") + 1 : -1] if "--chain" in args else []
    inputs = payload.get("input-messages") or []
    side = bool(inputs) and str(inputs[0]).startswith(TITLE_PREFIX)
    _append(
        agent_dir,
        {
            "time": round(time.time(), 3),
            "event": "side_turn_completed" if side else "turn_notified",
            "source": "notify",
            "thread_id": payload.get("thread-id"),
            "turn_id": payload.get("turn-id"),
            "last_message": str(payload.get("last-assistant-message") or "")[:PROMPT_CAP],
        },
    )
    if chain:  # the user's own notify program, which our -c override replaced, still runs
        subprocess.Popen([*chain, args[-1]], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)


def main() -> None:
    mode, agent_dir = sys.argv[1], sys.argv[2]
    try:
        if mode == "hook":
            _hook(agent_dir)
        else:
            _notify(agent_dir, sys.argv[3:])
    except Exception as exc:  # a hook must never break the agent's turn
        try:
            with open(os.path.join(agent_dir, "hookrecv.err"), "a") as f:
                f.write(f"{time.time():.3f} {mode}: {exc!r}\n")
        except OSError:
            pass


if __name__ == "__main__":
    main()
