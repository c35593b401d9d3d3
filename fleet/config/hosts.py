"""The `[hosts.NAME]` tables of fleet.toml and the agents that run on them (`[agents.x] host = "NAME"`).

A host is reached with the system `ssh` (`fleet.hosts.channel`). Its keys: `ssh` (the destination,
`user@host`), optional `port`, `identity` (`ssh -i`), `ssh_config` (`ssh -F`), `fleet` (the remote fleet
command) and `config` (the remote fleet.toml). `identity` and `ssh_config` are files on this machine and
resolve like every other path of the config; `fleet` and `config` are words for the remote, kept as given.

An agent with a `host` is a remote agent: its paths are paths on that host and are kept as written, its
own host's fleet.toml defines it (under the same name), and what fleet does with it runs there
(`fleet.service.hosts`): the local parts of fleet never see it (`FleetConfig.agents` holds local agents
only), so nothing here can start, stop or route to it by mistake.
Every error names the key path (`$.hosts.gpu1.port`).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from fleet.errors import ConfigError
from fleet.vocab import HOST_NAME, HOST_NAME_RULE

#: Most hosts one config may name.
MAX_HOSTS: Final = 64
#: An ssh destination: `[user@]host`, no option-like start, no spaces or control characters.
_DESTINATION: Final = re.compile(r"[A-Za-z0-9_.@%:\[\]-]{1,255}")
_KEYS: Final = frozenset({"ssh", "port", "identity", "ssh_config", "fleet", "config"})


@dataclass(frozen=True)
class HostSpec:
    """One `[hosts.NAME]` table."""

    name: str
    ssh: str
    port: int | None = None
    identity: Path | None = None
    ssh_config: Path | None = None
    #: The remote fleet command: a path or a name on the remote PATH (one word, or words to split).
    fleet: str = "fleet"
    #: The remote fleet.toml (a path on the host; `~/` is the remote home), else the remote's own lookup.
    config: str | None = None


@dataclass(frozen=True)
class RemoteAgent:
    """An agent of `host`: what the local config says about it (paths as written, on the host)."""

    name: str
    host: str
    role: str
    sandbox: str | None
    home: str
    cwd: str | None
    repo: str | None


def _fail(path: Path, key: str, message: str, hint: str) -> ConfigError:
    return ConfigError(f"{path}: {key}: {message}.", hint=hint, path=str(path), key=key)


def _string(value: Any, path: Path, key: str, most: int = 4096) -> str:
    if not isinstance(value, str) or not value or len(value) > most or any(ord(c) < 32 or c == "\x7f" for c in value):
        raise _fail(path, key, f"{value!r} is not a non-empty string of at most {most} printable characters",
                    "See the README, 'Remote hosts'.")
    return value


def parse_host(name: str, tbl: Any, path: Path, resolve: Callable[[str, Path], Path]) -> HostSpec:
    """One `[hosts.NAME]` table; `resolve` makes its local paths absolute as the config's own are."""
    where = f"$.hosts.{name}"
    if not re.fullmatch(HOST_NAME, name):
        raise _fail(path, where, f"{name!r} is not a valid host name", f"Host names are {HOST_NAME_RULE}.")
    if not isinstance(tbl, dict):
        raise _fail(path, where, "not a table", 'Write `[hosts.NAME]` with at least `ssh = "user@host"`.')
    unknown = sorted(set(tbl) - _KEYS)
    if unknown:
        raise _fail(path, where, f"unknown key(s) {', '.join(unknown)}",
                    f"A host takes {', '.join(sorted(_KEYS))}.")
    if "ssh" not in tbl:
        raise _fail(path, where, "'ssh' is a required property", 'Set `ssh = "user@host"` (the ssh destination).')
    ssh = _string(tbl["ssh"], path, f"{where}.ssh", 255)
    if ssh.startswith("-") or not _DESTINATION.fullmatch(ssh):
        raise _fail(path, f"{where}.ssh", f"{ssh!r} is not an ssh destination",
                    "Give `user@host` or `host` (letters, digits and . _ - @ : only, not starting with -).")
    port = tbl.get("port")
    if port is not None and (type(port) is not int or not 1 <= port <= 65535):
        raise _fail(path, f"{where}.port", f"{port!r} is not a port (1..65535)", "Give a whole number, e.g. 22.")
    base = path.parent
    identity = tbl.get("identity")
    ssh_config = tbl.get("ssh_config")
    fleet = _string(tbl.get("fleet", "fleet"), path, f"{where}.fleet")
    try:
        words = shlex.split(fleet)
    except ValueError as exc:
        words, why = [], str(exc)
    else:
        why = "no command"
    if not words:
        raise _fail(path, f"{where}.fleet", f"{fleet!r} is not a command ({why})",
                    'Give the remote fleet command, e.g. "fleet" or "/opt/fleet/bin/fleet"; quote like a shell.')
    config = tbl.get("config")
    return HostSpec(
        name=name, ssh=ssh, port=port,
        identity=resolve(_string(identity, path, f"{where}.identity"), base) if identity is not None else None,
        ssh_config=resolve(_string(ssh_config, path, f"{where}.ssh_config"), base)
        if ssh_config is not None else None,
        fleet=fleet, config=_string(config, path, f"{where}.config") if config is not None else None)


def parse_hosts(raw: Any, path: Path, resolve: Callable[[str, Path], Path]) -> dict[str, HostSpec]:
    """The `[hosts]` table (absent: none). `resolve(value, dir)`: the config's path resolution
    (`fleet.config`, which imports this module, so it is handed in)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise _fail(path, "$.hosts", "not a table", "Write one `[hosts.NAME]` table per host.")
    if len(raw) > MAX_HOSTS:
        raise _fail(path, "$.hosts", f"{len(raw)} hosts, more than {MAX_HOSTS}", "Split the fleet.")
    return {name: parse_host(name, tbl, path, resolve) for name, tbl in raw.items()}


def remote_agent(name: str, tbl: dict[str, Any], hosts: dict[str, HostSpec], path: Path) -> RemoteAgent:
    """The agent `name` of `tbl` (merged over `[defaults]`, with its `host`), checked against `hosts`."""
    host = tbl["host"]
    if host not in hosts:
        known = ", ".join(sorted(hosts)) or "none"
        raise _fail(path, f"$.agents.{name}.host", f"no host named {host!r}",
                    f"Configured hosts: {known}. Add a `[hosts.{host}]` table or fix the name.")
    role = str(tbl.get("role", "explorer"))
    return RemoteAgent(name=name, host=host, role=role, sandbox=tbl.get("sandbox"), home=str(tbl["home"]),
                       cwd=tbl.get("cwd"), repo=tbl.get("repo"))
