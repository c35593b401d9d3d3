"""What makes a `role = "lead"` agent a lead: fleet's MCP tools, the fleet-lead skill, its own holder.

A lead plans and hands out work; it writes nothing itself (read-only sandbox by default, and routing
never gives it an assignment). At launch it gets, as `-c` overrides (Codex 0.169):

- `mcp_servers.fleet`: this Python running `-P -m fleet --config <abs config> mcp`, with
  `default_tools_approval_mode = "approve"`, because a lead that must ask a person before each
  `assignment_create` is not a lead (and under approval policy `never` an unapproved MCP call is
  refused outright). Codex passes a server only a handful of variables (HOME, PATH, ...), so the ones
  fleet resolves paths with go in `env` by value: `FLEET_HOLDER=agent:<name>` (the lead's holder
  identity in leases, the ledger and the audit log), `FLEET_HOME` = the fleet's resolved state dir,
  `TMUX_TMPDIR` when set (where the fleet's tmux socket is), and `XDG_STATE_HOME` when set (the shared
  store's host name depends on whether the state dir is the default one, `fleet.config.store`). The
  shared store's credentials (`$FLEET_STORE_URL`, `$PGPASSWORD`: `STORE_SECRET_ENV`) never go there
  by value, where any local user's `ps` would show them: the table names them in `env_vars`, and
  Codex passes them on from its own environment, which keeps them for a lead alone
  (`fleet.agents.codex.launch_command`).
- `shell_environment_policy.exclude`: the home's own list plus `STORE_SECRET_ENV`, so the lead's
  shell commands (its model reads workers' reports) never see those credentials. A server of that name in the home's
  config or from the installed plugin is replaced by this one (measured), so there is one
  `mcp__fleet` namespace.
- in that table, `tools.<name>.approval_mode = "prompt"` for each of `GATED_TOOLS`, which act
  outside every sandbox or cannot be undone: `agent_approve` lets a worker's command run
  unsandboxed, `fleet_install` writes into a Codex home, `worktree_prune` deletes worktrees and
  branches (with `force`, unmerged work). A worker that talks the lead's model into calling one must still get
  past a person (Codex 0.169 shows an approval in the lead's pane; under approval policy `never` it
  refuses the call), unless the user opted in with `[lead] auto_approve_agent_approvals = true`
  (for `agent_approve` only).
- `features.plugins = true`, ahead of the agent's own `args` (which can still turn it off): the
  skills reach the lead through fleet's Codex plugin, which the service layer installs in the lead's
  home with Codex's own commands before the launch (`fleet.service.install.ensure_lead_plugin`).
  The model then sees `fleet:fleet-lead` and `fleet:fleet-report` in its skills list. Codex has no
  `-c` key that adds a skill folder (0.169: `skills.config` only toggles skills it already found),
  and the plugin is how Codex loads skills it does not find in the home or the project.

`overrides` reads the home's `config.toml` and is otherwise pure (given `environ`); nothing here runs a
program or installs anything.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from fleet.config import AgentSpec
from fleet.vocab import STORE_SECRET_ENV

from .codex import _toml, user_config

#: The MCP server's name in the lead's Codex: its tools are the namespace `mcp__fleet`, as with the plugin.
SERVER_NAME: Final = "fleet"
#: Fleet's tools run without asking in a lead, `GATED_TOOLS` aside: it exists to call them.
APPROVAL_MODE: Final = "approve"
#: Tools that act outside every sandbox or cannot be undone: Codex asks a person before a lead's
#: model may call them.
GATED_TOOLS: Final = ("agent_approve", "fleet_install", "worktree_prune")
#: Codex 0.169's per-tool MCP approval mode that shows an approval (`auto`, `prompt`, `writes`, `approve`).
GATED_MODE: Final = "prompt"
#: Variables forwarded by value when set in fleet's environment (the server sees nothing else of it).
FORWARDED_ENV: Final = ("TMUX_TMPDIR", "XDG_STATE_HOME")


def holder(agent: str) -> str:
    """The lease holder a lead agent acts as."""
    return f"agent:{agent}"


def gated_tools(*, auto_approve_agent_approvals: bool = False) -> dict[str, dict[str, str]]:
    """The `tools` table of the lead's fleet server: each gated tool asks a person."""
    return {name: {"approval_mode": GATED_MODE} for name in GATED_TOOLS
            if not (auto_approve_agent_approvals and name == "agent_approve")}


def server_table(spec: AgentSpec, config_path: Path, state_dir: Path,
                 environ: dict[str, str] | None = None, *,
                 auto_approve_agent_approvals: bool = False) -> dict[str, object]:
    """The `[mcp_servers.fleet]` table for this lead. Pure given `environ` (default: os.environ)."""
    env_src = os.environ if environ is None else environ
    env = {"FLEET_HOLDER": holder(spec.name), "FLEET_HOME": str(state_dir)}
    env.update({k: env_src[k] for k in FORWARDED_ENV if env_src.get(k)})
    by_name = [k for k in STORE_SECRET_ENV if env_src.get(k)]
    return {
        "command": sys.executable,
        "args": ["-P", "-m", "fleet", "--config", str(config_path.absolute()), "mcp"],  # -P: not from the cwd
        "env": env,
        **({"env_vars": by_name} if by_name else {}),
        "default_tools_approval_mode": APPROVAL_MODE,
        "tools": gated_tools(auto_approve_agent_approvals=auto_approve_agent_approvals),
    }


def overrides(spec: AgentSpec, config_path: Path, state_dir: Path,
              environ: dict[str, str] | None = None, *, auto_approve_agent_approvals: bool = False) -> list[str]:
    """The `-c` values (without the `-c`) a lead launches with; empty for any other role."""
    if spec.role != "lead":
        return []
    table = server_table(spec, config_path, state_dir, environ,
                         auto_approve_agent_approvals=auto_approve_agent_approvals)
    return [f"mcp_servers.{SERVER_NAME}={_toml(table)}", "features.plugins=true",
            f"shell_environment_policy.exclude={_toml(shell_exclude(user_config(spec.home)))}"]


def shell_exclude(home_config: Mapping[str, Any]) -> list[str]:
    """The home's `shell_environment_policy.exclude` patterns (strings only) with `STORE_SECRET_ENV` added."""
    policy = home_config.get("shell_environment_policy")
    own = policy.get("exclude") if isinstance(policy, dict) else None
    kept = [p for p in own if isinstance(p, str)] if isinstance(own, list) else []
    return [*kept, *(k for k in STORE_SECRET_ENV if k not in kept)]

