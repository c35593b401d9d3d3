"""Codex hook and notify receiver: appends one normalized event to an agent's journal.

Run by Codex itself (`python -S receiver.py hook AGENT_DIR --home CODEX_HOME` with the hook payload on
stdin, or `python -S receiver.py notify AGENT_DIR [--chain PROG ARGS...] JSON`; `fleet.agents.codex`
writes the command line). Standalone on purpose: it imports nothing from fleet on its hot path so that it starts
in a few milliseconds, and it prints nothing unless fleet decides something, because a hook's stdout
is read by Codex. It never fails the hook: errors go to `hookrecv.err` (0600, never through a symlink).

While an assignment is open (`AGENT_DIR/assignment.json` exists) it also applies fleet's hook policy
(`fleet.hooks.gates`, imported by path from the package this file sits in):
- Stop: a final message without a valid fleet-report block is answered once per turn with
  `{"decision": "block", "reason": ...}`, so the same turn goes on and the model adds the block. The
  ask is recorded first (`report-asks.jsonl`), and the journal gets `report_asked` instead of
  `turn_completed`, because the turn is not over.
- PreToolUse: an apply_patch writing outside the assignment's write paths is denied before anything
  is written; the journal gets `tool_denied` (which reconcile copies into the ledger).
Any error in the policy is logged and the hook prints nothing (Codex fails open), so the after-turn
verification stays the final word.

PermissionRequest (`--hold SECONDS`): fleet's approval hold, `fleet.hooks.hold`, imported only
for that event: it journals the request, answers at once when the `[watchdog] approve` policy decides
(`fleet.hooks.approve`), else waits for `fleet approve`/`deny` (or the tick's policy), and
prints the decision (or nothing when its time runs out, so Codex opens its dialog).

It appends the way `fleet.agents.journal` does (one write, O_APPEND, under a shared flock on
`events.lock`) and, in the rare call that takes the journal past its bound, imports that module to
compact it. At `Stop` it also copies from the rollout's tail the rate-limit snapshot Codex has just
written and the turn's token usage so far (`usage`: input, cached input, output, reasoning; a Stop
that asks for a report records the usage until then, the turn's last Stop the whole turn's). Only the
agent's own rollout is read, and journalled as its transcript: a regular file under the `sessions/`
of `--home` (or, on a command line from an older fleet, of Codex's own `CODEX_HOME`); a payload
naming anything else, such as another agent's rollout, gets neither rate limits nor usage. It is
read without blocking, at most `ROLLOUT_TAIL` bytes. Only records of the
right type count: a record Codex wrote for something else (a tool result holding the model's own
JSON) can name `token_usage_record` or `rate_limits` too.
"""

from __future__ import annotations

import fcntl
import json
import os
import stat
import sys
import time

TITLE_PREFIX = "Generate a concise, single-line task title"
PROMPT_CAP = 65536
#: Same value as `fleet.agents.journal.JOURNAL_MAX` (a test keeps them equal).
JOURNAL_MAX = 256 * 1024
#: How much of the rollout's end to search for the turn's `token_count` and usage records.
ROLLOUT_TAIL = 64 * 1024
HOOK_EVENTS = {
    "SessionStart": "session_started",
    "UserPromptSubmit": "turn_started",
    "Stop": "turn_completed",
    "PreToolUse": "tool_started",
    "PostToolUse": "tool_completed",
}
_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC


def _import_fleet() -> None:
    """Make the package this file sits in importable (it runs as a script under `python -S`), after
    the stdlib on the path so that nothing in it can shadow a stdlib module."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if root not in sys.path:
        sys.path.append(root)


def _append(agent_dir: str, record: dict[str, object]) -> None:
    line = (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
    lock = os.open(os.path.join(agent_dir, "events.lock"), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                   0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_SH)
        fd = os.open(os.path.join(agent_dir, "events.jsonl"), _FLAGS, 0o600)
        try:
            os.write(fd, line)
            size = os.fstat(fd).st_size
        finally:
            os.close(fd)
    finally:
        os.close(lock)
    if size > JOURNAL_MAX:
        _import_fleet()
        from pathlib import Path

        from fleet.agents.journal import compact_file

        compact_file(Path(agent_dir))


def own_transcript(transcript: object, home: str | None) -> str | None:
    """`transcript` when it lies under `home`'s `sessions/` (symlinks resolved), else None."""
    if not isinstance(transcript, str) or not transcript or not home or "\0" in transcript:
        return None
    sessions = os.path.join(os.path.realpath(home), "sessions") + os.sep
    return transcript if os.path.realpath(transcript).startswith(sessions) else None


