"""`fleet init`: write a commented `fleet.toml` for N agents that `fleet doctor` passes and `fleet up`
starts, and say how each agent's Codex home gets logged in.

The text is built by pure functions (`agent_roles`, `agent_names`, `fleet_name`, `render`) from the
number of agents, their roles, the repository and the user's home. `plan_init` adds what it finds on
disk (existing `~/.codex*` homes, which new homes already hold an `auth.json`) and checks the layout
the way `fleet doctor` and `fleet up` will (the config must parse, the cwd must exist, and no file of
fleet's may lie where a sandboxed agent writes); `write_init` writes it.

Writes: the config, once, atomically and never over an existing file (`config_exists`; the check and
the write are one `link(2)`, so a file made meanwhile is not clobbered either); the trust record for
it (`fleet.config.trust`: the user ran this command, so a `./fleet.toml` it wrote is theirs); and,
only when asked with `copy_auth_from`, a copy of that home's `auth.json` into each new home that has
none, a regular 0600 file in a 0700 home (never a symlink; its content is never printed or
returned). Everything else (homes, state dir) `fleet up` creates.

`--repo PATH` sets each agent's `cwd` to PATH today. Once fleet's git worktree setup lands, the same
option will write the agents' `repo` key instead (each agent then works in a worktree of PATH); the
choice is made in `render` alone, so the CLI and its tests keep their shape.
"""

from __future__ import annotations

import os
import re
import shlex
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, get_args

from fleet.agents.writable import exposure_hint, exposures
from fleet.config import CONFIG_NAME, MAX_AGENTS, Role, parse_config, user_config_path
from fleet.config.trust import trust
from fleet.errors import CodexHomeMissing, ConfigExists, ControlPlaneExposed, InvalidInput
from fleet.fsutil import make_private_dirs, read_bytes_nofollow, write_atomic

ROLES: Final[tuple[str, ...]] = get_args(Role)
#: An `auth.json` is a few KB; anything near this is not one.
_AUTH_LIMIT: Final = 1 << 20
_ROLE_NOTE: Final[dict[str, str]] = {
    "explorer": "reads and reports (read-only sandbox)",
    "worker": "writes in its cwd (workspace-write sandbox)",
    "lead": "hands out work through fleet's MCP tools; never assigned",
}


@dataclass(frozen=True)
class PlannedAgent:
    name: str
    role: str
    home: Path
    cwd: Path
    logged_in: bool  # the home already holds an auth.json


@dataclass(frozen=True)
class CodexHome:
    """An existing Codex home under the user's home (`~/.codex*`)."""

    path: Path
    has_auth: bool
    has_config: bool


@dataclass(frozen=True)
class InitPlan:
    path: Path
    name: str
    state_dir: Path
    agents: tuple[PlannedAgent, ...]
    found_homes: tuple[CodexHome, ...]
    copy_auth_from: Path | None
    text: str


# ---- pure ---------------------------------------------------------------------------------------

def agent_roles(count: int, roles: list[str]) -> list[str]:
    """One role per agent: none given, all explorers (the config's default, read-only); one given,
    all of that role; `count` given, one each in order. Any other number is `invalid_input`."""
    if not 1 <= count <= MAX_AGENTS:
        raise InvalidInput(f"--agents must be between 1 and {MAX_AGENTS}, not {count}.",
                           hint="Pick how many agents the fleet runs.")
    bad = [r for r in roles if r not in ROLES]
    if bad:
        raise InvalidInput(f"Unknown role {bad[0]!r}.", hint=f"Roles are {', '.join(ROLES)}.")
    if not roles:
        return ["explorer"] * count
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


