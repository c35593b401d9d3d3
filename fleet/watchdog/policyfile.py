"""The approve policy file: the `[watchdog] approve` policy as fleet hands it to each agent's hook.

fleet writes the policy into each agent's dir (`approve-policy.json`) when it starts agents and at
every watchdog tick (so an edited fleet.toml applies without a restart), and removes it when there is
no policy. Beside the policy it records the agent's configured cwd (the one directory an allowed
command may run in) and the roots any sandboxed agent of the fleet may write. fleet's
PermissionRequest hook reads it (`fleet.hooks.approve`); anything in it that is not exactly what
`to_json` writes reads as no policy, so a person decides.

The hook process loads it (`fleet.hooks` says what that asks of a module).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final, Literal, cast

from fleet.config.watchdog import ApprovalPolicy
from fleet.fsutil import ensure_dir, read_bytes_nofollow, write_atomic

POLICY_FILE: Final = "approve-policy.json"
MAX_POLICY_BYTES: Final = 64 * 1024


def to_json(policy: ApprovalPolicy) -> dict[str, Any]:
    return {"allow": sorted(policy.allow), "commands": [list(c) for c in policy.commands],
            "commands_running_workspace_code": [list(c) for c in policy.workspace_commands],
            "otherwise": policy.otherwise}


def from_json(raw: object) -> ApprovalPolicy | None:
    """The policy a file holds, or None for anything that is not exactly what `to_json` writes."""
    if not isinstance(raw, dict):
        return None
    allow, otherwise = raw.get("allow"), raw.get("otherwise")
    commands, workspace = raw.get("commands"), raw.get("commands_running_workspace_code")
    if not (isinstance(allow, list) and all(a == "read-only" for a in allow)):
        return None
    for lines in (commands, workspace):
        if not (isinstance(lines, list) and all(isinstance(c, list) and c and all(isinstance(w, str) for w in c)
                                                for c in lines)):
            return None
    if otherwise not in ("ask", "deny"):
        return None
    return ApprovalPolicy(allow=frozenset(cast(list[Literal["read-only"]], allow)),
                          commands=tuple(tuple(c) for c in cast(list[list[str]], commands)), otherwise=otherwise,
                          workspace_commands=tuple(tuple(c) for c in cast(list[list[str]], workspace)))


def sync(agent_dir: Path, policy: ApprovalPolicy | None, cwd: str | os.PathLike[str] | None = None,
         roots: Iterable[str] | None = None) -> bool:
    """Make `agent_dir`'s policy file say `policy` (remove it for None), with the agent's configured
    `cwd` (the one directory an allowed command may run in) and `roots`, every directory any
    sandboxed agent of the fleet may write (where no program it runs may lie; see
    `fleet.hooks.approve.decide`); True if it changed."""
    path = agent_dir / POLICY_FILE
    if policy is None:
        try:
            path.unlink()
            return True
        except FileNotFoundError:
            return False
    body = (to_json(policy) | ({"cwd": os.fspath(cwd)} if cwd is not None else {})
            | ({"roots": list(roots)} if roots is not None else {}))  # none given: every temp dir counts
    data = json.dumps(body, sort_keys=True).encode()
    try:
        if read_bytes_nofollow(path, MAX_POLICY_BYTES) == data:
            return False
    except OSError:
        pass
    write_atomic(path, data, durable=False)
    return True


def sync_agents(agents: Iterable[tuple[Path, Path]], policy: ApprovalPolicy | None, *, create: bool,
                roots: Iterable[str] | None = None) -> None:
    """`sync` each (agent dir, configured cwd) in turn: `create` makes a missing dir (private, as
    `ensure_dir` does), otherwise an agent whose dir does not exist (never launched) is skipped."""
    roots = tuple(roots) if roots is not None else None
    for agent_dir, cwd in agents:
        if create:
            ensure_dir(agent_dir)
        elif not agent_dir.is_dir():
            continue
        sync(agent_dir, policy, cwd, roots)


def load(agent_dir: str | os.PathLike[str]) -> tuple[ApprovalPolicy | None, str | None, list[str] | None]:
    """The policy, the agent's cwd recorded with it (None when not recorded) and the fleet's roots
    (None when not recorded; an empty list when no agent of the fleet can write anything)."""
    try:
        raw = json.loads(read_bytes_nofollow(Path(agent_dir) / POLICY_FILE, MAX_POLICY_BYTES))
    except Exception:  # missing, unsafe (a symlink), unreadable or not JSON: no policy
        return None, None, None
    if not isinstance(raw, dict):
        return None, None, None
    cwd, roots = raw.get("cwd"), raw.get("roots")
    roots = [r for r in roots if isinstance(r, str)] if isinstance(roots, list) else None
    return from_json(raw), cwd if isinstance(cwd, str) and cwd.startswith("/") else None, roots
