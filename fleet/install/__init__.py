"""Install fleet's Codex plugin (the MCP server and the fleet-lead / fleet-report skills) into Codex homes.

Everything goes through Codex's own `codex plugin ...` commands; fleet never edits Codex's config files.
The plugin's source is the top-level `plugin/` and `skills/` folders of the repository (reached through the
symlinks `fleet/install/plugin` and `fleet/install/skills`, real files in a wheel); `install` renders
them into fleet's data dir and installs from there.
"""

from __future__ import annotations

from fleet.errors import CodexHomeMissing, PluginBundleMissing, PluginCommandFailed
from fleet.install.bundle import (
    MARKETPLACE_NAME,
    PLUGIN_ID,
    PLUGIN_NAME,
    PluginSource,
    plugin_source,
    read_template,
    render,
    server_argv,
    write_marketplace,
)
from fleet.install.installer import (
    HomeStatus,
    InstallResult,
    default_codex_home,
    default_marketplace_dir,
    install,
    plugin_status,
)

__all__ = [
    "MARKETPLACE_NAME",
    "PLUGIN_ID",
    "PLUGIN_NAME",
    "CodexHomeMissing",
    "HomeStatus",
    "InstallResult",
    "PluginBundleMissing",
    "PluginCommandFailed",
    "PluginSource",
    "default_codex_home",
    "default_marketplace_dir",
    "install",
    "plugin_source",
    "plugin_status",
    "read_template",
    "render",
    "server_argv",
    "write_marketplace",
]
