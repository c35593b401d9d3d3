"""A repo agent's worktree in the agent lifecycle: made by `up`, a branch per assignment before its
prompt, the verified work committed on `verified` (`fleet.work.worktrees` does the git).

An agent with `repo` works in `<worktree_root>/<agent>`, its own worktree of the repository. Its base
(the branch its assignments start from and merge into) is the configured `base`, else the branch
the repository's main work tree was on when the agent was first started, recorded then in
`<state_dir>/agents/<agent>/worktree.json` and kept from then on (a person switching branches in
their checkout does not move the agent's base). Agents without `repo` pass through untouched.

The operations lead and user call (diff, merge, list, prune) are `fleet.service.worktrees`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any, Final

from fleet.config import AgentSpec
from fleet.errors import RepoInvalid, WorktreeDirty
from fleet.fsutil import ensure_dir, read_bytes_nofollow, write_json_atomic
from fleet.work.gitwt import Git
from fleet.work.worktrees import (
    commit_verified,
    current_branch,
    dirty_files,
    ensure_worktree,
    git_errors,
    named_list,
    pin,
    prepare_branch,
)

from .core import Service

#: The agent's recorded worktree facts (repository and base), in its state directory.
STATE_FILE: Final = "worktree.json"


def recorded(svc: Service, agent: str) -> dict[str, Any]:
    """What `up` recorded for the agent's worktree ({} when nothing, or unreadable)."""
    try:
        data = json.loads(read_bytes_nofollow(svc.config.state_dir / "agents" / agent / STATE_FILE))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def base_of(svc: Service, spec: AgentSpec) -> str:
    """The agent's base branch: configured, else recorded at its first start, else the repository's
    current branch (recorded now). Raises `repo_invalid` when there is none to take (detached)."""
    if spec.base is not None:
        return spec.base
    assert spec.repo is not None
    known = recorded(svc, spec.name)
    if isinstance(known.get("base"), str) and known.get("repo") == str(spec.repo):
        return str(known["base"])
    branch = current_branch(spec.repo)
    if branch is None:
        raise RepoInvalid(f"Agent {spec.name}: the repository {spec.repo} is not on a branch fleet can use as a "
                          "base (detached, bare, or an unusual name).",
                          hint=f"Set `base = \"BRANCH\"` for agent {spec.name} (or in [defaults]).",
                          agent=spec.name, repo=str(spec.repo))
    ensure_dir(svc.config.state_dir / "agents" / spec.name)
    write_json_atomic(svc.config.state_dir / "agents" / spec.name / STATE_FILE,
                      {"version": 1, "repo": str(spec.repo), "base": branch, "path": str(spec.cwd)})
    return branch


def ensure_agent_worktree(svc: Service, spec: AgentSpec) -> dict[str, Any] | None:
    """Make sure a repo agent's worktree exists and is healthy before it starts (`ensure_worktree`:
    reused, created or repaired; locked or foreign ones refused with a hint). None for a plain agent."""
    if spec.repo is None:
        return None
    base = base_of(svc, spec)
    wt = ensure_worktree(spec.repo, svc.config.worktree_root, spec.name, base=base)
    return {"path": wt.path, "base": base, "created": wt.created, "repaired": wt.repaired}


def refuse_dirty(spec: AgentSpec) -> None:
    """Refuse work for a repo agent whose existing worktree has uncommitted or untracked files
    (`worktree_dirty`, naming them) or whose `.git` link no longer names its admin dir
    (`worktree_foreign`), before anything is written. `prepare` checks again at send."""
    if spec.repo is None or not spec.cwd.is_dir():
        return
    with git_errors():  # git is told the admin dir: the worktree's `.git` link is the agent's to rewrite
        dirty = dirty_files(Git(str(spec.cwd), pin(spec.cwd, spec.repo)))
    if dirty:
        raise WorktreeDirty(f"Agent {spec.name}'s worktree {spec.cwd} has uncommitted files ({named_list(dirty)}); "
                            "a new assignment needs a clean one.",
                            hint=f"Commit them to a branch or remove them (`git -C {spec.cwd} status` shows them); "
                                 "fleet stashes nothing.", worktree=str(spec.cwd), files=dirty[:200],
                            count=len(dirty))


def prepare(svc: Service, spec: AgentSpec, assignment_id: str) -> dict[str, Any] | None:
    """Put a repo agent's worktree on the assignment's branch (`prepare_branch`) and return what the
    ledger records: repo, branch, base, base_commit, resumed. None for a plain agent. Raises
    `worktree_dirty` (nothing stashed), `worktree_foreign`, `repo_invalid`."""
    if spec.repo is None:
        return None
    base = base_of(svc, spec)
    p = prepare_branch(spec.cwd, assignment_id, base, repo=spec.repo)
    return {"repo": os.path.realpath(spec.repo), "branch": p.branch, "base": base, "base_commit": p.base_commit,
            "resumed": p.resumed}


def commit(spec: AgentSpec, assignment_id: str, summary: str, changed: Sequence[str],
           states: Mapping[str, str | None]) -> str | None:
    """Commit a repo agent's verified work, the `changed` paths verification saw (not what its
    checks wrote), to its assignment's branch (`commit_verified`), refusing when they no longer hold
    the `states` verification saw; the branch's tip, or None for a plain agent."""
    if spec.repo is None:
        return None
    return commit_verified(spec.cwd, assignment_id, summary, spec.name, repo=spec.repo, paths=changed,
                           expected=states)
