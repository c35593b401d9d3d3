"""The stop and pre-tool gates: what fleet's Codex hooks decide while an assignment is open (ask for
a missing report, deny out-of-scope patches). Pure decisions plus the small per-agent context file
they read.

The context file `<state_dir>/agents/<agent>/assignment.json` is written by fleet when it sends an
assignment (and rewritten when it sends a follow-up turn for it), and removed when the assignment
ends; while it exists the agent is working on that assignment. Shape (`CONTEXT_VERSION` 1)::

    {"version": 1, "assignment": "as-01J...", "role": "worker", "cwd": "/abs/cwd",
     "write_paths": ["docs/", "README.md"], "read_paths": [], "turn_id": "019a..." | null,
     "asked_turns": []}

`write_paths` are in `scope` normal form. `turn_id` is the receipt's turn (null until the receipt is
known: then every turn is the assignment's). The hook appends the turns it has asked in to
`report-asks.jsonl` next to it (one JSON line per ask, O_APPEND: no read-modify-write race with
fleet rewriting the context), and `read_context` merges them into `asked_turns`.

Codex facts these rest on (0.169, notes/codex-cli.md): a Stop hook printing
`{"decision":"block","reason":R}` makes the same turn go on with R as a user message, and Codex has
no loop guard, so `stop_decision` stands down when `stop_hook_active` is true and asks at most once
per turn; a PreToolUse hook printing a `permissionDecision: deny` stops an apply_patch before
anything is written, and the model sees the reason. Hooks fail open: if this code is missing or
crashes, Codex goes on, and the after-turn verification still judges the work.

The hook receiver imports this module under `python -S` (see `fleet.hooks`); fleet's service
writes and clears the context file with `write_context` and `clear_context`.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final

from fleet.work.lifecycle import ASSIGNMENT_ID_RE
from fleet.work.report import EXAMPLE_BLOCK, INFO_STRING, extract_report
from fleet.work.scope import MAX_SCOPE_ENTRIES, Role, Violation, check_writes, patch_writes

CONTEXT_FILE: Final = "assignment.json"
ASKS_FILE: Final = "report-asks.jsonl"
CONTEXT_VERSION: Final = 1
#: The context is a few hundred bytes; anything larger is not ours.
MAX_CONTEXT_BYTES: Final = 64 * 1024
#: Asks for one assignment are one per turn; a longer file is read from its tail only.
MAX_ASKS_BYTES: Final = 64 * 1024
#: A hook's reason becomes a user message in the model's context: keep it short.
MAX_REASON_CHARS: Final = 2000
#: Violations named in one denial; the rest are counted.
MAX_NAMED_PATHS: Final = 10
ROLES: Final = ("explorer", "worker", "lead")


@dataclass(frozen=True)
class HookContext:
    """The open assignment as the hooks see it (see the module docstring for the file)."""

    assignment: str
    role: Role
    cwd: str
    write_paths: tuple[str, ...] = ()
    read_paths: tuple[str, ...] = ()
    turn_id: str | None = None
    asked_turns: frozenset[str] = field(default_factory=frozenset)

    def to_json(self) -> dict[str, Any]:
        """The file's content (without asks recorded by the hook since)."""
        return {"version": CONTEXT_VERSION, "assignment": self.assignment, "role": self.role, "cwd": self.cwd,
                "write_paths": list(self.write_paths), "read_paths": list(self.read_paths),
                "turn_id": self.turn_id, "asked_turns": sorted(self.asked_turns)}


class ContextError(ValueError):
    """The context file exists but is unreadable, a symlink, too big, or not the documented shape."""


