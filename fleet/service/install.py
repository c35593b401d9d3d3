"""`fleet install`: put fleet's Codex plugin into a Codex home (or take it out), and say where it is.

The work is `fleet.install.install` (Codex's own `codex plugin ...` commands, idempotent). This
module only picks the Codex home and the Codex binary: the home is `codex_home`, else `$CODEX_HOME`,
else `~/.codex` (the home a plain `codex` uses); the binary is the one the fleet's config names when
every agent names the same one, else `codex` on the PATH. A fleet config is not needed: a user
installs the plugin before writing one.

`fleet up` loads this module (a lead's plugin is ensured at start), and so does every call that
loads the agent handlers; `fleet.install` (filelock, the bundle) loads only where it is used.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Final

from fleet.config import AgentSpec, FleetConfig
from fleet.errors import ConfigNotFound, InstallHomeRefused

from .core import Service

#: `plugin_status` runs three short Codex commands per home; homes are checked side by side.
STATUS_WORKERS: Final = 4


def _config_or_none(svc: Service) -> FleetConfig | None:
    """The fleet's config, or None when there is none to find; a config the caller named must exist."""
    try:
        return svc.config
    except ConfigNotFound:
        if svc.config_path or os.environ.get("FLEET_CONFIG"):
            raise
        return None


def codex_command(config: FleetConfig | None) -> str:
    """The Codex command to run `codex plugin ...` with: the fleet's own when its agents agree on one."""
    commands = {a.codex for a in config.agents.values()} if config else set()
    return commands.pop() if len(commands) == 1 else "codex"


def fleet_install(svc: Service, *, uninstall: bool, codex_home: str | None = None) -> dict[str, Any]:
    """Install (or remove) the plugin in `codex_home`. Over MCP a model names the home, so there it
    must be the server's own Codex home or an agent home of the fleet's config (`mcp_homes`);
    anything else is refused with `install_home_refused` (a person can still use the CLI)."""
    from fleet.install import default_codex_home, install  # noqa: PLC0415 (start-up: see the module docstring)

    config = _config_or_none(svc)
    home = Path(codex_home).expanduser() if codex_home else default_codex_home()
    if svc.surface == "mcp" and codex_home:
        allowed = mcp_homes(config)
        if home.absolute().resolve() not in {h.resolve() for h in allowed}:
            raise InstallHomeRefused(
                f"fleet_install over MCP writes only into this Codex home or an agent home of the fleet, "
                f"not {codex_home!r}.",
                hint="Leave codex_home out (this Codex home), name an agent's home from fleet.toml, or run "
                     "`fleet install --codex-home DIR` yourself.", codex_home=codex_home)
    result = install(home, uninstall, codex=codex_command(config))
    return dict(result)


def ensure_lead_plugin(spec: AgentSpec) -> list[str]:
    """Install fleet's plugin (for its skills) in a lead's Codex home before the lead launches; returns
    the changes made (none for any other role, and none once it is installed).

    Called by the service between `prepare` (which creates the home) and the launch, for `up` and for
    the watchdog's restart. Raises the `fleet.install` errors (CodexMissing, PluginCommandFailed, ...)
    so that a start fails before anything is launched.
    """
    if spec.role != "lead":
        return []
    from fleet.install import install  # noqa: PLC0415 (start-up: see the module docstring)

    return list(install(spec.home, codex=spec.codex)["changes"])


def mcp_homes(config: FleetConfig | None) -> list[Path]:
    """The homes `fleet_install` may write over MCP: the default Codex home and the config's agent homes."""
    from fleet.install import default_codex_home  # noqa: PLC0415 (start-up: see the module docstring)

    homes = [default_codex_home(), *(a.home for a in config.agents.values())] if config else [default_codex_home()]
    return [h.expanduser().absolute() for h in homes]


def plugin_homes(config: FleetConfig | None) -> list[Path]:
    """The homes `fleet doctor` checks: the default Codex home, then each agent home that exists
    (a home that was never created cannot have the plugin, and Codex refuses it anyway)."""
    from fleet.install import default_codex_home  # noqa: PLC0415 (start-up: see the module docstring)

    homes = [default_codex_home()]
    if config is not None:
        homes += [a.home for a in config.agents.values() if a.home.is_dir()]
    return list(dict.fromkeys(h.expanduser().absolute() for h in homes))


def plugin_check(config: FleetConfig | None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Doctor's plugin line (always ok: the plugin is optional) and the per-home statuses; `config` is
    the fleet's, or None when doctor could not load it (reported on doctor's config line)."""
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415 (~4 ms with logging: only when needed)

    from fleet.install import plugin_status  # noqa: PLC0415 (start-up: see the module docstring)

    homes = plugin_homes(config)
    codex = codex_command(config)
    with ThreadPoolExecutor(max_workers=STATUS_WORKERS) as pool:  # plugin_status never raises for a home
        statuses = [s for batch in pool.map(lambda h: plugin_status([h], codex=codex), homes) for s in batch]
    installed = [s["codex_home"] + ("" if s["current"] else f" (version {s['version']}, not current)")
                 for s in statuses if s["installed"]]
    missing = [s["codex_home"] for s in statuses if not s["installed"] and not s["error"]]
    errors = [f"{s['codex_home']}: {s['error']}" for s in statuses if s["error"]]
    parts = [f"installed in {', '.join(installed)}" if installed else "not installed in any checked home"]
    if missing:
        parts.append(f"not in {', '.join(missing)}")
    if errors:
        parts.append(f"unchecked: {'; '.join(errors)}")
    detail = "; ".join(parts) + ("" if installed else " (run `fleet install` to add it to your Codex)")
    return {"name": "codex plugin", "ok": True, "detail": detail, "hint": ""}, [dict(s) for s in statuses]
