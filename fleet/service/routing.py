"""Routing facts for assignments: the routing lock, each agent's skills, the facts a route is chosen
from, the read/write scope of an assignment against an agent's cwd, the agents work may be routed
to (`candidates`), and `assignment_route`, the routing answer another host asks for.

Concurrency. Every routing decision (gather facts, route, write the ledger row, claim the lease) is
taken under one file lock per state dir, `<state_dir>/assign.lock`, held for milliseconds: two
`assign` or `dispatch` calls in different processes can never pick the same agent, because the
second one routes after the first one's lease `assignment:<id>` is on record.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from fleet.agents.account import account_of
from fleet.config import AgentSpec
from fleet.errors import FleetError, InvalidInput, Timeout
from fleet.fsutil import ensure_dir, flock_within, open_lock_file
from fleet.work.hostrank import key_to_json
from fleet.work.routing import AgentFacts, Need, Refusal, check_skills, route, share_accounts
from fleet.work.scope import normalize_scope

from .core import Service

if TYPE_CHECKING:
    from fleet.work.skills import Inventory

#: The lock file that serialises routing decisions across processes.
ASSIGN_LOCK: Final = "assign.lock"
#: Routing holds the lock for milliseconds; a caller waiting longer than this has a stuck peer.
LOCK_TIMEOUT: Final = 30.0


@contextlib.contextmanager
def routing_lock(svc: Service) -> Iterator[None]:
    """One routing decision at a time across processes (an flock on `assign.lock`)."""
    fd = open_lock_file(ensure_dir(svc.config.state_dir) / ASSIGN_LOCK)
    try:
        if not flock_within(fd, LOCK_TIMEOUT):
            raise Timeout(f"Another fleet process held the routing lock for over {LOCK_TIMEOUT:.0f} s.",
                          hint="Retry; if it persists, look for a stuck fleet process.")
        yield
    finally:
        os.close(fd)  # drops the flock


# -- skills and facts ----------------------------------------------------------------------------

def plugins_enabled(spec: AgentSpec) -> bool | None:
    """False when the agent is launched with `-c features.plugins=false` (or `--disable plugins`);
    None lets the skill scan read the agent's config.toml."""
    args = list(spec.args)
    for i, arg in enumerate(args[:-1]):
        value = args[i + 1].replace(" ", "")
        if arg in ("-c", "--config") and value in ("features.plugins=false", 'features.plugins="false"'):
            return False
        if arg == "--disable" and value == "plugins":
            return False
    return None


def inventory(spec: AgentSpec) -> Inventory:
    """The agent's skills as its Codex would load them (reads its homes and cwd; YAML loads here)."""
    from fleet.work.skills import agent_home, scan_skills  # noqa: PLC0415 (PyYAML: only when a skill is named)

    home = spec.env.get("HOME")
    return scan_skills(spec.home, spec.cwd, agent_home({"HOME": home} if home else None),
                       plugins_enabled=plugins_enabled(spec))


def inventories(specs: Sequence[AgentSpec], needed: bool) -> dict[str, Inventory]:
    """Each agent's skills, scanned only when the work names a skill (a scan reads every SKILL.md)."""
    if not needed:
        from fleet.work.skills import Inventory  # noqa: PLC0415 (PyYAML: loaded only by a process that routes work)

        return {s.name: Inventory(()) for s in specs}
    return {s.name: inventory(s) for s in specs}


def _used_percent(status: dict[str, Any]) -> float | None:
    """The higher rate-limit window use the status reports, if it reports one."""
    limits = status.get("rate_limits")
    if not isinstance(limits, dict):
        return None
    used = [w.get("used_percent") for w in (limits.get("primary"), limits.get("secondary")) if isinstance(w, dict)]
    numbers = [float(u) for u in used if isinstance(u, int | float)]
    return max(numbers) if numbers else None


def _account(status: dict[str, Any], spec: AgentSpec) -> str | None:
    """The account status read, or (no status for the agent) its own."""
    known = status.get("account")
    return known if isinstance(known, str) else account_of(spec) if "account" not in status else None


def gather_facts(svc: Service, specs: Sequence[AgentSpec], caller: str | None, inventories: dict[str, Inventory],
                 statuses: Mapping[str, Mapping[str, Any]] | None = None) -> list[AgentFacts]:
    """One routing fact per agent, read now: state (Codex's signals), lease, skills, ledger load and
    account (agents on one account share its limits: `share_accounts`, over every configured agent,
    not only `specs`). A lease held by `caller` does not count against the agent (the caller hands
    it over; pass a caller only for work that names its agent, never for routed work). Leases are read
    for `specs` only: `share_accounts` reads no lease, and the other agents' facts are dropped after it.
    `statuses`, by agent name: every configured agent's status as the caller has just read it (else read
    here)."""
    load = svc.ledger.agent_load()
    wanted = {s.name for s in specs}
    everyone = [*specs, *(s for s in svc.config.agents.values() if s.name not in wanted)]
    read = svc.runtime.status(everyone) if statuses is None else statuses.values()
    known = {str(s["name"]): dict(s) for s in read}
    out = []
    for spec in everyone:
        status = known.get(spec.name, {})
        other = False
        if spec.name in wanted:
            try:
                lease = svc.leases.info(spec.name)
                other = lease["state"] == "held" and lease["holder"] != caller
            except FleetError:  # a corrupt record fails closed
                other = True
        count, last = load.get(spec.name, (0, None))
        state = str(status.get("state", "stopped"))
        inv = inventories.get(spec.name)
        out.append(AgentFacts(
            name=spec.name, role=spec.role, state=state, skills=inv.names() if inv is not None else frozenset(),
            leased_by_other=other, limited=state == "limited", open_assignments=count, last_assigned_at=last,
            used_percent=_used_percent(status), account=_account(status, spec),
        ))
    return [f for f in share_accounts(out) if f.name in wanted]


