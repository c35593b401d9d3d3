"""`fleet.toml`: found, parsed, validated against one JSON Schema, resolved into frozen records.

Lookup: `--config PATH`, else `$FLEET_CONFIG`, else `./fleet.toml`. Every error names the file and the
key path (`$.agents.mila.cwd`). Paths may use `~` and are resolved relative to the config file's
directory. Loading never touches tmux, Codex or the state dir.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from .errors import ConfigError, ConfigNotFound, UnknownAgent
from .schemacheck import compile_check

#: Agent names become tmux session names and file names: keep them short, lowercase and shell-safe.
AGENT_NAME: Final = r"^[a-z][a-z0-9-]{0,31}$"
#: Holder names go into audit records and error messages: printable, short, no spaces.
HOLDER_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._:@+/-]{0,63}$"
#: Fleet names name the tmux socket and the default state dir.
FLEET_NAME: Final = r"^[a-z][a-z0-9-]{0,31}$"
MAX_AGENTS: Final = 100

Role = Literal["explorer", "worker"]
Sandbox = Literal["read-only", "workspace-write", "danger-full-access"]
ROLE_SANDBOX: Final[dict[str, Sandbox]] = {"explorer": "read-only", "worker": "workspace-write"}

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
    "role": {"enum": ["explorer", "worker"]},
    "sandbox": {"enum": ["read-only", "workspace-write", "danger-full-access"]},
    "model": {"type": "string", "minLength": 1, "maxLength": 200},
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
            "properties": {"name": {"type": "string", "pattern": FLEET_NAME}, "state_dir": _STR},
        },
        "defaults": {"type": "object", "additionalProperties": False, "properties": _AGENT_KEYS},
        "agents": {
            "type": "object",
            "minProperties": 1,
            "maxProperties": MAX_AGENTS,
            "propertyNames": {"pattern": AGENT_NAME},
            "additionalProperties": {
                "type": "object",
                "additionalProperties": False,
                "required": ["home", "cwd"],
                "properties": {"home": _STR, "cwd": _STR, **_AGENT_KEYS},
            },
        },
    },
}


@dataclass(frozen=True)
class AgentSpec:
    """One configured agent. `home` is its CODEX_HOME; `cwd` must exist when it starts."""

    name: str
    home: Path
    cwd: Path
    role: Role
    sandbox: Sandbox
    codex: str
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    model: str | None = None


@dataclass(frozen=True)
class FleetConfig:
    path: Path
    name: str
    state_dir: Path
    agents: dict[str, AgentSpec]

    def agent(self, name: str) -> AgentSpec:
        try:
            return self.agents[name]
        except KeyError:
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


def find_config(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The config path by precedence; raises ConfigNotFound naming where it looked."""
    if explicit:
        path, source = Path(explicit), "--config"
    elif os.environ.get("FLEET_CONFIG"):
        path, source = Path(os.environ["FLEET_CONFIG"]), "$FLEET_CONFIG"
    else:
        path, source = Path("fleet.toml"), "the current directory"
    path = path.expanduser()
    if not path.is_file():
        raise ConfigNotFound(
            f"No fleet config at {path} (from {source}).",
            hint="Create a fleet.toml (see README, 'Configuration'), or pass --config PATH / set $FLEET_CONFIG.",
        )
    return path.resolve()


def load_config(explicit: str | os.PathLike[str] | None = None) -> FleetConfig:
    path = find_config(explicit)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}.", hint="Fix the syntax at the line shown.") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read: {exc}.", hint="Check the file's permissions.") from exc
    return parse_config(raw, path)


def _validator() -> Any:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(SCHEMA)


#: A valid config passes this without importing jsonschema (~60 ms); anything else is judged,
#: and explained, by jsonschema itself.
_PRECHECK: Final = compile_check(SCHEMA)


def _errors(raw: dict[str, Any]) -> list[Any]:
    from jsonschema.exceptions import relevance

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
        elif err.validator == "propertyNames":
            message = f"{err.message}: agent names must match {AGENT_NAME}"
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
    agents = {
        agent_name: _agent(agent_name, {**defaults, **tbl}, base) for agent_name, tbl in raw["agents"].items()
    }
    return FleetConfig(path=path, name=name, state_dir=state_dir, agents=agents)


def _resolve(value: str, base: Path) -> Path:
    p = Path(os.path.expandvars(value)).expanduser()
    return p if p.is_absolute() else (base / p).resolve()


def _state_dir(configured: str | None, name: str, base: Path) -> Path:
    """`[fleet] state_dir`, else `$FLEET_HOME`, else the XDG state dir (platformdirs: `$XDG_STATE_HOME`
    if absolute, else `~/.local/state`) + `fleet/<name>`."""
    if configured:
        return _resolve(configured, base)
    if os.environ.get("FLEET_HOME"):
        return Path(os.environ["FLEET_HOME"]).expanduser().resolve()
    from platformdirs import user_state_path  # ~5 ms; only when nothing above names the dir

    return user_state_path("fleet", appauthor=False) / name


def _agent(name: str, tbl: dict[str, Any], base: Path) -> AgentSpec:
    if not re.fullmatch(AGENT_NAME, name):  # the schema checked it; this guards direct callers
        raise ConfigError(f"Bad agent name {name!r}.", hint=f"Agent names must match {AGENT_NAME}.")
    role: Role = tbl.get("role", "explorer")
    return AgentSpec(
        name=name,
        home=_resolve(tbl["home"], base),
        cwd=_resolve(tbl["cwd"], base),
        role=role,
        sandbox=tbl.get("sandbox", ROLE_SANDBOX[role]),
        codex=tbl.get("codex", "codex"),
        args=tuple(tbl.get("args", ())),
        env=dict(tbl.get("env", {})),
        model=tbl.get("model"),
    )
