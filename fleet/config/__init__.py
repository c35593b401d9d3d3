"""`fleet.toml`: found, parsed, validated against one JSON Schema, resolved into frozen records.

Lookup: `--config PATH`, else `$FLEET_CONFIG`, else `./fleet.toml`, else `fleet.toml` in the user config
dir (`$XDG_CONFIG_HOME/fleet/`, default `~/.config/fleet/`), so that a `fleet mcp` started by a Codex
plugin finds the fleet with no arguments. A `./fleet.toml` is used only when the user trusted that
path with that content (`fleet trust`, `fleet.config.trust`): the others are the user's own choice.
Every error names the file and the key path (`$.agents.mila.cwd`). Paths may use `~` and are
resolved relative to the config file's directory. Loading never touches tmux, Codex or the state dir.

This package owns every table of fleet.toml: this module the file, its schema and `[fleet]`,
`[defaults]`, `[agents]`, `[lead]`; `fleet.config.watchdog` the `[watchdog]` table (validated there, its
errors naming the key path the same way); `fleet.config.store` the `[store]` table (likewise);
`fleet.config.trust` the user's trust records. It imports
only fleet's leaf modules.
"""

from __future__ import annotations

import os
import re
import tomllib
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, NamedTuple

from fleet.errors import AgentRemote, ConfigError, ConfigNotFound, FleetError, UnknownAgent
from fleet.schemacheck import compile_check
from fleet.tokens import parse_tokens
from fleet.vocab import AGENT_NAME, AGENT_NAME_RULE, BRANCH_NAME, FLEET_NAME, HOST_NAME

from .watchdog import Policy, parse_policy

if TYPE_CHECKING:
    from .hosts import HostSpec, RemoteAgent
    from .store import StoreSettings

MAX_AGENTS: Final = 100
#: `[agents.x] account`: a short label (`work`, `team-2`, `me@example.com`); no `:`, which marks the
#: hashed identities read from auth.json (`fleet.agents.account`).
ACCOUNT_NAME: Final = r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$"
ACCOUNT_RULE: Final = "1-64 letters, digits and . _ @ + -, starting with a letter or digit"

Role = Literal["explorer", "worker", "lead"]
#: Where the config came from, in lookup order (`fleet doctor` reports it).
ConfigSource = Literal["--config", "$FLEET_CONFIG", "./fleet.toml", "user config dir"]
#: Why each source was used, a sentence for `fleet doctor` (`ConfigLocation.why`).
CONFIG_WHY: Final[dict[ConfigSource, str]] = {
    "--config": "given with --config",
    "$FLEET_CONFIG": "named by $FLEET_CONFIG",
    "./fleet.toml": "found in the current directory",
    "user config dir": "no ./fleet.toml here, so the one in the user config dir",
}
#: The file name looked for in the current directory and in the user config dir.
CONFIG_NAME: Final = "fleet.toml"
Sandbox = Literal["read-only", "workspace-write", "danger-full-access"]
#: A lead plans and assigns through fleet's MCP tools; it writes nothing itself.
ROLE_SANDBOX: Final[dict[str, Sandbox]] = {"explorer": "read-only", "worker": "workspace-write", "lead": "read-only"}

