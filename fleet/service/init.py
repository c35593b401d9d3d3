"""`fleet init`: write a commented `fleet.toml` for N agents that `fleet doctor` passes and `fleet up`
starts, and say how each agent's Codex home gets logged in.

The text is built by pure functions (`agent_roles`, `agent_names`, `fleet_name`, `render`) from the
number of agents, their roles, the repository and the user's home. `plan_init` adds what it finds on
disk (whether `--repo` is a git repository and on which branch, asked with `gitrun`'s read-only
queries; existing `~/.codex*` homes; which new homes already hold an `auth.json`) and checks the
layout the way `fleet doctor` and `fleet up` will (the config must parse, the cwd must exist, and no
file of fleet's may lie where a sandboxed agent writes); `write_init` writes it.

Writes: the config, once, atomically and never over an existing file (`config_exists`; the check and
the write are one `link(2)`, so a file made meanwhile is not clobbered either); the trust record for
it (`fleet.config.trust`: the user ran this command, so a `./fleet.toml` it wrote is theirs); and,
only when asked with `copy_auth_from`, a copy of that home's `auth.json` into each new home that has
none, a regular 0600 file in a 0700 home (never a symlink; its content is never printed or
returned). Everything else (homes, state dir, worktrees) `fleet up` creates.

`--repo PATH` (default: the current directory) inside a git work tree writes `[defaults] repo` = the
top of that work tree: each agent then works in its own worktree of it, `<state_dir>/worktrees/
<agent>` (made by `fleet up`), on a branch per assignment, and roles default to `worker` (a worker
writes only its worktree, so it shares no directory with a `./fleet.toml` in the checkout). A lead
gets the checkout itself as its read-only `cwd`: it is never assigned, so it needs no worktree.
Elsewhere (not a git work tree, or git missing) each agent's `cwd` is PATH, roles default to
`explorer`, and the result says why (`cwd_reason`). Either way the layout is checked as doctor checks
it, so a worker that could write fleet's files is refused.
"""

from __future__ import annotations

import os
import re
import shlex
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final, get_args

from fleet.agents.writable import exposure_hint, exposures
from fleet.config import CONFIG_NAME, MAX_AGENTS, FleetConfig, Role, parse_config, user_config_path
from fleet.config.trust import trust
from fleet.errors import (
    CodexHomeMissing,
    ConfigError,
    ConfigExists,
    ControlPlaneExposed,
    GitFailed,
    InvalidInput,
    RepoInvalid,
)
from fleet.fsutil import make_private_dirs, read_bytes_nofollow, write_atomic
from fleet.work import gitrun
from fleet.work.worktrees import current_branch, git_errors, open_repo, rev_commit

ROLES: Final[tuple[str, ...]] = get_args(Role)
#: An `auth.json` is a few KB; anything near this is not one.
_AUTH_LIMIT: Final = 1 << 20
_ROLE_NOTE: Final[dict[str, str]] = {
    "explorer": "reads and reports (read-only sandbox)",
    "worker": "writes in its cwd (workspace-write sandbox)",
    "lead": "hands out work through fleet's MCP tools; never assigned",
}
#: The notes of a repo fleet, where each agent but a lead works in its own worktree.
_REPO_ROLE_NOTE: Final[dict[str, str]] = {
    **_ROLE_NOTE,
    "worker": "writes in its own worktree, on a branch per assignment (workspace-write sandbox)",
    "lead": "hands out work through fleet's MCP tools; never assigned, so it reads your checkout as its cwd",
}


@dataclass(frozen=True)
class PlannedAgent:
    """`cwd` is where the agent works: its worktree when `repo` is set (`fleet up` makes it)."""

    name: str
    role: str
    home: Path
    cwd: Path
    logged_in: bool  # the home already holds an auth.json
    repo: Path | None = None


@dataclass(frozen=True)
class CodexHome:
    """An existing Codex home under the user's home (`~/.codex*`)."""

    path: Path
    has_auth: bool
    has_config: bool


