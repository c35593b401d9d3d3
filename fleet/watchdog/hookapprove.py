"""The `[watchdog] approve` policy, applied by fleet's PermissionRequest hook the moment Codex asks.

fleet writes the policy into each agent's dir (`approve-policy.json`) when it starts agents and at
every watchdog tick (so an edited fleet.toml applies without a restart), and removes it when there is
no policy. The hook (`fleet.agents.approvals.hold`) asks `decide` right after journaling a request:
when the policy allows or denies the call, the hook answers at once, with no watchdog needed and no
dialog ever drawn; the journal records the decision with `by: watchdog:policy` and its reason, and
the audit log gets an `approval.policy` record. The policy stands aside, leaving the call held for a
person, when its verdict is `ask`, when a person or another lead holds the agent's lease (as the
tick does), or when anything cannot be read: every failure here means "a person decides".
The tick still applies the policy to a request that was held before the file existed.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final, Literal, cast

from fleet.fsutil import ensure_dir, read_bytes_nofollow, write_atomic
from fleet.vocab import WATCHDOG_HOLDER, WATCHDOG_POLICY_HOLDER, assignment_holder

from .policy import ApprovalPolicy

POLICY_FILE: Final = "approve-policy.json"
MAX_POLICY_BYTES: Final = 64 * 1024

Decision = Literal["allow", "deny"]


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
    sandboxed agent of the fleet may write (where no program it runs may lie; see `decide`); True if
    it changed."""
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


def decide(agent_dir: str | os.PathLike[str], tool: str, command: str, now: float | None = None, *,
           cwd: str | None = None, env: Mapping[str, str] | None = None) -> tuple[Decision, str] | None:
    """The policy's answer for the hook, with its reason; None leaves the call to a person.

    `command` is the whole command Codex sent; `cwd` the payload's (the command's working directory)
    and `env` the environment the command inherits (the hook's own, by default), used to check that
    the program it names is not one the agent could have planted (`fleet.watchdog.programs`)."""
    from .approval import judge, policy_answer
    from .programs import agent_roots, program_problem

    policy, agent_cwd, fleet_roots = load(agent_dir)
    if policy is None or _held_by_someone_else(Path(agent_dir), time.time() if now is None else now):
        return None
    environ = os.environ if env is None else env
    roots = agent_roots([cwd, _assignment_cwd(Path(agent_dir)), agent_cwd, *(fleet_roots or ())], environ,
                        known=fleet_roots is not None)  # none recorded: every temp dir counts
    where = _where_problem(cwd, agent_cwd)
    return policy_answer(judge(policy, tool, command,
                               program_check=lambda program: where or program_problem(program, environ, roots)))


def _where_problem(cwd: str | None, agent_cwd: str | None) -> str | None:
    """None when the command runs in the agent's configured cwd or below it. Codex passes the model's
    `workdir` as the payload's `cwd` (measured on 0.169), so a listed `rm -rf build` could otherwise
    run in any directory the model names."""
    if agent_cwd is None:
        return "fleet does not know the agent's cwd, so it cannot tell where the command would run"
    if not isinstance(cwd, str) or not cwd.startswith("/"):
        return "Codex did not say where the command would run"
    from .programs import inside_any

    if inside_any(os.path.realpath(cwd), (os.path.realpath(agent_cwd),)):
        return None
    return f"it would run in {cwd}, outside the agent's cwd ({agent_cwd})"


def _assignment_cwd(agent_dir: Path) -> str | None:
    from fleet.work.hookpolicy import read_context

    try:
        ctx = read_context(agent_dir)
    except Exception:  # unreadable: the payload's cwd and the temp dirs still count
        return None
    return ctx.cwd if ctx else None


def _held_by_someone_else(agent_dir: Path, now: float) -> bool:
    """Whether a live lease on the agent belongs to neither the watchdog nor its open assignment."""
    from fleet.leases import LeaseStore, lease_state
    from fleet.work.hookpolicy import read_context

    try:
        lease = LeaseStore(agent_dir.parent.parent).get(agent_dir.name)
        if lease is None or lease_state(lease, now) != "held":
            return False
        ctx = read_context(agent_dir)
    except Exception:  # a corrupt lease or context: cannot tell who holds it, so a person decides
        return True
    from .decide import lease_kind  # only when a live lease needs classifying: the hook stays light

    return lease_kind(lease.holder, watchdog_holder=WATCHDOG_HOLDER,
                      assignment_holders=[assignment_holder(ctx.assignment)] if ctx else []) == "other"


def hook_answer(agent_dir: str, record: dict[str, Any], payload: Mapping[str, Any]) -> tuple[Decision, str] | None:
    """`decide` for the hook: the whole command from `payload` (the journaled `record` may be cut),
    with an audit record of a decision."""
    from fleet import audit
    from fleet.agents.approvals import payload_command

    cwd = payload.get("cwd")
    answer = decide(agent_dir, str(record.get("tool") or ""), payload_command(payload),
                    cwd=cwd if isinstance(cwd, str) else None)
    if answer is not None:
        path = Path(agent_dir)
        audit.record(path.parent.parent, "approval.policy", surface="hook", holder=WATCHDOG_POLICY_HOLDER,
                     agent=path.name, request=record.get("request"), decision=answer[0], reason=answer[1])
    return answer
