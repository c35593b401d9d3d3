"""Which agents can reach the fleet's tmux server, and what they could do to its socket.

Every agent runs as the user, so whoever can `connect(2)` to the server's socket can drive it:
`send-keys` into any agent (the lead included) or `run-shell` outside every sandbox. Under Codex's
default sandboxes its seccomp filter refuses `connect(2)`; it is off with `danger-full-access`, with
`sandbox_workspace_write.network_access = true`, and for every command a person (or fleet's approve
policy) lets run outside the sandbox. An agent that can write the socket's directory can also
delete or replace the socket, connect or not. This module names both; it changes nothing. Pure
except for reading the agent's home `config.toml` and the environment.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Final

from fleet.config import AgentSpec

from .codex import effective_sandbox, flag_values

#: Flags that pick settings fleet does not read (profiles): it cannot say the network is off.
_UNREAD_FLAGS: Final = ("-p", "--profile", "-P", "--permission-profile")


def _overrides(args: Sequence[str]) -> dict[str, str]:
    """The `-c key=value` pairs in an agent's extra arguments, in every spelling Codex takes (`-c V`,
    `-cV`, `--config V`, `--config=V`); the last one for a key wins."""
    out: dict[str, str] = {}
    for item in flag_values(args, "--config", "-c"):
        if "=" in item:
            key, raw = item.split("=", 1)
            out[key.strip()] = raw.strip()
    return out


def connect_reason(spec: AgentSpec, user: dict[str, Any]) -> str | None:
    """Why this agent's own commands can connect to a unix socket, or None when Codex's sandbox
    refuses it (approved commands aside). `user`: the agent home's parsed `config.toml`. Settings
    fleet cannot read (a profile) count as network access: it never says "unreachable" unsure."""
    args = list(spec.args)
    mode = effective_sandbox(spec)
    if mode == "danger-full-access":
        return "it runs with danger-full-access (no sandbox)"
    if any(a in _UNREAD_FLAGS or a.split("=", 1)[0] in _UNREAD_FLAGS for a in args):
        return "its Codex profile may give it network access (fleet does not read profiles)"
    if mode != "workspace-write":
        return None
    over = _overrides(args)
    flag = over.get("sandbox_workspace_write.network_access")
    table = over.get("sandbox_workspace_write", "")
    if flag is not None:
        on = flag.lower() == "true"
    elif "network_access" in table:
        on = "network_access=true" in table.replace(" ", "").lower()
    else:
        section = user.get("sandbox_workspace_write")
        on = isinstance(section, dict) and section.get("network_access") is True
    return "it has sandbox_workspace_write.network_access = true" if on else None


def writable_roots(spec: AgentSpec) -> list[Path]:
    """Where this agent's sandbox lets it write (`fleet.agents.writable`, the one reading of the
    agent's sandbox settings): `/` under full access."""
    from .writable import agent_roots  # noqa: PLC0415 (~4 ms with the trust store's hashlib: every `status` loads this module)

    roots = agent_roots(spec)
    return [Path("/")] if roots.full_access else list(roots.roots)


def _inside(path: Path, root: Path) -> bool:
    try:
        return path.resolve().is_relative_to(root.resolve())
    except OSError:
        return True  # unsure: say so


def exposure(specs: Iterable[AgentSpec], socket: Path, users: dict[str, dict[str, Any]],
             fix: str = "point TMUX_TMPDIR outside every agent's writable roots") -> list[str]:
    """One plain sentence per way an agent can reach the fleet's tmux server through `socket`.
    `users`: each agent's parsed home `config.toml`, by agent name; `fix`: how to move the socket."""
    out = []
    for spec in specs:
        reason = connect_reason(spec, users.get(spec.name, {}))
        if reason is not None:
            out.append(f"Agent {spec.name!r} can connect to the fleet's tmux server ({reason}): its commands "
                       "could type into any agent, the lead included, or run commands outside every sandbox.")
        elif spec.sandbox != "danger-full-access":
            root = next((r for r in writable_roots(spec) if _inside(socket.parent, r)), None)
            if root is not None:
                out.append(f"Agent {spec.name!r} can write {root}, where the fleet's tmux socket is ({socket}): "
                           f"it could delete or replace it: {fix}.")
    return out


def project_config_writers(spec: AgentSpec, others: Iterable[AgentSpec]) -> list[str]:
    """The other agents that can write `spec`'s `<cwd>/.codex/`, which Codex loads because fleet
    trusts the cwd. Codex's sandbox keeps `.codex` read-only at the top of each writable root only,
    so an agent can write it when `spec`'s cwd lies strictly inside one of its writable roots (a
    nested cwd, or any cwd under `/tmp`). Only checked when `.codex` exists: an agent that makes one
    later is caught by the next start or restart, which checks again."""
    project = spec.cwd / ".codex"
    if not os.path.lexists(project):
        return []
    out = []
    for other in others:
        if other.name == spec.name:
            continue
        # a root that is the cwd itself has its top-level .codex kept read-only by Codex
        if any(_inside(project, r) and r.resolve() != spec.cwd.resolve() for r in writable_roots(other)):
            out.append(other.name)
    return out