_STR = {"type": "string", "minLength": 1, "maxLength": 4096}
_ARGS = {"type": "array", "items": {"type": "string", "maxLength": 4096}, "maxItems": 64}
_ENV = {
    "type": "object",
    "propertyNames": {"pattern": r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"},
    "additionalProperties": {"type": "string", "maxLength": 32768},
    "maxProperties": 128,
}
_AGENT_KEYS: dict[str, Any] = {
    "codex": _STR,
    "args": _ARGS,
    "env": _ENV,
    "role": {"enum": ["explorer", "worker", "lead"]},
    "sandbox": {"enum": ["read-only", "workspace-write", "danger-full-access"]},
    "model": {"type": "string", "minLength": 1, "maxLength": 200},
    # a git repository: the agent works in its own worktree of it (instead of a `cwd`)
    "repo": _STR,
    "base": {"type": "string", "pattern": BRANCH_NAME},
    # the token budget of each assignment the agent takes without its own (fleet.tokens: 200k, 1.5m)
    "budget": {"type": ["integer", "string"]},
    # the account the agent's Codex runs on (agents on one share its usage limits); default: from auth.json
    "account": {"type": "string", "pattern": ACCOUNT_NAME},
}

SCHEMA: Final[dict[str, Any]] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "required": ["agents"],
    "properties": {
        "fleet": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"name": {"type": "string", "pattern": FLEET_NAME}, "state_dir": _STR,
                           # a file (string.Template) replacing the packaged assignment prompt
                           "assignment_template": _STR,
                           # where repo agents' worktrees live (default: <state_dir>/worktrees)
                           "worktrees_dir": _STR},
        },
        "defaults": {"type": "object", "additionalProperties": False, "properties": _AGENT_KEYS},
        # Checked in full by fleet.config.watchdog, whose errors name the key path the same way.
        "watchdog": {"type": "object"},
        # Checked in full by fleet.config.store (the URL is never echoed unmasked).
        "store": {"type": "object"},
        # Checked in full by fleet.config.hosts, whose errors name the key path the same way.
        "hosts": {"type": "object"},
        # A lead agent's own tools: by default the ones that act outside a sandbox ask a person.
        "lead": {"type": "object", "additionalProperties": False,
                 "properties": {"auto_approve_agent_approvals": {"type": "boolean"}}},
        "agents": {
            "type": "object",
            "minProperties": 1,
            "maxProperties": MAX_AGENTS,
            "propertyNames": {"pattern": AGENT_NAME},
            "additionalProperties": {
                "type": "object",
                "additionalProperties": False,
                "required": ["home"],
                "properties": {"home": _STR, "cwd": _STR, **_AGENT_KEYS,
                               # a `[hosts.NAME]`: the agent runs there (fleet.config.hosts)
                               "host": {"type": "string", "pattern": HOST_NAME}},
            },
        },
    },
}


@dataclass(frozen=True)
class AgentSpec:
    """One configured agent. `home` is its CODEX_HOME; `cwd` must exist when it starts. A repo agent
    (`repo` set) has `cwd` = `<worktrees_dir>/<name>`, its worktree of `repo`, which `up` creates;
    `base` is the branch its assignments start from (None: the repository's branch at first start)."""

    name: str
    home: Path
    cwd: Path
    role: Role
    sandbox: Sandbox
    codex: str
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    model: str | None = None
    repo: Path | None = None
    base: str | None = None
    #: The token budget of an assignment sent to this agent without one of its own (`fleet.tokens`).
    budget: int | None = None
    #: `account`: the account label configured; None lets `fleet.agents.account` read auth.json.
    account: str | None = None


