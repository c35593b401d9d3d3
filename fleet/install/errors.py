"""Errors of `fleet install`: `FleetError`s like every other, so each surface maps them as usual."""

from __future__ import annotations

from fleet.errors import EnvironmentFault


class PluginBundleMissing(EnvironmentFault):
    """The plugin files are not beside the package (a broken install or a wheel without its package data)."""

    code = "plugin_bundle_missing"


class CodexHomeMissing(EnvironmentFault):
    """Codex refuses a `CODEX_HOME` that does not exist; so does fleet, rather than invent one."""

    code = "codex_home_missing"


class PluginCommandFailed(EnvironmentFault):
    """A `codex plugin ...` command failed, timed out, printed no JSON, or did not take effect."""

    code = "codex_plugin_failed"