@dataclass(frozen=True)
class Workplace:
    """Where the agents work: a git repository (`repo`, the top of its work tree; `base` its current branch,
    None when detached or bare; `notes` what `fleet up` would trip on), else the directory `cwd` and
    the sentence saying why it is no repository (`cwd_reason`)."""

    cwd: Path
    repo: Path | None = None
    base: str | None = None
    cwd_reason: str | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class InitPlan:
    path: Path
    name: str
    state_dir: Path
    agents: tuple[PlannedAgent, ...]
    found_homes: tuple[CodexHome, ...]
    copy_auth_from: Path | None
    text: str
    place: Workplace


# ---- pure ---------------------------------------------------------------------------------------

def agent_roles(count: int, roles: list[str], default: str = "explorer") -> list[str]:
    """One role per agent: none given, all `default` (`explorer`, the config's own, read-only; a repo
    fleet's agents write their own worktrees, so `worker` there); one given, all of that role;
    `count` given, one each in order. Any other number is `invalid_input`."""
    if not 1 <= count <= MAX_AGENTS:
        raise InvalidInput(f"--agents must be between 1 and {MAX_AGENTS}, not {count}.",
                           hint="Pick how many agents the fleet runs.")
    bad = [r for r in roles if r not in ROLES]
    if bad:
        raise InvalidInput(f"Unknown role {bad[0]!r}.", hint=f"Roles are {', '.join(ROLES)}.")
    if not roles:
        return [default] * count
    if len(roles) == 1:
        return roles * count
    if len(roles) != count:
        raise InvalidInput(f"{len(roles)} --role options for {count} agents.",
                           hint="Give --role once (every agent) or once per agent, in order.")
    return list(roles)


def agent_names(roles: list[str]) -> list[str]:
    """`<role>-<n>`, counted per role; a fleet's only lead is just `lead`."""
    seen: dict[str, int] = {}
    names = []
    for role in roles:
        seen[role] = seen.get(role, 0) + 1
        names.append("lead" if role == "lead" and roles.count("lead") == 1 else f"{role}-{seen[role]}")
    return names


def fleet_name(directory: Path) -> str:
    """A fleet name (`vocab.FLEET_NAME`) from a directory's name, else `fleet`."""
    slug = re.sub(r"[^a-z0-9]+", "-", directory.name.lower()).strip("-")
    slug = re.sub(r"^[^a-z]+", "", slug)[:32].rstrip("-")
    return slug or "fleet"


def toml_str(text: str) -> str:
    """A TOML basic string (not `json.dumps`: TOML forbids raw DEL and surrogate-pair escapes)."""
    out = []
    for ch in text:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def shown(path: Path, home: Path) -> str:
    """`path` with the user's home as `~` (fleet expands it when it reads the config)."""
    try:
        return "~/" + str(path.relative_to(home)) if path != home else "~"
    except ValueError:
        return str(path)


def login_command(home: Path) -> str:
    return f"CODEX_HOME={shlex.quote(str(home))} codex login"


#: Keeps /tmp and $TMPDIR out of a workspace-write sandbox: written when fleet's own files lie there.
NO_TMP_ARGS: Final = ("-c", "sandbox_workspace_write.exclude_slash_tmp=true",
                      "-c", "sandbox_workspace_write.exclude_tmpdir_env_var=true")


#: Said when `NO_TMP_ARGS` was written.
TMP_NOTE: Final = ("fleet's own files lie under /tmp or $TMPDIR, so the agents' sandboxes leave those out "
                   "([defaults] args)")


