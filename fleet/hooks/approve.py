"""The `[watchdog] approve` policy, applied by fleet's PermissionRequest hook the moment Codex asks.

The hook (`fleet.hooks.hold`) asks `decide` right after journaling a request: when the policy in the
agent's dir (`fleet.watchdog.policyfile`, written by fleet at start and at every tick) allows or
denies the call, the hook answers at once, with no watchdog needed and no dialog ever drawn; the
journal records the decision with `by: watchdog:policy` and its reason, and the audit log gets an
`approval.policy` record. The policy stands aside, leaving the call held for a person, when its
verdict is `ask`, when a person or another lead holds the agent's lease (as the tick does), or when
anything cannot be read: every failure here means "a person decides". With the leases in the shared
store, the hook reads this host's copy of the agent's row (`fleet.leases.mirror`) and stands aside
when that copy is missing or older than `mirror.MAX_AGE`. The tick still applies the
policy to a request that was held before the file existed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from fleet.vocab import WATCHDOG_HOLDER, WATCHDOG_POLICY_HOLDER, assignment_holder
from fleet.watchdog.policyfile import load

Decision = Literal["allow", "deny"]


def decide(agent_dir: str | os.PathLike[str], tool: str, command: str, now: float | None = None, *,
           cwd: str | None = None, env: Mapping[str, str] | None = None) -> tuple[Decision, str] | None:
    """The policy's answer for the hook, with its reason; None leaves the call to a person.

    `command` is the whole command Codex sent; `cwd` the payload's (the command's working directory)
    and `env` the environment the command inherits (the hook's own, by default), used to check that
    the program it names is not one the agent could have planted (`fleet.hooks.programs`)."""
    from fleet.watchdog.approval import judge, policy_answer, read_only_problem

    from .programs import agent_roots, operand_problem, program_problem

    policy, agent_cwd, fleet_roots = load(agent_dir)
    if policy is None or _held_by_someone_else(Path(agent_dir), time.time() if now is None else now):
        return None
    environ = os.environ if env is None else env
    roots = agent_roots([cwd, _assignment_cwd(Path(agent_dir)), agent_cwd, *(fleet_roots or ())], environ,
                        known=fleet_roots is not None)  # none recorded: every temp dir counts
    where = _where_problem(cwd, agent_cwd)
    verdict = judge(policy, tool, command,
                    program_check=lambda program: where or program_problem(program, environ, roots),
                    path_check=lambda operand: where or operand_problem(operand, str(cwd)))
    if verdict.decision == "allow" and read_only_problem(command) is not None and not _exactly(cwd, agent_cwd):
        return None  # a listed command in a subdirectory: see `_exactly`
    return policy_answer(verdict)


def _exactly(cwd: str | None, agent_cwd: str | None) -> bool:
    """Whether the command runs in the agent's cwd itself. A command listed in `approve.commands` (or
    `commands_running_workspace_code`: `rm -rf build`, `make test`) is allowed only there: a
    subdirectory is the agent's to rename and replace with a symlink between this answer and the
    shell's `cd`, which would run it anywhere; the cwd itself lies in a directory the agent cannot write.
    A read-only command may run below it (what it reads there is looked at, `operand_problem`)."""
    if not isinstance(cwd, str) or agent_cwd is None:
        return False
    return os.path.realpath(cwd) == os.path.realpath(agent_cwd)


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
    from .gates import read_context

    try:
        ctx = read_context(agent_dir)
    except Exception:  # unreadable: the payload's cwd and the temp dirs still count
        return None
    return ctx.cwd if ctx else None


def _held_by_someone_else(agent_dir: Path, now: float) -> bool:
    """Whether a live lease on the agent belongs to neither the watchdog nor its open assignment."""
    from fleet.leases import LeaseStore, lease_state
    from fleet.leases.files import shared_marker

    from .gates import read_context

    state_dir = agent_dir.parent.parent
    try:
        if shared_marker(state_dir).exists():
            # the leases are in the shared store, which the hook does not reach: this host's copy of
            # the agent's row, judged on the database's clock; none fresh enough, and a person decides
            from fleet.leases import mirror

            copy = mirror.fresh(state_dir, agent_dir.name, now)
            if copy is None:
                return True
            lease, now = copy.lease, copy.db_now(now)
        else:
            lease = LeaseStore(state_dir).get(agent_dir.name)
        if lease is None or lease_state(lease, now) != "held":
            return False
        ctx = read_context(agent_dir)
    except Exception:  # a corrupt lease or context: cannot tell who holds it, so a person decides
        return True
    from fleet.watchdog.decide import lease_kind  # only when a live lease needs classifying: the hook stays light

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