def render(name: str, state_dir: Path, agents: list[PlannedAgent], user_home: Path) -> str:
    """The commented config. Paths under `user_home` are written with `~`."""
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
        "# codex = \"codex\"        # the Codex CLI command or path",
        "# model = \"gpt-5.4-mini\" # else Codex's default model",
        "# args = []              # extra codex arguments",
        "",
        "# One table per agent; the key is its name. Roles:",
        *(f"#   {role}: {note}" for role, note in _ROLE_NOTE.items()),
    ]
    for agent in agents:
        lines += [
            "",
            f"[agents.{agent.name}]",
            f"role = {toml_str(agent.role)}",
            f"home = {toml_str(shown(agent.home, user_home))}  # its CODEX_HOME, created by `fleet up` if missing",
            f"cwd = {toml_str(str(agent.cwd))}  # where it works; must exist",
        ]
    return "\n".join(lines) + "\n"


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


def plan_init(*, agents: int, roles: list[str], repo: str | None, path: str,
              copy_auth_from: str | None = None) -> InitPlan:
    """What `write_init` would write, checked as `fleet doctor` and `fleet up` will check it: the
    text parses, the cwd exists, and no agent that is not full-access could write the config, the
    state dir, a Codex home or fleet's install (`control_plane_exposed`, with doctor's sentences).
    Writes nothing. `config_exists` if `path` is taken."""
    user_home = Path.home()
    target = Path(path).expanduser().absolute()
    if os.path.lexists(target):
        raise ConfigExists(f"{target} already exists; fleet init never overwrites a config.",
                           hint="Edit it, move it aside, or write a new one with --path PATH.", path=str(target))
    cwd = Path(repo or ".").expanduser().absolute()
    if not cwd.is_dir():
        raise InvalidInput(f"--repo {repo}: {cwd} is not a directory.", hint="Name an existing directory.")
    cwd = cwd.resolve()
    role_list = agent_roles(agents, roles)
    name = fleet_name(cwd)
    state_dir = default_state_dir(name)
    planned = []
    for agent_name, role in zip(agent_names(role_list), role_list, strict=True):
        home = user_home / f".codex-{name}-{agent_name}"
        planned.append(PlannedAgent(agent_name, role, home, cwd, (home / "auth.json").is_file()))
    source = _auth_source(copy_auth_from) if copy_auth_from else None
    text = render(name, state_dir, planned, user_home)
    config = parse_config(tomllib.loads(text), target)  # a bug here is an internal error, not a bad file
    found = exposures(config)
    if found:
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise ControlPlaneExposed(
            f"Not writing {target}: {found[0].sentence()}{more}, so `fleet doctor` would fail and `fleet up` "
            "would refuse it.",
            hint="Write the config outside the agents' cwd (--path ~/.config/fleet/fleet.toml is used from "
                 "any directory), or give the agents that share it a read-only role (--role explorer). "
                 + exposure_hint(found))
    return InitPlan(target, name, state_dir, tuple(planned), tuple(find_codex_homes(user_home)), source, text)


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
                       "login": login, "login_command": login_command(agent.home) if login == "needed" else None})
    return {**describe(plan), "agents": agents, "written": True, "trusted": True}


def config_option(path: Path) -> str:
    """`--config PATH` when fleet run here would not find `path` by itself, else empty."""
    found = {Path.cwd().absolute() / CONFIG_NAME, user_config_path().absolute()}
    return "" if path in found else f"--config {shlex.quote(str(path))}"


def describe(plan: InitPlan) -> dict[str, Any]:
    """The plan as a result: the file, the fleet, the agents and the Codex homes found."""
    return {
        "path": str(plan.path), "config_option": config_option(plan.path), "fleet": plan.name,
        "state_dir": str(plan.state_dir), "written": False,
        "agents": [{"name": a.name, "role": a.role, "home": str(a.home), "cwd": str(a.cwd),
                    "login": "has_auth" if a.logged_in else "copy" if plan.copy_auth_from else "needed",
                    "login_command": None if a.logged_in or plan.copy_auth_from else login_command(a.home)}
                   for a in plan.agents],
        "codex_homes": [{"path": str(h.path), "auth": h.has_auth, "config": h.has_config} for h in plan.found_homes],
        "copy_auth_from": str(plan.copy_auth_from) if plan.copy_auth_from else None,
    }