def render(name: str, state_dir: Path, agents: list[PlannedAgent], user_home: Path, *,
           repo: Path | None = None, base: str | None = None, no_tmp: bool = False) -> str:
    """The commented config. Paths under `user_home` are written with `~`. With `repo`, `[defaults]`
    names it (every agent without a `repo` of its own, a lead, gets `cwd`); `base` is the repository's
    current branch, shown as the default the commented `base` line would change. `no_tmp`: the
    agents' sandboxes leave /tmp and $TMPDIR out (`NO_TMP_ARGS`), because fleet's files lie there."""
    lines = [
        f"# fleet.toml for the fleet {name!r}, written by `fleet init`.",
        "# Reference: README, \"Configuration\". Check it with `fleet doctor`, start it with `fleet up`.",
        "# fleet uses a ./fleet.toml only while you trust its exact content: after an edit, run `fleet trust`.",
        "",
        "[fleet]",
        f"name = {toml_str(name)}  # names the fleet's private tmux server",
        f"state_dir = {toml_str(shown(state_dir, user_home))}  # journals, leases, the ledger: keep it out "
        "of every agent's cwd",
        "# assignment_template = \"prompt.md\"  # your own assignment prompt (README, \"Assignments\")",
        "",
        "[defaults]  # any agent key except home and cwd, for every agent",
        *(_repo_lines(repo, base, user_home) if repo is not None else []),
        "# codex = \"codex\"        # the Codex CLI command or path",
        "# model = \"gpt-5.4-mini\" # else Codex's default model",
        *([f"args = [{', '.join(toml_str(a) for a in NO_TMP_ARGS)}]",
           "# ^ keeps /tmp and $TMPDIR out of a writing agent's sandbox: fleet's own files lie there"]
          if no_tmp else ["# args = []              # extra codex arguments"]),
        "",
        "# One table per agent; the key is its name. Roles:",
        *(f"#   {role}: {note}" for role, note in (_ROLE_NOTE if repo is None else _REPO_ROLE_NOTE).items()),
    ]
    for agent in agents:
        lines += [
            "",
            f"[agents.{agent.name}]",
            f"role = {toml_str(agent.role)}",
            f"home = {toml_str(shown(agent.home, user_home))}  # its CODEX_HOME, created by `fleet up` if missing",
        ]
        if agent.repo is None:
            where = "your checkout, read-only" if repo is not None else "where it works; must exist"
            text = shown(agent.cwd, user_home) if repo is not None else str(agent.cwd)
            lines.append(f"cwd = {toml_str(text)}  # {where}")
    return "\n".join(lines) + "\n"


def _repo_lines(repo: Path, base: str | None, user_home: Path) -> list[str]:
    now = f"now {toml_str(base)}" if base is not None else "none now: set it"
    return [
        f"repo = {toml_str(shown(repo, user_home))}  # a git repository: each agent works in its own worktree of it",
        "#   (<state_dir>/worktrees/<agent>, made by `fleet up`; your checkout is never touched), on a new",
        "#   branch fleet/<assignment id> per assignment; `fleet merge ID` brings verified work into the base",
        f"# base = {toml_str(base or 'main')}  # the branch assignments start from and merge into; default: the",
        f"#   repository's current branch when an agent first starts ({now})",
    ]


# ---- the disk -----------------------------------------------------------------------------------

def find_codex_homes(user_home: Path) -> list[CodexHome]:
    """Directories `~/.codex*` that hold an `auth.json` or a `config.toml`, by name."""
    out = []
    try:
        entries = sorted(user_home.glob(".codex*"))
    except OSError:
        return []
    for path in entries:
        if not path.is_dir():
            continue
        auth, conf = (path / "auth.json").is_file(), (path / "config.toml").is_file()
        if auth or conf:
            out.append(CodexHome(path, auth, conf))
    return out


def default_state_dir(name: str) -> Path:
    """Where fleet keeps a fleet's state when the config names none and $FLEET_HOME is unset."""
    value = os.environ.get("XDG_STATE_HOME", "")
    base = Path(value) if os.path.isabs(value) else Path.home() / ".local" / "state"
    return base / "fleet" / name


def workplace(directory: Path) -> Workplace:
    """The git repository `directory` lies in (the top of its work tree there; a bare one as given),
    with what `fleet up` would trip on as notes, else `directory` itself with the reason it is no
    repository."""
    try:
        found = open_repo(directory)
        base = current_branch(directory)
        has_commit = rev_commit(found.common_dir, "HEAD") is not None
        with git_errors():
            top = (gitrun.run(str(directory), "rev-parse", "--show-toplevel", check=False) or "").strip()
    except RepoInvalid:
        return Workplace(directory, cwd_reason=f"{directory} is not in a git repository, so no worktrees: the "
                                               "agents share it as their cwd")
    except GitFailed as exc:
        return Workplace(directory, cwd_reason=f"git failed here ({exc.message.rstrip('.')}), so no "
                                               f"worktrees: the agents share {directory} as their cwd")
    repo = Path(os.path.realpath(top)) if top else directory
    notes = []
    if not has_commit:
        notes.append(f"{repo} has no commit yet: commit something before `fleet up` (a worktree starts at a "
                     "commit).")
    if base is None:
        notes.append(f"{repo} is not on a branch fleet can use as a base (detached or bare): set `base` in "
                     "[defaults] before `fleet up`.")
    return Workplace(directory, repo=repo, base=base, notes=tuple(notes))