def parse_context(obj: object) -> HookContext:
    """Check a parsed context JSON value; raise `ContextError` saying what is wrong."""
    if not isinstance(obj, dict) or obj.get("version") != CONTEXT_VERSION:
        raise ContextError(f"not a version {CONTEXT_VERSION} assignment context")
    assignment, role, cwd = obj.get("assignment"), obj.get("role"), obj.get("cwd")
    if not isinstance(assignment, str) or not ASSIGNMENT_ID_RE.match(assignment):
        raise ContextError("assignment must be an assignment id (as-...)")
    if role not in ROLES:
        raise ContextError(f"role must be one of {', '.join(ROLES)}")
    if not isinstance(cwd, str) or not cwd.startswith("/"):
        raise ContextError("cwd must be an absolute path")
    lists = {}
    for key in ("write_paths", "read_paths", "asked_turns"):
        value = obj.get(key, [])
        if not isinstance(value, list) or len(value) > 4 * MAX_SCOPE_ENTRIES \
                or not all(isinstance(v, str) for v in value):
            raise ContextError(f"{key} must be a list of strings")
        lists[key] = value
    turn = obj.get("turn_id")
    if turn is not None and not isinstance(turn, str):
        raise ContextError("turn_id must be a string or null")
    return HookContext(assignment=assignment, role=role, cwd=cwd, write_paths=tuple(lists["write_paths"]),
                       read_paths=tuple(lists["read_paths"]), turn_id=turn,
                       asked_turns=frozenset(lists["asked_turns"]))


def read_context(agent_dir: str | os.PathLike[str]) -> HookContext | None:
    """The open assignment's context for the agent whose state dir is `agent_dir`, or None when no
    assignment is open. Refuses a symlinked or oversized file (`ContextError`): a planted link must
    not steer the hooks. Asks recorded by `record_ask` for this assignment are merged in."""
    raw = _read_nofollow(os.path.join(agent_dir, CONTEXT_FILE), MAX_CONTEXT_BYTES)
    if raw is None:
        return None
    try:
        obj = json.loads(raw)
    except ValueError as exc:
        raise ContextError(f"not JSON: {exc}") from None
    ctx = parse_context(obj)
    asked = set(ctx.asked_turns) | _asked_turns(agent_dir, ctx.assignment)
    return replace(ctx, asked_turns=frozenset(asked))


def write_context(agent_dir: str | os.PathLike[str], ctx: HookContext) -> None:
    """Replace the agent's context file atomically (0600). Called by fleet at send time, not by the hook.
    Not fsynced: the file describes a running agent, which an OS crash ends anyway."""
    from pathlib import Path

    from fleet.fsutil import write_json_atomic  # only fleet writes the file; the hook never imports this

    write_json_atomic(Path(agent_dir) / CONTEXT_FILE, ctx.to_json(), durable=False)


def clear_context(agent_dir: str | os.PathLike[str], assignment: str) -> bool:
    """Remove the context file if it still names `assignment` (a newer assignment's file is left);
    also drop the ask log. Call under the agent's lease when the assignment ends. True if removed."""
    try:
        ctx = read_context(agent_dir)
    except ContextError:
        ctx = None
    if ctx is None or ctx.assignment != assignment:
        return False
    for name in (CONTEXT_FILE, ASKS_FILE):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(agent_dir, name))
    return True