# -- scope ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Scope:
    """Write and read paths in normal form for one agent's cwd."""

    write: tuple[str, ...]
    read: tuple[str, ...]


def scope_for(spec: AgentSpec, write: Sequence[str], read: Sequence[str]) -> tuple[Scope, list[str]]:
    """The scope normalised against `spec.cwd` (symlinks resolved) and every problem found."""
    cwd = str(spec.cwd)
    w = normalize_scope(write, cwd)
    r = normalize_scope(read, cwd)
    problems = [*(f"write path {p}" for p in w.problems), *(f"read path {p}" for p in r.problems)]
    return Scope(w.entries, r.entries), problems


def lexical_scope(paths: Sequence[str], what: str) -> tuple[str, ...]:
    """Paths for an assignment fleet will route: relative, normalised without touching a disk (the
    agent is not known yet); refused when absolute or escaping the cwd."""
    absolute = [p for p in paths if p.startswith("/")]
    if absolute:
        raise InvalidInput(
            f"The {what} path {absolute[0]!r} is absolute; without --to, paths are relative to whichever "
            "agent's working directory the assignment is routed to.",
            hint="Give paths relative to the agent's working directory, or name the agent with --to.")
    root = "/cwd"
    norm = normalize_scope(paths, root, follow_links=False)
    if norm.problems:
        problem = norm.problems[0].replace(f" {root}", "")
        raise InvalidInput(f"The {what} paths are not usable: {problem}.",
                           hint="Paths must stay inside the agent's working directory.")
    return norm.entries


# -- repository -----------------------------------------------------------------------------------

def repo_of(spec: AgentSpec) -> str | None:
    """The repository a repo agent works in (resolved), None for a plain agent."""
    return os.path.realpath(spec.repo) if spec.repo is not None else None


def check_repo(svc: Service, repo: str | None, to: str | None) -> str | None:
    """`repo` resolved; refused when no agent (or not the agent named) works in a worktree of it."""
    if repo is None:
        return None
    want = os.path.realpath(os.path.expanduser(repo))
    agents = sorted(s.name for s in svc.config.agents.values() if repo_of(s) == want)
    if not agents or (to is not None and to not in agents):
        who = f"Agent {to} does not" if to is not None and agents else "No configured agent does"
        known = sorted({str(s.repo) for s in svc.config.agents.values() if s.repo is not None}) or ["none"]
        raise InvalidInput(f"{who} work in a worktree of {want}.",
                           hint=f"Repositories of this fleet: {', '.join(known)}.", repo=want)
    return want


def scope_refusals(specs: Sequence[AgentSpec], write: Sequence[str], read: Sequence[str]) -> list[Refusal]:
    """A `scope` refusal for each agent (leads aside) whose cwd the paths do not fit."""
    out = []
    for spec in specs:
        if spec.role == "lead":
            continue
        _, problems = scope_for(spec, write, read)
        if problems:
            out.append(Refusal(spec.name, "scope", problems[0]))
    return out


# -- the agents work may go to ----------------------------------------------------------------------

def candidates(svc: Service, need: Need, write: Sequence[str], read: Sequence[str],
               repo: str | None) -> tuple[list[AgentSpec], dict[str, Inventory], list[Refusal]]:
    """This host's agents work with `need` may be routed to (only `repo`'s, when given; `need.only`
    alone, when set), each one's skills, and a refusal for each agent its paths do not fit (left
    out). Raises `SkillNotFound` when no agent holds a required skill, `InvalidInput` when the paths
    fit no agent: mistakes in the request, not reasons to wait."""
    specs = [s for s in svc.config.agents.values() if repo is None or repo_of(s) == repo]
    skills_of = inventories(specs, bool(need.skills))
    check_skills([AgentFacts(name=s.name, role=s.role, state="idle", skills=skills_of[s.name].names())
                  for s in specs], need)
    bad = [] if need.only is not None else scope_refusals(specs, write, read)
    pool = [s for s in specs if s.name not in {r.agent for r in bad} and need.only in (None, s.name)]
    if need.only is None and not pool:
        detail = bad[0].detail if bad else "this host has no agent for it"
        raise InvalidInput(f"The assignment's paths are not usable for any agent: {detail}.",
                           hint="Paths must stay inside the agents' working directories.")
    return pool, skills_of, bad


def assignment_route(svc: Service, *, skills: list[str] | None = None, write_paths: list[str] | None = None,
                     read_paths: list[str] | None = None, repo: str | None = None) -> dict[str, Any]:
    """Which of this host's agents routing would pick now for an assignment with these skills, paths
    and repository, with its rank key (`fleet.work.routing.rank_key`), or none and every agent's
    reason: what `assign` without `to` decides, read without creating, sending or locking anything.
    Another host's fleet asks it (`fleet.service.assigncreate`) to rank hosts; by the time it creates,
    the pick may be busy (it then falls through to the next host)."""
    write = lexical_scope(write_paths or (), "write")
    read = lexical_scope(read_paths or (), "read")
    need = Need(skills=frozenset(skills or ()), needs_write=bool(write))
    pool, skills_of, bad = candidates(svc, need, write, read, check_repo(svc, repo, None))
    result = route(gather_facts(svc, pool, None, skills_of), need)
    return {"agent": result.agent, "rank": key_to_json(result.key) if result.key is not None else None,
            "reasons": [r.to_dict() for r in (*result.refusals, *bad)]}
