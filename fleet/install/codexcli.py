"""Codex's own plugin commands, run for one Codex home: the only place fleet runs `codex plugin ...`.

fleet never edits a Codex config file; installing, listing and removing go through these commands,
each with `--json` (measured on Codex 0.169). Every command runs with `CODEX_HOME` set to the home and
`-c features.plugins=true`, so it works even where the user turned plugins off (whether the home
loads plugins is reported separately, by `features_plugins`). These commands make no network
connection (measured in a loopback-only namespace with listeners on 80/443).
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from fleet.errors import CodexHomeMissing, PluginCommandFailed

#: Each command edits one small TOML file and copies a few KB; a minute means something is wrong.
COMMAND_TIMEOUT: Final = 60.0
#: Lines of stderr kept in an error (Codex prints a stack backtrace after the message).
STDERR_LINES: Final = 6
_OVERRIDES: Final = ("-c", "features.plugins=true")


@dataclass(frozen=True)
class CodexPlugins:
    """`codex plugin ...` for one home. `codex` is the native binary (see `fleet.agents.codex.resolve_binary`)."""

    codex: Path
    home: Path
    timeout: float = COMMAND_TIMEOUT

    def _run(self, *args: str, overrides: tuple[str, ...] = _OVERRIDES) -> subprocess.CompletedProcess[str]:
        """Run `codex OVERRIDES ARGS` for this home; a missing home or a command that did not run raises."""
        if not self.home.is_dir():
            raise CodexHomeMissing(
                f"The Codex home {self.home} does not exist.",
                hint=f"Create it (`mkdir -p {self.home}`) or run Codex once with CODEX_HOME={self.home}.",
                codex_home=str(self.home))
        argv = [str(self.codex), *overrides, *args]
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=self.timeout, check=False,
                                  stdin=subprocess.DEVNULL, env={**os.environ, "CODEX_HOME": str(self.home)})
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PluginCommandFailed(
                f"`codex {' '.join(args)}` for {self.home} did not run: {exc}.",
                hint="Check that the Codex CLI runs (`codex --version`).", codex_home=str(self.home)) from exc

    def json(self, *args: str) -> Any:
        """Run `codex ARGS --json` and return its JSON output; a non-zero exit or no JSON raises."""
        proc = self._run(*args, "--json")
        if proc.returncode != 0:
            raise PluginCommandFailed(
                f"`codex {' '.join(args)}` for {self.home} failed (exit {proc.returncode}): {_reason(proc.stderr)}",
                hint="Run the same command with CODEX_HOME set to see Codex's full message.",
                codex_home=str(self.home), exit_status=proc.returncode)
        try:
            return json.loads(proc.stdout)
        except json.JSONDecodeError as exc:
            raise PluginCommandFailed(
                f"`codex {' '.join(args)} --json` for {self.home} printed no JSON ({exc.msg}).",
                hint="This Codex version may not support `--json` here; fleet needs Codex 0.169 or later.",
                codex_home=str(self.home)) from exc

    def marketplaces(self) -> dict[str, Path]:
        """Configured marketplaces: name -> root folder."""
        out = self.json("plugin", "marketplace", "list")
        return {m["name"]: Path(m["root"]) for m in out.get("marketplaces", []) if m.get("root")}

    def installed(self) -> dict[str, dict[str, Any]]:
        """Installed plugins by id (`name@marketplace`): Codex's records (`version`, `enabled`, `source`)."""
        out = self.json("plugin", "list")
        return {p["pluginId"]: p for p in out.get("installed", []) if p.get("installed")}

    def add_marketplace(self, root: Path) -> None:
        self.json("plugin", "marketplace", "add", str(root))

    def remove_marketplace(self, name: str) -> None:
        self.json("plugin", "marketplace", "remove", name)

    def add_plugin(self, plugin_id: str) -> Path:
        """Install (or refresh, or re-enable) a plugin; returns where Codex copied it."""
        return Path(self.json("plugin", "add", plugin_id)["installedPath"])

    def remove_plugin(self, plugin_id: str) -> None:
        self.json("plugin", "remove", plugin_id)

    def cache_dir(self, marketplace: str, plugin: str, version: str) -> Path:
        """Where `plugin add` copies a plugin (measured: `plugins/cache/<marketplace>/<plugin>/<version>`)."""
        return self.home / "plugins" / "cache" / marketplace / plugin / version

    def features_plugins(self) -> bool | None:
        """Whether this home loads plugins (Codex's `plugins` feature, as its config leaves it); None if unknown."""
        try:
            proc = self._run("features", "list", overrides=())  # no override: the home's own setting
        except (CodexHomeMissing, PluginCommandFailed):  # Codex refuses a missing home too
            return None
        for line in proc.stdout.splitlines():
            fields = line.split()
            if len(fields) >= 2 and fields[0] == "plugins" and fields[-1] in ("true", "false"):
                return fields[-1] == "true"
        return None


def _reason(stderr: str) -> str:
    """Codex's message without its WARNING lines and stack backtrace."""
    lines = [ln.strip() for ln in stderr.splitlines()
             if ln.strip() and not ln.startswith("WARNING:") and not ln.lstrip()[:1].isdigit()]
    kept = []
    for ln in lines:
        if ln.startswith("Stack backtrace"):
            break
        kept.append(ln)
    text = " ".join(kept[:STDERR_LINES]) or "no message"
    return text if text.endswith(".") else text + "."