def plan_init(*, agents: int, roles: list[str], repo: str | None, path: str,
              copy_auth_from: str | None = None) -> InitPlan:
    """What `write_init` would write, checked as `fleet doctor` and `fleet up` will check it: the
    text parses, the cwd (or repository) exists, and no agent that is not full-access could write the
    config, the state dir, a Codex home, fleet's install or another agent's worktree
    (`control_plane_exposed`, with doctor's sentences). Writes nothing. `config_exists` if `path`
    is taken."""
    user_home = Path.home()
    target = Path(path).expanduser().absolute()
    if os.path.lexists(target):
        raise ConfigExists(f"{target} already exists; fleet init never overwrites a config.",
                           hint="Edit it, move it aside, or write a new one with --path PATH.", path=str(target))
    cwd = Path(repo or ".").expanduser().absolute()
    if not cwd.is_dir():
        raise InvalidInput(f"--repo {repo}: {cwd} is not a directory.", hint="Name an existing directory.")
    place = workplace(cwd.resolve())
    role_list = agent_roles(agents, roles, default="worker" if place.repo is not None else "explorer")
    name = fleet_name(place.repo or place.cwd)
    state_dir = default_state_dir(name)
    planned = []
    for agent_name, role in zip(agent_names(role_list), role_list, strict=True):
        home = user_home / f".codex-{name}-{agent_name}"
        own = place.repo if role != "lead" else None  # a lead, never assigned, reads the checkout itself
        works_in = state_dir / "worktrees" / agent_name if own is not None else place.repo or place.cwd
        planned.append(PlannedAgent(agent_name, role, home, works_in, (home / "auth.json").is_file(), own))
    source = _auth_source(copy_auth_from) if copy_auth_from else None
    text = render(name, state_dir, planned, user_home, repo=place.repo, base=place.base)
    found = exposures(_parsed(text, target, state_dir))
    if found and {e.root for e in found} <= temp_roots():  # only /tmp or $TMPDIR: leave them out
        tmp_text = render(name, state_dir, planned, user_home, repo=place.repo, base=place.base, no_tmp=True)
        if not (tmp_found := exposures(_parsed(tmp_text, target, state_dir))):
            text, found = tmp_text, tmp_found
            place = replace(place, notes=(*place.notes, TMP_NOTE))
    if found:
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        if any(e.what == "the config" for e in found):
            hint = ("Write the config outside the agents' cwd (--path ~/.config/fleet/fleet.toml is used from any "
                    "directory), or give the agents that share it a read-only role (--role explorer). "
                    + exposure_hint(found))
        else:
            hint = exposure_hint(found) + " Or give the agents a read-only role (--role explorer)."
        raise ControlPlaneExposed(
            f"Not writing {target}: {found[0].sentence()}{more}, so `fleet doctor` would fail and `fleet up` "
            "would refuse it.", hint=hint)
    return InitPlan(target, name, state_dir, tuple(planned), tuple(find_codex_homes(user_home)), source, text,
                    place)


def temp_roots() -> set[Path]:
    """The temp dirs a workspace-write sandbox adds unless told not to (/tmp and $TMPDIR), resolved."""
    roots = {Path("/tmp").resolve()}
    if os.path.isabs(tmpdir := os.environ.get("TMPDIR", "")):
        roots.add(Path(tmpdir).resolve())
    return roots


def _parsed(text: str, target: Path, state_dir: Path) -> FleetConfig:
    """The config `text` as fleet will load it from `target`."""
    try:
        return parse_config(tomllib.loads(text), target)
    except ConfigError as exc:  # the text is fleet's own, so only the layout can fail: worktrees in the repo
        where = f"{target}: {exc.data.get('key', '$')}: "
        raise InvalidInput(f"Not writing {target}: {exc.message.removeprefix(where)}",
                           hint=f"{exc.hint} fleet init puts the state dir at {state_dir} ($XDG_STATE_HOME/fleet/"
                                "<name>): point $XDG_STATE_HOME elsewhere, or write the config by hand.") from None


