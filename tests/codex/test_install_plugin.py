"""`fleet install` against the real Codex CLI (offline, temp CODEX_HOME and HOME): what Codex then shows.

Every check reads Codex's own view (`codex plugin list`, its cache, the request a model receives),
never fleet's idea of it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import require_offline
from mockmodel import MockModel, MockServer
from mockrequests import request_text, searched, tool_outputs
from mocksteps import Step
from offlinecodex import codex_offline_args

from fleet import __version__, ops
from fleet.agents.codex import resolve_binary
from fleet.install import PLUGIN_ID, install, plugin_source, plugin_status, read_template, render, write_marketplace
from fleet.install.bundle import MCP_JSON
from fleet.mcp.server import SEARCH


@pytest.fixture
def codex(codex_bin: str) -> Path:
    require_offline()
    return resolve_binary(codex_bin)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "codex-home"
    path.mkdir()
    return path


def codex_cmd(codex: Path, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(codex), "-c", "features.plugins=true", *args], capture_output=True, text=True,
                          timeout=60, check=False, stdin=subprocess.DEVNULL,
                          env={**os.environ, "CODEX_HOME": str(home)})


def plugin_list(codex: Path, home: Path) -> dict[str, Any]:
    proc = codex_cmd(codex, home, "plugin", "list", "--json")
    assert proc.returncode == 0, proc.stderr
    return {p["pluginId"]: p for p in json.loads(proc.stdout)["installed"]}


def marketplaces(codex: Path, home: Path) -> dict[str, str]:
    proc = codex_cmd(codex, home, "plugin", "marketplace", "list", "--json")
    assert proc.returncode == 0, proc.stderr
    return {m["name"]: m["root"] for m in json.loads(proc.stdout)["marketplaces"]}


def test_install_is_idempotent_codex_lists_it_and_uninstall_removes_it(codex: Path, home: Path,
                                                                        codex_bin: str) -> None:
    first = install(home, codex=codex_bin)
    assert first["changes"] == ["rendered", "marketplace_added", "plugin_installed"]
    assert (first["installed"], first["version"], first["plugin"]) == (True, __version__, "fleet@fleet")
    listed = codex_cmd(codex, home, "plugin", "list")
    assert re.search(rf"^fleet@fleet +installed, enabled +{re.escape(__version__)} ", listed.stdout, re.M)
    cache = home / "plugins" / "cache" / "fleet" / "fleet" / __version__
    assert (cache / "skills" / "fleet-lead" / "SKILL.md").is_file()
    assert json.loads((cache / MCP_JSON).read_text())["mcpServers"]["fleet"]["command"] == first["mcp_command"][0]
    config_before = (home / "config.toml").read_text()

    again = install(home, codex=codex_bin)
    assert (again["changed"], again["changes"], again["installed"]) == (False, [], True)
    assert (home / "config.toml").read_text() == config_before

    gone = install(home, uninstall=True, codex=codex_bin)
    assert (gone["changes"], gone["installed"]) == (["plugin_removed", "marketplace_removed"], False)
    assert PLUGIN_ID not in plugin_list(codex, home)
    assert "fleet" not in marketplaces(codex, home)
    assert not cache.exists()
    assert "fleet" not in (home / "config.toml").read_text()
    assert install(home, uninstall=True, codex=codex_bin)["changes"] == []


def test_install_repairs_a_stale_copy_a_disabled_plugin_and_a_marketplace_added_elsewhere(
        codex: Path, home: Path, tmp_path: Path, codex_bin: str) -> None:
    other = tmp_path / "old-checkout-render"
    write_marketplace(other, render(read_template(plugin_source()), ["fleet", "mcp"]))
    assert codex_cmd(codex, home, "plugin", "marketplace", "add", str(other)).returncode == 0
    assert codex_cmd(codex, home, "plugin", "add", PLUGIN_ID).returncode == 0

    fixed = install(home, codex=codex_bin)
    assert fixed["changes"] == ["rendered", "marketplace_removed", "marketplace_added", "plugin_updated"]
    assert marketplaces(codex, home)["fleet"] == fixed["marketplace_dir"]
    cache = home / "plugins" / "cache" / "fleet" / "fleet" / __version__
    assert json.loads((cache / MCP_JSON).read_text())["mcpServers"]["fleet"]["args"] == ["-P", "-m", "fleet", "mcp"]

    (cache / "skills" / "fleet-lead" / "SKILL.md").write_text("edited by hand\n")
    assert install(home, codex=codex_bin)["changes"] == ["plugin_updated"]
    assert "edited by hand" not in (cache / "skills" / "fleet-lead" / "SKILL.md").read_text()

    config = home / "config.toml"  # the user turns the plugin off by hand
    config.write_text(config.read_text().replace("enabled = true", "enabled = false"))
    assert plugin_list(codex, home)[PLUGIN_ID]["enabled"] is False
    assert install(home, codex=codex_bin)["changes"] == ["plugin_enabled"]
    assert plugin_list(codex, home)[PLUGIN_ID]["enabled"] is True


def test_plugin_status_says_in_which_homes_it_is_installed(codex: Path, home: Path, tmp_path: Path,
                                                           codex_bin: str) -> None:
    fresh = tmp_path / "fresh-home"
    fresh.mkdir()
    install(home, codex=codex_bin)
    by_home = {s["codex_home"]: s for s in plugin_status([home, fresh, tmp_path / "missing"], codex=codex_bin)}
    assert by_home[str(home)] | {"marketplace_root": None} == {
        "codex_home": str(home), "installed": True, "enabled": True, "version": __version__, "current": True,
        "plugins_feature": True, "marketplace_root": None, "error": None}
    assert (by_home[str(fresh)]["installed"], by_home[str(fresh)]["error"]) == (False, None)
    assert by_home[str(tmp_path / "missing")]["error"] == f"The Codex home {tmp_path / 'missing'} does not exist."


def test_install_refuses_a_codex_home_that_does_not_exist(tmp_path: Path, codex: Path, codex_bin: str) -> None:
    from fleet.install import CodexHomeMissing

    with pytest.raises(CodexHomeMissing, match="does not exist"):
        install(tmp_path / "nope", codex=codex_bin)
    assert not (tmp_path / "nope").exists()


def test_codex_shows_the_plugin_skills_and_tools_and_approves_only_read_only_tools_unasked(
        codex: Path, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, codex_bin: str,
        model_catalog: Path) -> None:
    """A fleet config in ~/.config/fleet (XDG_CONFIG_HOME unset) is what the plugin's `fleet mcp` finds.
    `codex exec` runs with approval policy `never`: the read-only fleet_status must run, the mutating
    agent_claim must be refused as needing approval (the plugin's `writes` approval mode).
    The model has a real model's catalog entry, so Codex defers fleet's tools behind `tool_search`:
    the scripted model searches with the query fleet's instructions recommend before fleet_status,
    then for every fleet tool (Codex shows them all only in a search's answer) before agent_claim."""
    monkeypatch.delenv("XDG_CONFIG_HOME")
    config = Path.home() / ".config" / "fleet" / "fleet.toml"
    config.parent.mkdir(parents=True)
    (tmp_path / "work").mkdir()
    config.write_text(f'[agents.mila]\nhome = "{tmp_path / "mila-home"}"\ncwd = "{tmp_path / "work"}"\n')
    install(home, codex=codex_bin)

    # Repeats a tool call Codex answered `unsupported call` and a search that found nothing: in `codex
    # exec` the first request can go out before the plugin's MCP server has listed its tools (0.169).
    model = MockModel(default_text="Done.", retry_unsupported=True)
    model.script(Step(search=(SEARCH, 8)),
                 Step(tool=("fleet_status", {}), namespace="mcp__fleet"),
                 Step(search=("fleet", 50)),
                 Step(tool=("agent_claim", {"agent": "mila"}), namespace="mcp__fleet"),
                 Step(text="All done."))
    with MockServer(model) as server:
        args = [*codex_offline_args(server.url, plugins=True),
                "-c", f"model_catalog_json={json.dumps(str(model_catalog))}"]
        proc = subprocess.run([str(codex), "exec", *args, "--skip-git-repo-check", "-C", str(tmp_path / "work"),
                               "Check the fleet."], capture_output=True, text=True, timeout=120, check=False,
                              stdin=subprocess.DEVNULL, env={**os.environ, "CODEX_HOME": str(home)})
    assert proc.returncode == 0, proc.stderr[-2000:]

    texts = request_text(model.requests[0])
    for name in ("fleet-lead", "fleet-report"):
        skill = (plugin_source().skills_dir / name / "SKILL.md").read_text()
        description = skill.split("description: ", 1)[1].split("\n", 1)[0]
        assert f"- fleet:{name}: {description} (file: " in texts

    assert any(query == SEARCH and "fleet_status" in found.get("mcp__fleet", [])  # the recommended search finds it
               for query, _, found in searched(model.requests[-1]))
    tools = {t["name"]: t for item in model.requests[-1]["input"] if item.get("type") == "tool_search_output"
             for space in item["tools"] if space.get("name") == "mcp__fleet" for t in space["tools"]}
    assert set(tools) == set(ops.REGISTRY)
    assert tools["fleet_status"]["description"].endswith("This tool is part of plugin `fleet`.")

    outputs = {name: json.dumps(out) for name, out in tool_outputs(model.requests).items()}
    assert '\\"agents\\"' in outputs["fleet_status"]
    assert '[\\"mila\\",' in outputs["fleet_status"]  # the compact status table's row
    assert "requires approval" not in outputs["fleet_status"]
    assert "MCP tool call requires approval, but approval policy is never" in outputs["agent_claim"]