@dataclass(frozen=True)
class FleetConfig:
    path: Path
    name: str
    state_dir: Path
    agents: dict[str, AgentSpec]
    watchdog: Policy
    source: ConfigSource | None = None  # None when parsed directly (`parse_config`), not looked up
    #: `[fleet] assignment_template`: the user's prompt template (checked when an assignment is made).
    assignment_template: Path | None = None
    #: `[lead] auto_approve_agent_approvals`: a lead agent's `agent_approve` runs without asking a person.
    lead_auto_approve_agent_approvals: bool = False
    #: `[fleet] worktrees_dir`, else `<state_dir>/worktrees` (None: parsed without it, the default).
    worktrees_dir: Path | None = None
    #: `[store]` or `$FLEET_STORE_URL`: the shared PostgreSQL store; None: the embedded one (files).
    store: StoreSettings | None = None
    #: `[hosts.NAME]` tables, and the agents that run on them (never in `agents`: fleet.config.hosts).
    hosts: dict[str, HostSpec] = field(default_factory=dict)
    remote_agents: dict[str, RemoteAgent] = field(default_factory=dict)

    @property
    def worktree_root(self) -> Path:
        """Where repo agents' worktrees live: `<it>/<agent>`."""
        return self.worktrees_dir or self.state_dir / "worktrees"

    @property
    def tmux_socket(self) -> str:
        """The name of this fleet's private tmux server (`tmux -L <it>`): see `tmux_socket`."""
        return tmux_socket(self.name, self.state_dir)

    def agent(self, name: str) -> AgentSpec:
        try:
            return self.agents[name]
        except KeyError:
            if name in self.remote_agents:
                host = self.remote_agents[name].host
                raise AgentRemote(
                    f"Agent {name!r} runs on host {host!r}; this command does not reach remote agents yet.",
                    hint=f"`fleet status` shows it; for the rest run fleet on {host} (README, 'Remote hosts').",
                    agent=name, host=host) from None
            known = ", ".join(sorted(self.agents)) or "none"
            raise UnknownAgent(
                f"No agent named {name!r} in {self.path}.",
                hint=f"Configured agents: {known}. Run `fleet status` to list them.",
                agent=name,
            ) from None

    def select(self, names: list[str] | None) -> list[AgentSpec]:
        """The named agents in the order given, or all agents in config order; unknown names fail."""
        if not names:
            return list(self.agents.values())
        return [self.agent(n) for n in dict.fromkeys(names)]


def tmux_socket(name: str, state_dir: Path) -> str:
    """`fleet-<name>-<8 hex digits of the state dir's path>`: one tmux server per fleet.

    The state dir is part of the name because the fleet name alone is not unique: two projects
    that both keep the default name (or two demos at once), each with its own state dir, would
    otherwise share one server, and each would see the other's sessions as its own agents. Two
    configs with the same name and the same state dir are one fleet, and share it on purpose.
    """
    return f"fleet-{name}-{zlib.crc32(str(state_dir).encode()):08x}"


class ConfigLocation(NamedTuple):
    """The config file found by `find_config`, which rule found it, and why (a sentence for `fleet doctor`)."""

    path: Path
    source: ConfigSource
    why: str


def _xdg_home(variable: str, default: str) -> Path:
    """An XDG base directory: `$variable` when it is an absolute path, else `~/<default>` (the XDG spec
    says to ignore a relative or empty value), as platformdirs gives it on Linux (fleet reads /proc).
    Inline because importing platformdirs (3-5 ms, with tempfile and random) cost every CLI call whose
    config has no state_dir."""
    value = os.environ.get(variable, "")
    return Path(value) if os.path.isabs(value) else Path.home() / default


def user_config_path() -> Path:
    """`$XDG_CONFIG_HOME/fleet/fleet.toml`, default `~/.config/fleet/fleet.toml` (relative XDG values ignored)."""
    return _xdg_home("XDG_CONFIG_HOME", ".config") / "fleet" / CONFIG_NAME


def find_config(explicit: str | os.PathLike[str] | None = None) -> ConfigLocation:
    """The config by precedence: `--config`, `$FLEET_CONFIG`, `./fleet.toml`, the user config dir.

    An explicit path (option or variable) must exist: it never falls through to a file the caller did
    not name. Raises ConfigNotFound naming every place it looked.
    """
    if explicit or os.environ.get("FLEET_CONFIG"):
        source: ConfigSource = "--config" if explicit else "$FLEET_CONFIG"
        path = Path(explicit or os.environ["FLEET_CONFIG"]).expanduser()
        if not path.is_file():
            raise ConfigNotFound(
                f"No fleet config at {path} (from {source}).",
                hint="Fix the path, or create the file (see README, 'Configuration').", path=str(path))
        return ConfigLocation(path.resolve(), source, CONFIG_WHY[source])
    local = Path(CONFIG_NAME)
    if local.is_file():
        # its directory resolved, not the file: a symlink here is judged (trusted) as itself
        return ConfigLocation(local.absolute().parent.resolve() / local.name, "./fleet.toml",
                              CONFIG_WHY["./fleet.toml"])
    user = user_config_path()
    if user.is_file():
        return ConfigLocation(user.resolve(), "user config dir", CONFIG_WHY["user config dir"])
    raise ConfigNotFound(
        f"No fleet config: no --config, no $FLEET_CONFIG, no {local.absolute()} and no {user}.",
        hint=f"Create {user} (used from any directory) or ./fleet.toml (see README, 'Configuration'), "
             "or pass --config PATH / set $FLEET_CONFIG.",
    )


