"""The worktree operations a lead or a user calls: diff, merge, list and prune (`fleet diff`, `fleet
merge`, `fleet worktrees`, `fleet worktree-prune`, and their MCP tools).

What they stand on: the ledger's worktree columns (`repo`, `branch`, `base_commit` written when the
assignment was sent, `verified_commit` on `verified`, `merged_commit` on a merge) and the git layer
(`fleet.work.merge`, `fleet.work.worktreeadmin`). Only verified work is merged, and only the commit
that was verified (`merge.candidates`); a conflict changes nothing, and the user's checkout is never
overwritten (see `fleet.work.merge`). Merges into one repository are serialised by a lock under
`<state_dir>/locks/`. Prune deletes only what the git layer judges safe, unless forced.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Final

from fleet.errors import InvalidInput
from fleet.work.merge import candidates, diff, merge, plan_merge
from fleet.work.records import Assignment
from fleet.work.worktreeadmin import list_worktrees, prune

from .core import Service
from .worktree import recorded

#: How many dirty files `fleet worktrees` names per worktree (the count is always given).
SHOWN_DIRTY: Final = 20


def _repo_assignment(svc: Service, assignment: str) -> Assignment:
    a = svc.ledger.get(assignment)
    if a.branch is None or a.repo is None:
        raise InvalidInput(f"Assignment {a.id} was not done in a worktree (its agent has no `repo`), so it has no "
                           "branch to diff or merge.",
                           hint=f"See its changes with `fleet show {a.id}` (verification.changed).", assignment=a.id)
    return a


def _base(svc: Service, a: Assignment) -> str:
    """The branch `a` started from, as recorded when it was sent."""
    worktree = (svc.ledger.baseline(a.id) or {}).get("worktree") or {}
    base = worktree.get("base")
    if not isinstance(base, str):
        raise InvalidInput(f"Assignment {a.id} has no recorded base branch.", hint="Name one with --into.",
                           assignment=a.id)
    return base


def assignment_diff(svc: Service, *, assignment: str, max_bytes: int) -> dict[str, Any]:
    a = _repo_assignment(svc, assignment)
    d = diff(a.repo or "", a.branch or "", a.base_commit or _base(svc, a), max_bytes)
    return {"assignment": a.id, "state": a.state, "repo": a.repo, "branch": d.branch, "base_commit": d.base_commit,
            "head": d.head, "verified_commit": a.verified_commit, "merged_commit": a.merged_commit, "stat": d.stat,
            "patch": d.patch, "truncated": d.truncated}


def assignment_merge(svc: Service, *, assignments: list[str], into: str | None = None,
                     holder: str | None = None) -> dict[str, Any]:
    """Merge verified assignments, in the order given, into `into` (default: their base branch).
    Every one must be a worktree assignment of one repository; each merged step is recorded as a
    `merged` ledger event with the base's new tip and how it went in."""
    actor = svc.holder_for(holder)
    rows = [_repo_assignment(svc, i) for i in dict.fromkeys(assignments)]
    if len(rows) != len(assignments):
        raise InvalidInput("An assignment is named more than once.", hint="Name each once, in the order to merge.")
    repos = sorted({str(a.repo) for a in rows})
    if len(repos) > 1:
        raise InvalidInput(f"These assignments are in different repositories ({', '.join(repos)}); one merge goes "
                           "into one repository.", hint="Merge each repository's assignments in its own call.",
                           repos=repos)
    target = into
    if target is None:
        bases = sorted({_base(svc, a) for a in rows})
        if len(bases) > 1:
            raise InvalidInput(f"These assignments started from different branches ({', '.join(bases)}).",
                               hint="Name the branch to merge into with --into.", bases=bases)
        target = bases[0]
    repo = repos[0]
    found = candidates(repo, [(a.id, a.state) for a in rows],
                       {a.id: a.verified_commit for a in rows if a.verified_commit})
    result = merge(repo, plan_merge(target, found), svc.config.state_dir / "locks")
    for step in result.steps:
        if step.how != "already merged" or not svc.ledger.get(step.assignment_id).merged_commit:
            svc.ledger.annotate(step.assignment_id, "merged", actor=actor, merged_commit=step.tip,
                                details={"into": target, "commit": step.tip, "how": step.how})
    return {"repo": repo, "into": target, "old": result.old, "new": result.new,
            "steps": [{"assignment": s.assignment_id, "how": s.how, "commit": s.tip} for s in result.steps],
            "checkouts": list(result.checkouts), "checkout_errors": list(result.checkout_errors)}


