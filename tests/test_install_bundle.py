"""The Codex plugin's files: one version, one copy of each skill, a render that only repoints the server."""

from __future__ import annotations

import json
import re
from importlib.metadata import version as dist_version
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fleet
from fleet.install import PluginBundleMissing, plugin_source, read_template, render, write_marketplace
from fleet.install.bundle import MANIFEST, MARKETPLACE_JSON, MCP_JSON, SERVER_NAME, plugin_version, read_tree

REPO = Path(__file__).resolve().parent.parent
#: The MCP tools the lead skill teaches (issue 9's list); each must be named in it.
LEAD_TOOLS = ("fleet_status", "skill_list", "assignment_create", "assignment_wait", "assignment_get",
              "assignment_cancel", "fleet_events", "fleet_dispatch", "agent_send", "agent_claim", "agent_release",
              "watchdog_status")


def front_matter(text: str) -> dict[str, str]:
    """The `key: value` lines between the leading `---` fences (enough for these two files)."""
    head = text.split("---\n")[1]
    return dict(line.split(": ", 1) for line in head.strip().splitlines())


@pytest.fixture(scope="module")
def template() -> dict[str, bytes]:
    return read_template(plugin_source())


def test_the_checkout_is_read_through_the_package_symlinks() -> None:
    source = plugin_source()
    assert source.origin == "checkout"
    assert (source.plugin_dir.resolve(), source.skills_dir.resolve()) == (REPO / "plugin", REPO / "skills")


def test_installed_copies_count_as_a_wheel_and_a_package_without_them_is_refused(tmp_path: Path) -> None:
    pkg = tmp_path / "site-packages" / "fleet" / "install"
    pkg.mkdir(parents=True)
    with pytest.raises(PluginBundleMissing, match="not installed with the package"):
        plugin_source(pkg)
    (pkg / "plugin" / ".codex-plugin").mkdir(parents=True)
    (pkg / "plugin" / MANIFEST).write_text("{}")
    found = plugin_source(pkg)
    assert (found.origin, found.plugin_dir, found.skills_dir) == ("wheel", pkg / "plugin", pkg / "skills")


def test_manifest_version_is_the_package_version(template: dict[str, bytes]) -> None:
    assert plugin_version(template) == fleet.__version__ == dist_version("fleet")


def test_manifest_marketplace_and_server_say_what_codex_needs(template: dict[str, bytes]) -> None:
    manifest = json.loads(template[MANIFEST])
    assert (manifest["name"], manifest["skills"], manifest["mcpServers"]) == ("fleet", "./skills/", "./.mcp.json")
    assert {"displayName", "shortDescription", "developerName", "category"} <= set(manifest["interface"])
    market = json.loads(template[MARKETPLACE_JSON])
    assert market["name"] == "fleet"
    assert [(p["name"], p["source"]) for p in market["plugins"]] == [("fleet", {"source": "local", "path": "./"})]
    server = json.loads(template[MCP_JSON])["mcpServers"][SERVER_NAME]
    assert (server["command"], server["args"]) == ("fleet", ["mcp"])
    # Read-only tools run unasked; every other tool asks (or is refused under approval_policy=never).
    assert server["default_tools_approval_mode"] == "writes"
    assert {"FLEET_CONFIG", "XDG_CONFIG_HOME", "TMUX_TMPDIR"} <= set(server["env_vars"])


def test_the_plugin_carries_every_skill_in_skills_and_only_those(template: dict[str, bytes]) -> None:
    on_disk = {p.parent.name for p in (REPO / "skills").glob("*/SKILL.md")}
    carried = {rel.split("/")[1] for rel in template if rel.startswith("skills/")}
    assert carried == on_disk >= {"fleet-lead", "fleet-report"}
    for name in carried:
        text = template[f"skills/{name}/SKILL.md"]
        assert text == (REPO / "skills" / name / "SKILL.md").read_bytes()  # no second copy to drift
        meta = front_matter(text.decode())
        assert meta["name"] == name
        assert 40 <= len(meta["description"]) <= 400
        assert ": " not in meta["description"]  # a YAML plain scalar cannot hold ": "
    assert not any(rel.endswith("README.md") for rel in template)


def test_the_lead_skill_names_every_lead_tool() -> None:
    text = (REPO / "skills" / "fleet-lead" / "SKILL.md").read_text()
    assert [t for t in LEAD_TOOLS if f"`{t}`" not in text] == []


def test_the_report_skill_example_is_one_valid_report() -> None:
    text = (REPO / "skills" / "fleet-report" / "SKILL.md").read_text()
    [block] = re.findall(r"```fleet-report\n(.*?)\n```", text, re.S)
    report = json.loads(block)
    assert list(report) == ["status", "summary", "changed", "tests", "risks"]
    assert report["status"] == "done"
    for status in ("`done`", "`partial`", "`blocked`"):
        assert status in text


argvs = st.lists(st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=30), min_size=1, max_size=5)
extra_files = st.dictionaries(st.from_regex(r"skills/[a-z]{1,8}/[A-Za-z.]{1,8}", fullmatch=True),
                              st.binary(max_size=64), max_size=4)


@settings(max_examples=60, deadline=None)
@given(argv=argvs, extra=extra_files)
def test_render_repoints_the_fleet_server_and_changes_nothing_else(
        template: dict[str, bytes], argv: list[str], extra: dict[str, bytes]) -> None:
    source = {**template, **extra}
    out = render(source, argv)
    assert set(out) == set(source)
    assert {k: v for k, v in out.items() if k != MCP_JSON} == {k: v for k, v in source.items() if k != MCP_JSON}
    before = json.loads(source[MCP_JSON])["mcpServers"][SERVER_NAME]
    after = json.loads(out[MCP_JSON])["mcpServers"][SERVER_NAME]
    assert (after["command"], after["args"]) == (argv[0], argv[1:])
    assert {k: v for k, v in after.items() if k not in ("command", "args")} == \
           {k: v for k, v in before.items() if k not in ("command", "args")}
    assert render(out, argv) == out


def test_render_refuses_an_empty_command(template: dict[str, bytes]) -> None:
    with pytest.raises(ValueError, match="argv"):
        render(template, [])


def test_write_marketplace_holds_exactly_the_files_and_skips_an_identical_tree(tmp_path: Path) -> None:
    dest = tmp_path / "data" / "codex-marketplace"
    first = {"a.txt": b"1", "skills/x/SKILL.md": b"x", ".codex-plugin/plugin.json": b"{}"}
    assert write_marketplace(dest, first) is True
    assert read_tree(dest) == first
    assert write_marketplace(dest, first) is False
    second = {"a.txt": b"2", "skills/y/SKILL.md": b"y"}
    assert write_marketplace(dest, second) is True
    assert read_tree(dest) == second  # stale files of the old tree are gone
    assert sorted(p.name for p in dest.parent.iterdir()) == ["codex-marketplace"]  # no temp trees left