def record_ask(agent_dir: str | os.PathLike[str], assignment: str, turn_id: str, *, now: float | None = None) -> None:
    """Note that the Stop hook asked for a report in `turn_id` (one O_APPEND write, 0600, no symlink)."""
    line = json.dumps({"time": round(time.time() if now is None else now, 3), "assignment": assignment,
                       "turn_id": turn_id}, separators=(",", ":")) + "\n"
    fd = os.open(os.path.join(agent_dir, ASKS_FILE), os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def stop_decision(payload: Mapping[str, Any], ctx: HookContext | None) -> dict[str, Any] | None:
    """The JSON for Codex's Stop hook to print, or None to let the turn end.

    Asks (`{"decision": "block", "reason": ...}`) only when an assignment is open, this is its turn,
    `stop_hook_active` is not set (Codex is already continuing because of a Stop hook: never loop),
    this turn has not been asked before, and the last assistant message has no valid fleet-report
    block. The reason names what was wrong. A caller that prints a decision must first
    `record_ask(agent_dir, ctx.assignment, payload["turn_id"])`.
    """
    if ctx is None or payload.get("stop_hook_active") is True:
        return None
    turn = payload.get("turn_id")
    if not isinstance(turn, str) or not turn or turn in ctx.asked_turns:
        return None
    if ctx.turn_id is not None and turn != ctx.turn_id:
        return None
    result = extract_report(payload.get("last_assistant_message"))
    if result.ok:
        return None
    problems = "; ".join(result.problems)
    reason = (
        f"fleet: assignment {ctx.assignment} needs a report, and your last message has none that fleet can "
        f"accept ({problems}). Reply again ending with one ```{INFO_STRING} block holding one JSON object "
        "with the keys status (done, partial or blocked), summary, changed (every file you changed, relative to "
        f"the working directory), tests and risks, for example:\n{EXAMPLE_BLOCK}"
    )
    return {"decision": "block", "reason": _cap(reason)}


def patch_violations(payload: Mapping[str, Any], ctx: HookContext | None, *,
                     follow_links: bool = True) -> list[Violation]:
    """The scope violations of an apply_patch PreToolUse payload (empty for other tools, or when no
    assignment is open). Relative patch paths resolve against the payload's `cwd`. A patch whose
    paths cannot all be known (`scope.patch_writes`) is one violation, `unreadable_patch`."""
    if ctx is None or payload.get("tool_name") != "apply_patch":
        return []
    tool_input = payload.get("tool_input")
    writes = patch_writes(tool_input.get("command") if isinstance(tool_input, Mapping) else None)
    if writes.problem is not None:
        return [Violation("(patch)", "", "unreadable_patch", f"a patch fleet cannot judge ({writes.problem})")]
    tool_cwd = payload.get("cwd")
    return check_writes(writes.paths, cwd=ctx.cwd, scope=ctx.write_paths, role=ctx.role,
                        tool_cwd=tool_cwd if isinstance(tool_cwd, str) and tool_cwd.startswith("/") else None,
                        follow_links=follow_links)


def pretool_decision(payload: Mapping[str, Any], ctx: HookContext | None, *,
                     follow_links: bool = True) -> dict[str, Any] | None:
    """The JSON for Codex's PreToolUse hook to print to deny an out-of-scope apply_patch, or None.

    Only apply_patch is judged: a shell command's writes cannot be known before it runs (the
    after-turn comparison catches them). The reason tells the model which paths it may write.
    """
    violations = patch_violations(payload, ctx, follow_links=follow_links)
    if not violations or ctx is None:
        return None
    named = ", ".join(v.message for v in violations[:MAX_NAMED_PATHS])
    if len(violations) > MAX_NAMED_PATHS:
        named += f", and {len(violations) - MAX_NAMED_PATHS} more"
    if ctx.role != "worker" or not ctx.write_paths:
        allowed = "This assignment may not modify any file: investigate and report instead."
    else:
        allowed = (f"It may write only: {', '.join(ctx.write_paths)} (relative to {ctx.cwd}). Change only those, "
                   "or finish with status partial or blocked and say in the report what else needs changing.")
    reason = f"fleet: assignment {ctx.assignment} does not allow this patch: it writes {named}. {allowed}"
    return {"hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision": "deny",
                                   "permissionDecisionReason": _cap(reason)}}


def _asked_turns(agent_dir: str | os.PathLike[str], assignment: str) -> set[str]:
    raw = _read_nofollow(os.path.join(agent_dir, ASKS_FILE), None)
    if raw is None:
        return set()
    out: set[str] = set()
    for line in raw[-MAX_ASKS_BYTES:].splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and rec.get("assignment") == assignment and isinstance(rec.get("turn_id"), str):
            out.add(rec["turn_id"])
    return out


def _read_nofollow(path: str, limit: int | None) -> bytes | None:
    """The file's bytes (None if absent); `limit` refuses a bigger file, None reads the tail window."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ContextError(f"{path} cannot be opened safely ({exc.strerror})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ContextError(f"{path} is not a regular file")
        if limit is not None and st.st_size > limit:
            raise ContextError(f"{path} is larger than {limit} bytes")
        if limit is None and st.st_size > MAX_ASKS_BYTES:
            os.lseek(fd, st.st_size - MAX_ASKS_BYTES, os.SEEK_SET)
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _cap(text: str) -> str:
    return text if len(text) <= MAX_REASON_CHARS else text[: MAX_REASON_CHARS - 3] + "..."