def _repos(svc: Service) -> dict[str, list[str]]:
    """Each repository of the fleet's repo agents -> its agents (configured or recorded by `up`)."""
    out: dict[str, list[str]] = {}
    for spec in svc.config.agents.values():
        if spec.repo is not None:
            out.setdefault(os.path.realpath(spec.repo), []).append(spec.name)
    agents_dir = svc.config.state_dir / "agents"
    for d in sorted(agents_dir.iterdir()) if agents_dir.is_dir() else ():
        repo = recorded(svc, d.name).get("repo")
        other = svc.config.agents.get(d.name)
        if isinstance(repo, str) and (other is None or other.repo is None):
            out.setdefault(os.path.realpath(repo), []).append(d.name)
    return out


def _unmerged(svc: Service) -> dict[str, list[str]]:
    """Agent -> its assignments that are verified but not merged, by the ledger."""
    out: dict[str, list[str]] = {}
    for a in svc.ledger.assignments(states=("verified",), limit=10_000):
        if a.state == "verified" and a.branch is not None and a.merged_commit is None and a.agent:
            out.setdefault(a.agent, []).append(a.id)
    return out


def worktree_list(svc: Service) -> dict[str, Any]:
    unmerged = _unmerged(svc)
    out: list[dict[str, Any]] = []
    for repo, agents in _repos(svc).items():
        found = {w.agent: w for w in list_worktrees(repo, svc.config.worktree_root)}
        for agent in sorted(set(agents) | set(found)):
            w = found.get(agent)
            spec = svc.config.agents.get(agent)
            out.append({
                "agent": agent, "repo": repo, "configured": spec is not None and spec.repo is not None,
                "path": w.path if w else str(svc.config.worktree_root / agent), "branch": w.branch if w else None,
                "state": w.state if w else "absent", "dirty": list(w.dirty[:SHOWN_DIRTY]) if w else [],
                "dirty_count": len(w.dirty) if w else 0, "unmerged": sorted(unmerged.get(agent, [])),
            })
    return {"worktrees": sorted(out, key=lambda w: (w["agent"], w["repo"]))}


def worktree_prune(svc: Service, *, force: bool, holder: str | None = None) -> dict[str, Any]:
    """Remove the worktrees of agents no longer configured (as repo agents) and the branches of
    merged or cancelled assignments. A branch a remaining worktree is on is kept (said in `kept`);
    anything the base does not contain refuses the prune of that repository and base
    (`unmerged_work`) unless `force`."""
    svc.holder_for(holder)
    removed: list[str] = []
    deleted: list[str] = []
    kept: list[dict[str, str]] = []
    ledger = [a for a in svc.ledger.assignments(states=("verified", "cancelled"), limit=10_000)
              if a.branch is not None and (a.merged_commit is not None or a.state == "cancelled")]
    for repo, _agents in _repos(svc).items():
        listed = list_worktrees(repo, svc.config.worktree_root)
        gone = [w.agent for w in listed if _no_longer_configured(svc, w.agent, repo)]
        on_branch = {w.branch: w.agent for w in listed if w.branch and w.agent not in gone}
        ids: list[str] = []
        for a in ledger:
            if str(a.repo) != repo:
                continue
            if a.branch in on_branch:
                kept.append({"assignment": a.id, "branch": str(a.branch),
                             "why": f"agent {on_branch[str(a.branch)]}'s worktree is on it"})
            else:
                ids.append(a.id)
        for base, agents, branch_ids in _by_base(svc, repo, gone, ids, kept):
            done = prune(repo, svc.config.worktree_root, base, agents=agents, assignments=branch_ids, force=force)
            removed += done.worktrees
            deleted += done.branches
    return {"worktrees": removed, "branches": deleted, "kept": kept}


def _no_longer_configured(svc: Service, agent: str, repo: str) -> bool:
    spec = svc.config.agents.get(agent)
    return spec is None or spec.repo is None or os.path.realpath(spec.repo) != repo


def _by_base(svc: Service, repo: str, agents: Sequence[str], ids: Sequence[str],
             kept: list[dict[str, str]]) -> list[tuple[str, list[str], list[str]]]:
    """The prune calls for one repository, one per base branch: a worktree's base is what `up`
    recorded for its agent (a worktree without that record is kept, said in `kept`), a branch's
    the one its assignment started from."""
    groups: dict[str, tuple[list[str], list[str]]] = {}
    for agent in agents:
        record = recorded(svc, agent)
        base = record.get("base")
        if isinstance(base, str) and isinstance(record.get("repo"), str) and os.path.realpath(record["repo"]) == repo:
            groups.setdefault(base, ([], []))[0].append(agent)
        else:
            kept.append({"worktree": str(svc.config.worktree_root / agent),
                         "why": "no base recorded for it: remove it by hand (`git worktree remove PATH`)"})
    for aid in ids:
        a = svc.ledger.get(aid)
        groups.setdefault(_base(svc, a), ([], []))[1].append(aid)
    return [(base, agents_, ids_) for base, (agents_, ids_) in groups.items()]

