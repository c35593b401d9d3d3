"""`fleet install`: add fleet's Codex plugin to a Codex home (or take it out) with Codex's own commands.

Install, for one home:
1. render the plugin into fleet's data dir (`$XDG_DATA_HOME/fleet/codex-marketplace`, default
   `~/.local/share/fleet/codex-marketplace`): real files, `.mcp.json` pointing at this fleet;
2. `codex plugin marketplace add DIR` unless the `fleet` marketplace already points there (one that
   points elsewhere, e.g. an older checkout, is removed first: Codex refuses to re-point a name);
3. `codex plugin add fleet@fleet` unless Codex already has this exact copy installed and enabled
   (it compares the rendered tree with Codex's cached copy, so a second run changes nothing);
4. `codex plugin list` to check that it took effect (when nothing changed, step 3's list already did).

Uninstall: `codex plugin remove fleet@fleet`, then `codex plugin marketplace remove fleet` (in that
order: removing only the marketplace leaves the plugin enabled in config.toml and in Codex's cache).
The rendered folder stays: other Codex homes may use it, and it is a few KB.

Idempotent: a second call with nothing to do runs only the list commands and reports no change.
Concurrent calls are serialised by a lock file next to the rendered folder.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final, Literal, TypedDict

from filelock import FileLock
from platformdirs import user_data_dir

from fleet import __version__
from fleet.agents.codex import resolve_binary
from fleet.errors import FleetError, PluginCommandFailed
from fleet.install.bundle import (
    MARKETPLACE_NAME,
    PLUGIN_ID,
    PLUGIN_NAME,
    plugin_source,
    plugin_version,
    read_template,
    read_tree,
    render,
    server_argv,
    write_marketplace,
)
from fleet.install.codexcli import CodexPlugins

#: The rendered marketplace's folder name under fleet's data dir.
MARKETPLACE_DIRNAME: Final = "codex-marketplace"
#: Waiting this long for another `fleet install` means that one is stuck.
LOCK_TIMEOUT: Final = 120.0


class InstallResult(TypedDict):
    """What `install` did to one Codex home. `changes` lists the steps taken, in order, from:
    `rendered` (the plugin folder was written or updated), `marketplace_removed`,
    `marketplace_added`, `plugin_installed`, `plugin_updated` (a different version or content),
    `plugin_enabled` (it was disabled), `plugin_removed`. Empty when nothing needed doing."""

    codex_home: str
    action: Literal["install", "uninstall"]
    plugin: str
    version: str
    installed: bool  # after the call
    changed: bool
    changes: list[str]
    marketplace_dir: str
    mcp_command: list[str]


class HomeStatus(TypedDict):
    """Whether fleet's plugin is installed in one Codex home, as `codex plugin list` says.

    `current`: the installed version is this fleet's (`fleet.__version__`, which the manifest
    matches). `plugins_feature`: whether that home loads plugins at all (Codex's `plugins` feature;
    None when unknown). `error`: why the home could not be checked (then the other fields say "not
    installed")."""

    codex_home: str
    installed: bool
    enabled: bool
    version: str | None
    current: bool
    plugins_feature: bool | None
    marketplace_root: str | None
    error: str | None


def default_codex_home() -> Path:
    """The Codex home a plain `codex` uses: `$CODEX_HOME`, else `~/.codex`."""
    return Path(os.environ.get("CODEX_HOME") or Path.home() / ".codex").expanduser()


def default_marketplace_dir() -> Path:
    return Path(user_data_dir("fleet", appauthor=False)) / MARKETPLACE_DIRNAME


def _codex(codex: str) -> Path:
    return resolve_binary(codex)


def install(codex_home: Path, uninstall: bool = False, *, codex: str = "codex",
            marketplace_dir: Path | None = None) -> InstallResult:
    """Install (or with `uninstall`, remove) fleet's Codex plugin in `codex_home`; see the module doc.

    `codex` is the Codex command or path (the npm launcher is replaced by its native binary).
    Raises CodexHomeMissing, CodexMissing, PluginBundleMissing or PluginCommandFailed; a failure
    part-way leaves whatever Codex's own commands had done, and running `install` again completes it.
    """
    home = codex_home.expanduser().absolute()
    dest = (marketplace_dir or default_marketplace_dir()).expanduser().absolute()
    cli = CodexPlugins(_codex(codex), home)
    template = render(read_template(plugin_source()), server_argv())
    version = plugin_version(template)
    dest.parent.mkdir(parents=True, exist_ok=True)
    changes: list[str] = []
    with FileLock(str(dest.with_name(f".{dest.name}.lock")), timeout=LOCK_TIMEOUT):
        if uninstall:
            _uninstall(cli, changes)
            installed = cli.installed().get(PLUGIN_ID)
        else:
            listed = _install(cli, dest, template, version, changes)
            installed = cli.installed().get(PLUGIN_ID) if changes else listed
    ok = installed is not None and bool(installed.get("enabled")) and installed.get("version") == version
    if ok == uninstall:
        state = "still installed" if uninstall else "not installed and enabled at version " + version
        raise PluginCommandFailed(
            f"Codex's commands ran, but `codex plugin list` for {home} shows {PLUGIN_ID} {state}.",
            hint=f"Run `CODEX_HOME={home} codex plugin list` to see what Codex sees.", codex_home=str(home))
    return InstallResult(codex_home=str(home), action="uninstall" if uninstall else "install", plugin=PLUGIN_ID,
                         version=version, installed=ok, changed=bool(changes), changes=changes,
                         marketplace_dir=str(dest), mcp_command=server_argv())


def _install(cli: CodexPlugins, dest: Path, template: dict[str, bytes], version: str,
             changes: list[str]) -> dict[str, Any] | None:
    """Do what is missing, appending each step to `changes`; return the plugin's record as `codex plugin
    list` showed it before any plugin step (the installed state itself when `changes` stays empty)."""
    if write_marketplace(dest, template):
        changes.append("rendered")
    root = cli.marketplaces().get(MARKETPLACE_NAME)
    if root is not None and root.resolve() != dest.resolve():
        cli.remove_marketplace(MARKETPLACE_NAME)
        changes.append("marketplace_removed")
        root = None
    if root is None:
        cli.add_marketplace(dest)
        changes.append("marketplace_added")
    current = cli.installed().get(PLUGIN_ID)
    if current is None:
        cli.add_plugin(PLUGIN_ID)
        changes.append("plugin_installed")
        return None
    same = (current.get("version") == version
            and read_tree(cli.cache_dir(MARKETPLACE_NAME, PLUGIN_NAME, version)) == template)
    if not same:
        cli.add_plugin(PLUGIN_ID)
        changes.append("plugin_updated")
    elif not current.get("enabled"):
        cli.add_plugin(PLUGIN_ID)  # measured: `plugin add` sets `enabled = true` again
        changes.append("plugin_enabled")
    return current


def _uninstall(cli: CodexPlugins, changes: list[str]) -> None:
    if PLUGIN_ID in cli.installed():
        cli.remove_plugin(PLUGIN_ID)
        changes.append("plugin_removed")
    if MARKETPLACE_NAME in cli.marketplaces():
        cli.remove_marketplace(MARKETPLACE_NAME)
        changes.append("marketplace_removed")


def plugin_status(codex_homes: Iterable[Path], *, codex: str = "codex") -> list[HomeStatus]:
    """Whether fleet's plugin is installed in each home (for `fleet doctor`); never raises for a home.

    Runs `codex plugin list`, `codex plugin marketplace list` and `codex features list` per home.
    """
    out: list[HomeStatus] = []
    binary: Path | None = None
    for raw in dict.fromkeys(Path(h).expanduser().absolute() for h in codex_homes):
        status = HomeStatus(codex_home=str(raw), installed=False, enabled=False, version=None, current=False,
                            plugins_feature=None, marketplace_root=None, error=None)
        try:
            binary = binary or _codex(codex)
            cli = CodexPlugins(binary, raw)
            record = cli.installed().get(PLUGIN_ID)
            root = cli.marketplaces().get(MARKETPLACE_NAME)
            status["marketplace_root"] = str(root) if root else None
            status["plugins_feature"] = cli.features_plugins()
            if record is not None:
                status["installed"] = True
                status["enabled"] = bool(record.get("enabled"))
                status["version"] = str(record.get("version"))
                status["current"] = status["version"] == __version__
        except FleetError as exc:
            status["error"] = exc.message
        out.append(status)
    return out
