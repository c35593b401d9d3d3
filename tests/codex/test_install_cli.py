"""`fleet install` and `fleet doctor` as a user runs them: real processes, the real Codex CLI (offline,
temp HOME and Codex homes); what is installed is read back from Codex (`codex plugin list`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from conftest import CODEX_DEFAULT, require_offline

from fleet import __version__
from fleet.agents.codex import resolve_binary
from fleet.agents.codexversion import PINNED
from fleet.install import PLUGIN_ID
from fleet.install.codexcli import CodexPlugins


def fleet_cmd(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
              ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fleet", *args], capture_output=True, text=True, timeout=120,
                          check=False, env={**os.environ, **(env or {})}, cwd=cwd, stdin=subprocess.DEVNULL)


def installed(codex_bin: str, home: Path) -> dict[str, Any]:
    return CodexPlugins(resolve_binary(codex_bin), home).installed()


def test_install_through_the_cli_is_idempotent_and_doctor_says_where_it_is(fleet_factory: Any,
                                                                           codex_bin: str) -> None:
    require_offline()
    fleet = fleet_factory(2, codex=codex_bin)  # the fleet's codex is the one `fleet install` runs
    home, other = (fleet.root / "homes" / a for a in fleet.agents)
    home.mkdir(parents=True)
    other.mkdir(parents=True)

    first = fleet.json("install", "--codex-home", str(home))
    assert (first["installed"], first["changed"]) == (True, True)
    assert first["changes"][-1] == "plugin_installed"
    assert installed(codex_bin, home)[PLUGIN_ID]["version"] == __version__
    again = fleet.json("install", "--codex-home", str(home))
    assert (again["changed"], again["changes"]) == (False, [])
    human = fleet.cli("install", "--codex-home", str(home))
    assert human.returncode == 0
    assert "nothing to do" in human.stdout

    doctor = fleet.json("doctor", ok=False)
    checks = {c["name"]: c for c in doctor["checks"]}
    assert f"{fleet.path} (given with --config)" in checks["config"]["detail"]
    plugin = checks["codex plugin"]
    assert plugin["ok"] is True
    assert f"installed in {home}" in plugin["detail"]
    assert f"not in {other}" in plugin["detail"]
    by_home = {s["codex_home"]: s for s in doctor["plugin"]}
    assert (by_home[str(home)]["installed"], by_home[str(home)]["current"]) == (True, True)
    assert by_home[str(other)]["installed"] is False
    assert str(Path.home() / ".codex") in by_home  # the default home is always checked
    assert by_home[str(Path.home() / ".codex")]["error"]  # ... and here it does not exist

    gone = fleet.json("install", "--codex-home", str(home), "--uninstall")
    assert (gone["installed"], gone["changes"]) == (False, ["plugin_removed", "marketplace_removed"])
    assert PLUGIN_ID not in installed(codex_bin, home)


def test_doctor_names_the_pinned_codex_release_each_agent_runs(fleet_factory: Any) -> None:
    """The release `scripts/setup` pins, read from the real binary (its npm launcher resolved to the
    native one), is named on each agent's line and is tested."""
    fleet = fleet_factory(2, codex=str(CODEX_DEFAULT))
    checks = {c["name"]: c for c in fleet.json("doctor", ok=False)["checks"]}
    for agent in fleet.agents:
        check = checks[f"codex {agent}"]
        assert (check["ok"], check["version"], check["tested"]) == (True, PINNED, True)
        assert check["detail"] == f"{resolve_binary(str(CODEX_DEFAULT))} (codex-cli {PINNED}, tested)"


def test_install_needs_no_fleet_config_and_uses_the_default_codex_home(tmp_path: Path, codex_bin: str) -> None:
    require_offline()
    default_home = Path.home() / ".codex"
    default_home.mkdir()
    path_env = {"PATH": f"{Path(codex_bin).parent}{os.pathsep}{os.environ['PATH']}"}
    result = fleet_cmd("install", "--json", env=path_env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["codex_home"] == str(default_home)
    assert result.stderr == ""  # no config: nothing to audit into, and nothing to complain about
    assert PLUGIN_ID in installed(codex_bin, default_home)

    doctor = fleet_cmd("doctor", env=path_env, cwd=tmp_path)
    assert doctor.returncode == 1  # no config
    assert f"ok   codex plugin: installed in {default_home}" in doctor.stdout

    named = fleet_cmd("--config", str(tmp_path / "nope.toml"), "install", env=path_env, cwd=tmp_path)
    assert named.returncode == 2
    assert "config_not_found" in named.stderr


def test_install_refuses_a_codex_home_that_does_not_exist(tmp_path: Path, codex_bin: str) -> None:
    require_offline()
    path_env = {"PATH": f"{Path(codex_bin).parent}{os.pathsep}{os.environ['PATH']}"}
    result = fleet_cmd("install", "--codex-home", str(tmp_path / "missing"), "--json", env=path_env, cwd=tmp_path)
    assert result.returncode == 4
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "codex_home_missing"
    assert "mkdir -p" in error["hint"]