def _tail(transcript: str | None) -> list[bytes]:
    """The lines of the rollout's last `ROLLOUT_TAIL` bytes (none when it cannot be read or is no
    regular file: a FIFO would block the hook, and Codex's turn with it)."""
    if transcript is None:
        return []
    try:
        fd = os.open(transcript, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return []
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return []
        raw = os.pread(fd, ROLLOUT_TAIL, max(0, st.st_size - ROLLOUT_TAIL))
    except OSError:
        return []
    finally:
        os.close(fd)
    return raw.split(b"\n")


def _payload(line: bytes, record: str = "event_msg", kind: str | None = None) -> dict[str, object]:
    """The payload of a `record` line (of payload type `kind`, when given), else {}."""
    try:
        rec = json.loads(line)
    except ValueError:
        return {}
    payload = rec.get("payload") if isinstance(rec, dict) and rec.get("type") == record else None
    if not isinstance(payload, dict) or (kind is not None and payload.get("type") != kind):
        return {}
    return payload


def _rate_limits(lines: list[bytes]) -> object:
    """The `rate_limits` of the last `token_count` in the rollout's tail, or None."""
    for line in reversed(lines):
        if b'"token_count"' in line and b'"rate_limits"' in line:
            limits = _payload(line, kind="token_count").get("rate_limits")
            if isinstance(limits, dict) and (limits.get("primary") or limits.get("secondary")):
                return {k: limits.get(k) for k in ("primary", "secondary")}
    return None


def _usage(lines: list[bytes], turn: object) -> dict[str, int] | None:
    """The turn's token usage so far, as `fleet.agents.rollout.facts` reads it: the `turn_token_usage`
    of its last `token_usage_record`, else the `last_token_usage` of each `token_count` after its
    `task_started`, summed. None when the tail has neither."""
    if not isinstance(turn, str) or not turn:
        return None
    needle, parts = json.dumps(turn).encode(), []
    for line in reversed(lines):
        if b'"token_usage_record"' in line and needle in line:
            payload = _payload(line, record="token_usage_record")
            if payload.get("turn_id") == turn:
                return _figures([payload.get("turn_token_usage")])
        elif b'"token_count"' in line:
            payload = _payload(line, kind="token_count")
            if payload:
                info = payload.get("info")
                parts.append(info.get("last_token_usage") if isinstance(info, dict) else None)
        elif b'"task_started"' in line and needle in line and \
                _payload(line, kind="task_started").get("turn_id") == turn:
            return _figures(parts) if parts else None
    return None


def _figures(raws: list[object]) -> dict[str, int] | None:
    names = {"input": "input_tokens", "cached_input": "cached_input_tokens", "output": "output_tokens",
             "reasoning": "reasoning_output_tokens"}
    out = dict.fromkeys(names, 0)
    for raw in raws:
        if not isinstance(raw, dict):
            return None
        for key, name in names.items():
            value = raw.get(name)
            out[key] += value if isinstance(value, int) else 0
    return out


def _policy(agent_dir: str, name: str, payload: dict[str, object]) -> tuple[dict[str, object] | None,
                                                                              dict[str, object]]:
    """fleet's decision for an open assignment, and the journal fields that record it."""
    _import_fleet()
    from fleet.hooks import gates

    ctx = gates.read_context(agent_dir)
    if ctx is None:
        return None, {}
    if name == "Stop":
        decision = gates.stop_decision(payload, ctx)
        if decision is None:
            return None, {}
        gates.record_ask(agent_dir, ctx.assignment, str(payload["turn_id"]))
        return decision, {"event": "report_asked", "assignment": ctx.assignment,
                          "reason": str(decision.get("reason", ""))[:500]}
    violations = gates.patch_violations(payload, ctx)
    if not violations:
        return None, {}
    decision = gates.pretool_decision(payload, ctx)
    return decision, {"event": "tool_denied", "assignment": ctx.assignment,
                      "paths": [v.path for v in violations[:50]],
                      "reason": "; ".join(v.message for v in violations[:10])[:1000]}


def _permission(agent_dir: str, payload: dict[str, object]) -> None:
    """PermissionRequest: hold the call until `fleet approve`/`deny` (or the watchdog's policy) answers,
    for at most `--hold` seconds (fleet.hooks.hold; imported only here, off the hot path)."""
    args = sys.argv
    seconds = float(args[args.index("--hold") + 1]) if "--hold" in args else 0.0
    _import_fleet()
    from fleet.hooks.approve import hook_answer
    from fleet.hooks.hold import hold

    out = hold(agent_dir, payload, seconds, lambda rec: _append(agent_dir, {k: v for k, v in rec.items()
                                                                            if v is not None}),
               policy=lambda rec, whole: hook_answer(agent_dir, rec, whole))
    if out is not None:
        sys.stdout.write(json.dumps(out))
        sys.stdout.flush()


def _hook(agent_dir: str) -> None:
    payload = json.loads(sys.stdin.read() or "{}")
    name = payload.get("hook_event_name", "")
    if name == "PermissionRequest":
        _permission(agent_dir, payload)
        return
    args = sys.argv  # a hook command line from before `--home`: Codex's own CODEX_HOME, which fleet set
    home = args[args.index("--home") + 1] if "--home" in args[:-1] else os.environ.get("CODEX_HOME")
    transcript = own_transcript(payload.get("transcript_path"), home)
    decision: dict[str, object] | None = None
    verdict: dict[str, object] = {}
    if name in ("Stop", "PreToolUse") and os.path.lexists(os.path.join(agent_dir, "assignment.json")):
        try:
            decision, verdict = _policy(agent_dir, name, payload)
        except Exception as exc:  # fail open: the turn goes on as if fleet had no opinion
            _log_error(agent_dir, f"policy {name}", exc)
            decision, verdict = None, {}
    record: dict[str, object] = {
        "time": round(time.time(), 3),
        "event": HOOK_EVENTS.get(name, "hook"),
        "source": "hook",
        "hook": name,
        "session_id": payload.get("session_id"),
        "turn_id": payload.get("turn_id"),
        "transcript_path": transcript,
    }
    if name == "UserPromptSubmit":
        record["prompt"] = str(payload.get("prompt", ""))[:PROMPT_CAP]
    elif name == "Stop":
        record["last_message"] = str(payload.get("last_assistant_message") or "")[:PROMPT_CAP]
        lines = _tail(transcript)
        record["rate_limits"] = _rate_limits(lines)
        record["usage"] = _usage(lines, payload.get("turn_id"))
    elif name in ("PreToolUse", "PostToolUse"):
        record["tool_name"] = payload.get("tool_name")
    elif name == "SessionStart":
        record["start_source"] = payload.get("source")
    record.update(verdict)
    try:
        _append(agent_dir, {k: v for k, v in record.items() if v is not None})
    finally:
        if decision is not None:  # the ask is on record (record_ask); Codex acts on this line
            sys.stdout.write(json.dumps(decision) + "\n")
            sys.stdout.flush()


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
        import subprocess  # only here: hooks start faster without it

        subprocess.Popen([*chain, args[-1]], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)


def _log_error(agent_dir: str, mode: str, exc: BaseException) -> None:
    try:
        # the file keeps the name the README's state layout documents (it predates this module's name)
        fd = os.open(os.path.join(agent_dir, "hookrecv.err"), _FLAGS, 0o600)
    except OSError:
        return
    try:
        os.write(fd, f"{time.time():.3f} {mode}: {exc!r}\n".encode())
    finally:
        os.close(fd)


def main() -> None:
    mode, agent_dir = sys.argv[1], sys.argv[2]
    try:
        if mode == "hook":
            _hook(agent_dir)
        else:
            _notify(agent_dir, sys.argv[3:])
    except Exception as exc:  # a hook must never break the agent's turn
        _log_error(agent_dir, mode, exc)


if __name__ == "__main__":
    main()