#: Sources the user chose (named, or their own config dir); a config found in the current directory
#: is used only once trusted (`fleet.config.trust`).
TRUSTED_SOURCES: Final[frozenset[ConfigSource]] = frozenset({"--config", "$FLEET_CONFIG", "user config dir"})


def load_config(explicit: str | os.PathLike[str] | None = None) -> FleetConfig:
    """Find, read, trust-check and parse the config. The bytes judged by the trust check are the
    bytes parsed: a file swapped in between is never used unjudged."""
    location = find_config(explicit)
    path = location.path
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read: {exc}.", hint="Check the file's permissions.") from exc
    if location.source not in TRUSTED_SOURCES:
        from .trust import check_trusted  # noqa: PLC0415 (hashlib, ~3 ms: only a ./fleet.toml needs it)

        check_trusted(path, data)
    try:
        raw = tomllib.loads(data.decode("utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}.", hint="Fix the syntax at the line shown.") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text: {exc}.", hint="Save it as UTF-8.") from exc
    return replace(parse_config(raw, path), source=location.source)


def describe(path: Path) -> dict[str, Any]:
    """What a config would have fleet run, for the person deciding to trust it: the fleet's name,
    state dir, agents and the programs it names. Parsing runs nothing; an invalid file says why."""
    try:
        cfg = load_config(path)
    except ConfigError as exc:
        return {"error": exc.to_dict()}
    programs = sorted({a.codex for a in cfg.agents.values()})
    notify = list(cfg.watchdog.notify_command or ())
    # a host runs ssh here (an ssh_config can name a ProxyCommand: a program too) and fleet there
    ssh = [" ".join(["ssh", *(["-F", str(h.ssh_config)] if h.ssh_config else []), h.ssh, h.fleet])
           for h in cfg.hosts.values()]
    return {"fleet": cfg.name, "state_dir": str(cfg.state_dir), "agents": sorted(cfg.agents),
            "programs": programs + ([" ".join(notify)] if notify else []) + ssh,
            "sandboxes": {a.name: a.sandbox for a in cfg.agents.values()},
            **({"remote_agents": {a.name: a.host for a in cfg.remote_agents.values()}} if cfg.remote_agents else {})}


def _validator() -> Any:
    from jsonschema import Draft202012Validator  # noqa: PLC0415 (heavy: only to judge or explain what the fast check refused)

    return Draft202012Validator(SCHEMA)


#: A valid config passes this without importing jsonschema (~60 ms); anything else is judged,
#: and explained, by jsonschema itself.
_PRECHECK: Final = compile_check(SCHEMA)


def _errors(raw: dict[str, Any]) -> list[Any]:
    from jsonschema.exceptions import relevance  # noqa: PLC0415 (heavy: only to judge or explain what the fast check refused)

    return sorted(_validator().iter_errors(raw), key=relevance, reverse=True)


def parse_config(raw: dict[str, Any], path: Path) -> FleetConfig:
    """Validate `raw` (parsed TOML) and resolve it; `path` is used for messages and relative paths."""
    errors = [] if _PRECHECK(raw) else _errors(raw)
    if errors:
        err = errors[0]
        where = err.json_path
        message = err.message
        if err.validator == "additionalProperties":
            message = f"unknown key ({err.message})"
        elif err.validator == "pattern" and err.path and err.path[-1] == "account":
            message = f"{err.instance!r} is not an account label ({ACCOUNT_RULE})"
        elif err.validator == "propertyNames":
            message = f"{err.message}: agent names are {AGENT_NAME_RULE}"
            where = where if where != "$" else "$.agents"
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        raise ConfigError(
            f"{path}: {where}: {message}{more}.",
            hint="See the configuration reference in the README.",
            path=str(path),
            key=where,
        )
    base = path.parent
    fleet_tbl = raw.get("fleet", {})
    name = fleet_tbl.get("name", "fleet")
    state_dir = _state_dir(fleet_tbl.get("state_dir"), name, base)
    defaults = raw.get("defaults", {})
    configured = fleet_tbl.get("worktrees_dir")
    worktrees = _resolve(configured, base) if configured else state_dir / "worktrees"
    hosts: dict[str, HostSpec] = {}
    remote: dict[str, RemoteAgent] = {}
    if "hosts" in raw or any("host" in tbl for tbl in raw["agents"].values()):
        from .hosts import parse_hosts, remote_agent  # noqa: PLC0415 (a hook process loads the config: only hosts need it)

        hosts = parse_hosts(raw.get("hosts"), path, _resolve)
        remote = {agent_name: remote_agent(agent_name, _merged(defaults, tbl, path, agent_name), hosts, path)
                  for agent_name, tbl in raw["agents"].items() if "host" in tbl}
    agents = {
        agent_name: _agent(agent_name, _merged(defaults, tbl, path, agent_name), path, worktrees,
                           f"$.agents.{agent_name}.budget" if "budget" in tbl else "$.defaults.budget")
        for agent_name, tbl in raw["agents"].items() if agent_name not in remote
    }
    _check_worktrees_dir(agents, worktrees, path, "$.fleet.worktrees_dir" if configured else "$.fleet.state_dir")
    watchdog = parse_policy(raw.get("watchdog"), source=str(path), agents=raw["agents"])
    leads = [a.name for a in agents.values() if a.role == "lead"]
    if watchdog.lead is None and len(leads) == 1:  # the one lead agent gets the escalations
        watchdog = replace(watchdog, lead=leads[0])
    template = fleet_tbl.get("assignment_template")
    return FleetConfig(path=path, name=name, state_dir=state_dir, agents=agents, watchdog=watchdog,
                       assignment_template=_resolve(template, base) if template else None,
                       lead_auto_approve_agent_approvals=bool(
                           raw.get("lead", {}).get("auto_approve_agent_approvals", False)),
                       worktrees_dir=worktrees, store=_store(raw, path, name, state_dir), hosts=hosts,
                       remote_agents=remote)


def _store(raw: dict[str, Any], path: Path, name: str, state_dir: Path) -> StoreSettings | None:
    """`[store]` or `$FLEET_STORE_URL` (`fleet.config.store.STORE_URL_ENV`); its module (urllib) is
    loaded only when either is there, so the hook process of an embedded fleet never loads it."""
    if "store" not in raw and not os.environ.get("FLEET_STORE_URL"):
        return None
    from .store import parse_store  # noqa: PLC0415 (see above)

    return parse_store(raw.get("store"), source=str(path), fleet=name, state_dir=state_dir,
                       state_root=_xdg_home("XDG_STATE_HOME", ".local/state") / "fleet")


def _merged(defaults: dict[str, Any], tbl: dict[str, Any], path: Path, name: str) -> dict[str, Any]:
    """The agent's table over `[defaults]`. `cwd` and `repo` exclude each other within one table; an
    agent's own `cwd` replaces a `repo` from `[defaults]` (and its own `repo` any `cwd`)."""
    if "cwd" in tbl and "repo" in tbl:
        raise ConfigError(f"{path}: $.agents.{name}: `cwd` and `repo` exclude each other.",
                          hint="Give the agent a `repo` (it then works in its own worktree of it) or a `cwd`, "
                               "not both.", path=str(path), key=f"$.agents.{name}")
    merged = {**defaults, **tbl}
    if "cwd" in tbl:
        merged.pop("repo", None)
        if "base" not in tbl:
            merged.pop("base", None)
    if "base" in merged and "repo" not in merged:
        raise ConfigError(f"{path}: $.agents.{name}.base: `base` needs a `repo`.",
                          hint="Set `repo` for the agent (or in [defaults]), or drop `base`.",
                          path=str(path), key=f"$.agents.{name}.base")
    if "cwd" not in merged and "repo" not in merged:
        raise ConfigError(f"{path}: $.agents.{name}: 'cwd' is a required property (or a `repo`, there or in "
                          "[defaults]).",
                          hint="Set `cwd = \"PATH\"` (a directory), or `repo = \"PATH\"` (a git repository; "
                               "also possible in [defaults]).", path=str(path), key=f"$.agents.{name}")
    return merged


def _budget(value: Any, where: str, path: Path) -> int | None:
    """An agent's `budget` (its own, else `[defaults]`: `where` names which), parsed; a bad one names
    its key path."""
    if value is None:
        return None
    try:
        return parse_tokens(value, what="budget")
    except FleetError as exc:
        raise ConfigError(f"{path}: {where}: {exc.message}", hint=exc.hint, path=str(path), key=where) from exc


def _check_worktrees_dir(agents: dict[str, AgentSpec], root: Path, path: Path, key: str) -> None:
    """The worktrees dir lies outside every repository and every plain agent's cwd (which it could
    write). Where sandboxes let agents write beyond their cwd, `up` and doctor check (`exposures`)."""
    if not any(a.repo is not None for a in agents.values()):
        return
    real = os.path.realpath(root)
    for a in agents.values():
        owner = a.repo if a.repo is not None else a.cwd if a.sandbox != "read-only" else None
        if owner is None:
            continue
        other = os.path.realpath(owner)
        if real == other or real.startswith(other.rstrip("/") + "/"):
            what = f"the repository {owner} of agent {a.name}" if a.repo is not None else f"agent {a.name}'s cwd"
            raise ConfigError(f"{path}: {key}: the worktrees dir {root} lies inside {what}.",
                              hint="Set [fleet] worktrees_dir (or the state dir) outside every repository and "
                                   "agent cwd.", path=str(path), key=key)


def _resolve(value: str, base: Path) -> Path:
    p = Path(os.path.expandvars(value)).expanduser()
    return p if p.is_absolute() else (base / p).resolve()


def _state_dir(configured: str | None, name: str, base: Path) -> Path:
    """`[fleet] state_dir`, else `$FLEET_HOME`, else the XDG state dir (`$XDG_STATE_HOME` if absolute,
    else `~/.local/state`) + `fleet/<name>`."""
    if configured:
        return _resolve(configured, base)
    if os.environ.get("FLEET_HOME"):
        return Path(os.environ["FLEET_HOME"]).expanduser().resolve()
    return _xdg_home("XDG_STATE_HOME", ".local/state") / "fleet" / name


def _agent(name: str, tbl: dict[str, Any], path: Path, worktrees: Path, budget_key: str) -> AgentSpec:
    """An agent from its table over `[defaults]` (`_merged`) in the config file `path`; `budget_key`:
    where its budget was set."""
    base = path.parent
    if not re.fullmatch(AGENT_NAME, name):  # the schema checked it; this guards direct callers
        raise ConfigError(f"Bad agent name {name!r}.", hint=f"Agent names are {AGENT_NAME_RULE}.")
    role: Role = tbl.get("role", "explorer")
    repo = _resolve(tbl["repo"], base) if "repo" in tbl else None
    return AgentSpec(
        name=name,
        home=_resolve(tbl["home"], base),
        cwd=worktrees / name if repo is not None else _resolve(tbl["cwd"], base),
        role=role,
        sandbox=tbl.get("sandbox", ROLE_SANDBOX[role]),
        codex=tbl.get("codex", "codex"),
        args=tuple(tbl.get("args", ())),
        env=dict(tbl.get("env", {})),
        model=tbl.get("model"),
        repo=repo,
        base=tbl.get("base") if repo is not None else None,
        account=tbl.get("account"),
        budget=_budget(tbl.get("budget"), budget_key, path),
    )