def _auth_source(value: str) -> Path:
    """The `auth.json` of the home `value` names (a home, or its auth.json itself)."""
    given = Path(value).expanduser().absolute()
    auth = given if given.name == "auth.json" and not given.is_dir() else given / "auth.json"
    if not auth.is_file():
        raise CodexHomeMissing(f"--copy-auth-from {value}: there is no {auth}.",
                               hint="Name a Codex home you logged in to (one with an auth.json), e.g. ~/.codex.",
                               path=str(auth))
    return auth


def _write_new(path: Path, data: bytes) -> None:
    """Write `path` atomically, failing with `config_exists` if it exists by then (`link(2)` does not
    replace). The file is 0600 (`write_atomic`)."""
    make_private_dirs(path.parent)
    tmp = path.with_name(f".{path.name}.init-{os.getpid()}.tmp")
    write_atomic(tmp, data)
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise ConfigExists(f"{path} appeared while fleet init was writing; it was left as it is.",
                           hint="Run `fleet init` again with --path PATH, or use that file.", path=str(path)) from None
    finally:
        os.unlink(tmp)


def copy_auth(source: Path, home: Path) -> bool:
    """Copy `source` into `home/auth.json` (0600, `home` made 0700 if missing) unless one is there;
    True when it copied. Never a symlink: the bytes are read and written as a new regular file."""
    target = home / "auth.json"
    if os.path.lexists(target):
        return False
    data = read_bytes_nofollow(source.resolve(), _AUTH_LIMIT)
    make_private_dirs(home)
    write_atomic(target, data)
    return True


def write_init(plan: InitPlan) -> dict[str, Any]:
    """Write the planned config, trust it, copy `auth.json` if the plan says so; the result says what
    was done and what each agent's home still needs (`login`: `has_auth`, `copied` or `needed` with
    the command to run)."""
    _write_new(plan.path, plan.text.encode())
    trust(plan.path)
    agents = []
    for agent in plan.agents:
        if agent.logged_in:
            login = "has_auth"
        elif plan.copy_auth_from is not None and copy_auth(plan.copy_auth_from, agent.home):
            login = "copied"
        else:
            login = "needed"
        agents.append({"name": agent.name, "role": agent.role, "home": str(agent.home), "cwd": str(agent.cwd),
                       "repo": _str(agent.repo), "login": login,
                       "login_command": login_command(agent.home) if login == "needed" else None})
    return {**describe(plan), "agents": agents, "written": True, "trusted": True}


def config_option(path: Path) -> str:
    """`--config PATH` when fleet run here would not find `path` by itself, else empty."""
    found = {Path.cwd().absolute() / CONFIG_NAME, user_config_path().absolute()}
    return "" if path in found else f"--config {shlex.quote(str(path))}"


def _str(path: Path | None) -> str | None:
    return None if path is None else str(path)


def describe(plan: InitPlan) -> dict[str, Any]:
    """The plan as a result: the file, the fleet, where the agents work (`repo` and its current
    branch `base`, else `cwd_reason`; `notes` on what `fleet up` would trip on), the agents (`cwd`:
    a repo agent's worktree-to-be) and the Codex homes found."""
    place = plan.place
    return {
        "path": str(plan.path), "config_option": config_option(plan.path), "fleet": plan.name,
        "state_dir": str(plan.state_dir), "written": False,
        "repo": _str(place.repo), "base": place.base, "cwd_reason": place.cwd_reason, "notes": list(place.notes),
        "agents": [{"name": a.name, "role": a.role, "home": str(a.home), "cwd": str(a.cwd), "repo": _str(a.repo),
                    "login": "has_auth" if a.logged_in else "copy" if plan.copy_auth_from else "needed",
                    "login_command": None if a.logged_in or plan.copy_auth_from else login_command(a.home)}
                   for a in plan.agents],
        "codex_homes": [{"path": str(h.path), "auth": h.has_auth, "config": h.has_config} for h in plan.found_homes],
        "copy_auth_from": str(plan.copy_auth_from) if plan.copy_auth_from else None,
    }
