"""The end-to-end proof: a real Codex 0.169 lead assigns work to real Codex workers through fleet's
MCP tools, offline, against one scripted mock that plays every model.

Twice: (1) a lead that is the user's own Codex (`codex exec`), with fleet's plugin installed by
`fleet install`; (2) a lead that is a `role = "lead"` agent of the fleet itself (a TUI in tmux).
In both, the lead runs with a real model's catalog entry, so Codex defers fleet's tools behind
`tool_search` as it does for every real model: the lead's model first searches with the query the
fleet-lead skill recommends (`SEARCH`), then looks at the fleet (`fleet_status`), hands out one task routed by skill
(`assignment_create`), waits for it (`assignment_wait`) and answers with the worker's summary; the
worker's model writes a file inside its write paths (`apply_patch`) and reports. Checked from the
outside: what the lead's model was offered, the worker's receipt, the ledger's verdict, the file,
the lead's final message, and Codex's own `plugin list`.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import Fleet, require_offline, wait_until
from mockmodel import MockModel, MockServer
from mockrequests import request_text, searched, tool_results
from mocksteps import Step
from offlinecodex import codex_offline_args

from fleet.agents.codex import resolve_binary
from fleet.mcp.server import SEARCH as RECOMMENDED_QUERY

LEAD_MARKER = "LEAD-E2E"
WORK_MARKER = "WORK-E2E"
SKILL = "docs-writing"
SUMMARY = "Wrote docs/guide.md with the three install steps."
PATCH = "*** Begin Patch\n*** Add File: docs/guide.md\n+1. pip install .\n+2. fleet install\n+3. codex\n*** End Patch\n"
REPORT = ("Done.\n```fleet-report\n" + json.dumps(
    {"status": "done", "summary": SUMMARY, "changed": ["docs/guide.md"], "tests": "", "risks": "none"}) + "\n```")
#: The lead's tools arrive as this namespace, from the plugin or from a lead agent's `-c` server.
NAMESPACE = "mcp__fleet"
#: The one search the server's instructions and the fleet-lead skill recommend (bench/bench_tool_search.py).
SEARCH = (RECOMMENDED_QUERY, 8)


@dataclass
class LeadModel:
    """The lead's scripted model: reads each tool result and decides the next call, as a model would.
    tool_search (`SEARCH`) -> fleet_status -> assignment_create (by skill) -> assignment_wait until
    nothing is pending -> answer with the report's summary. It calls only tools its searches found
    (their names in Codex's `tool_search_output`); a search that found none of fleet's tools (the
    MCP server had not listed them yet) is repeated after a short pause, and so is a call Codex
    answered `unsupported call`."""

    calls: list[str] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    searches: list[tuple[str, int, dict[str, list[str]]]] = field(default_factory=list)

    def call(self, name: str, args: dict[str, Any], delay: float = 0.0) -> Step:
        found = {t for _, _, spaces in self.searches for t in spaces.get(NAMESPACE, [])}
        if name not in found:
            return Step(text=f"Lead failed: {name} not found by {self.searches}")
        self.calls.append(name)
        return Step(tool=(name, args), namespace=NAMESPACE, delay=delay)

    def __call__(self, body: dict[str, Any]) -> Step:
        self.searches = searched(body)
        if not self.searches:
            return Step(search=SEARCH)
        if not tool_results(body) and not self.searches[-1][2].get(NAMESPACE):
            return Step(search=SEARCH, delay=0.2)
        results = tool_results(body)
        if not results:
            return self.call("fleet_status", {})
        name, args, out = results[-1]
        if "unsupported call" in out:
            return self.call(name, args, delay=0.2)
        try:
            data = json.loads(out)
        except json.JSONDecodeError:
            return Step(text=f"Lead failed: {name} answered {out[:500]}")
        self.outputs[name] = data
        if "error" in data:
            return Step(text=f"Lead failed: {name} answered {out[:500]}")
        if name == "fleet_status":
            return self.call("assignment_create", {
                "task": f"{WORK_MARKER}: write docs/guide.md with the install steps.", "skills": [SKILL],
                "write_paths": ["docs/"], "deadline": "10m", "request_id": "e2e-guide"})
        if name == "assignment_create":
            return self.call("assignment_wait", {"assignments": [data["assignment"]], "timeout": 50})
        if name == "assignment_wait":
            if data.get("pending"):
                return self.call("assignment_wait", args)
            [done] = data["done"]
            summary = done.get("summary")  # the worker's words come marked: {"untrusted": ...}
            assert isinstance(summary, dict), done
            return Step(text=f"Lead summary: {done['agent']} {done['state']}: {summary['untrusted']}")
        return Step(text=f"Lead failed: unexpected {name}")


def scripted(lead: LeadModel) -> MockModel:
    model = MockModel(default_text="Nothing to do.")
    model.converse(LEAD_MARKER, driver=lead)
    model.converse(WORK_MARKER, Step(tool=("apply_patch", {"input": PATCH})), Step(text=REPORT),
                   default_text=REPORT)
    return model


def skill(home: Path, name: str) -> None:
    path = home / "skills" / name / "SKILL.md"
    path.parent.mkdir(parents=True)
    path.write_text(f"---\nname: {name}\ndescription: Write clear user documentation.\n---\n\nWrite docs.\n")


def team(root: Path, codex_bin: str, server: MockServer, catalog: Path, with_lead: bool) -> Fleet:
    """Two workers (only agent-2 has the skill) and, with `with_lead`, a lead agent `boss` that has
    the skill too (routing must still pass it over: a lead never takes an assignment)."""
    require_offline()
    name = f"t{uuid.uuid4().hex[:10]}"
    root = root / name
    offline = [*codex_offline_args(server.url), "-c", f"model_catalog_json={json.dumps(str(catalog))}"]
    lines = ["[fleet]", f'name = "{name}"', f'state_dir = "{root / "state"}"', "", "[defaults]",
             f"codex = {json.dumps(codex_bin)}", f"args = {json.dumps(offline)}", 'role = "worker"']
    agents = ["agent-1", "agent-2", *(["boss"] if with_lead else [])]
    for agent in agents:
        (root / "work" / agent).mkdir(parents=True)
        lines += ["", f"[agents.{agent}]", f'home = "{root / "homes" / agent}"', f'cwd = "{root / "work" / agent}"']
        if agent == "boss":  # plugins on for its skills; a real model's catalog entry: Codex 0.169
            # lists MCP tools as a deferred namespace the model must search first
            plugins_on = [*codex_offline_args(server.url, plugins=True),
                          "-c", f"model_catalog_json={json.dumps(str(catalog))}"]
            lines += ['role = "lead"', f"args = {json.dumps(plugins_on)}"]
        if agent != "agent-1":
            skill(root / "homes" / agent, SKILL)
    path = root / "fleet.toml"
    path.write_text("\n".join(lines) + "\n")
    return Fleet(path=path, name=name, state_dir=root / "state", agents=agents, root=root)


def reap(fleet: Fleet) -> None:
    fleet.cli("down")
    fleet.tmux("kill-server")


def offered(body: dict[str, Any]) -> set[str]:
    """The fleet tools a request offers the model: in `tools`, in an `additional_tools` input item, or
    (deferred, for models whose catalog entry has `supports_search_tool`, measured on 0.169) in the
    `tool_search_output` items that answered the model's searches."""
    tools = list(body.get("tools") or [])
    for item in body.get("input") or []:
        if isinstance(item, dict) and item.get("type") in ("additional_tools", "tool_search_output"):
            tools += item.get("tools") or []
    return {t["name"] for space in tools if space.get("name") == NAMESPACE for t in space.get("tools", [])}


def plugin_list(codex_bin: str, home: Path) -> str:
    proc = subprocess.run([str(resolve_binary(codex_bin)), "-c", "features.plugins=true", "plugin", "list"],
                          env={**os.environ, "CODEX_HOME": str(home)}, capture_output=True, text=True,
                          timeout=60, check=False, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def check_the_work(fleet: Fleet, model: MockModel, lead: LeadModel, final: str, holder: str | None) -> None:
    """What both runs must show, read from the ledger, the worker's journal and the mock's log."""
    # in this order; a call repeats only after `unsupported call` (status) or while work is pending (wait)
    assert list(dict.fromkeys(lead.calls)) == ["fleet_status", "assignment_create", "assignment_wait"], lead.calls
    assert lead.calls.count("assignment_create") == 1
    lead_conv, worker_conv = model.conversations
    assert {"fleet_status", "assignment_create", "assignment_wait", "assignment_get"} <= offered(lead_conv.requests[-1])
    assert "- fleet:fleet-lead: " in request_text(lead_conv.requests[0])
    assert "Deferred tool namespaces:" in request_text(lead_conv.requests[-1])  # as for a real model
    assert lead.searches[0][:2] == SEARCH
    assert {"fleet_status", "assignment_create", "assignment_wait"} <= set(lead.searches[-1][2][NAMESPACE])

    aid = lead.outputs["assignment_create"]["assignment"]
    shown = fleet.json("show", aid)
    assert (shown["state"], shown["agent"]) == ("verified", "agent-2"), shown  # routed by skill, not to boss
    if holder is not None:
        assert shown["holder"] == holder
    assert shown["report"]["summary"] == SUMMARY
    assert (fleet.root / "work" / "agent-2" / "docs" / "guide.md").read_text().startswith("1. pip install .")

    receipt = shown["receipt"]
    assert receipt["delivered"] is True
    started = [e for e in fleet.journal("agent-2") if e.get("event") == "turn_started" and e.get("prompt")]
    [delivered] = [e for e in started if WORK_MARKER in e["prompt"]]
    assert delivered["turn_id"] == receipt["turn_id"] == shown["turn_id"]
    assert any(WORK_MARKER in body_text for body in worker_conv.requests for body_text in [request_text(body)])

    assert f"Lead summary: agent-2 verified: {SUMMARY}" in final


@pytest.mark.timeout(300)
def test_a_codex_with_the_plugin_leads_two_codex_workers(tmp_path: Path, codex_bin: str,
                                                         model_catalog: Path) -> None:
    lead = LeadModel()
    model = scripted(lead)
    with MockServer(model) as server:
        fleet = team(tmp_path, codex_bin, server, model_catalog, with_lead=False)
        try:
            fleet.json("up")
            home = tmp_path / "lead-home"
            home.mkdir()
            installed = fleet.json("install", "--codex-home", str(home))
            assert installed["installed"] is True
            with (home / "config.toml").open("a") as config:  # unattended, as plugin/README.md says
                config.write('\n[plugins."fleet@fleet".mcp_servers.fleet]\ndefault_tools_approval_mode = "approve"\n')
            args = [*codex_offline_args(server.url, plugins=True),
                    "-c", f"model_catalog_json={json.dumps(str(model_catalog))}"]
            (tmp_path / "lead-work").mkdir()
            proc = subprocess.run(
                [str(resolve_binary(codex_bin)), "exec", *args, "--skip-git-repo-check", "-C",
                 str(tmp_path / "lead-work"), f"{LEAD_MARKER}: get docs/guide.md written by the fleet."],
                env={**os.environ, "CODEX_HOME": str(home), "FLEET_CONFIG": str(fleet.path)},
                capture_output=True, text=True, timeout=240, check=False, stdin=subprocess.DEVNULL)
            assert proc.returncode == 0, proc.stderr[-3000:]
            check_the_work(fleet, model, lead, proc.stdout, holder=None)
            listed = plugin_list(codex_bin, home)
            assert "fleet@fleet" in listed
            assert "installed, enabled" in listed
        finally:
            reap(fleet)


@pytest.mark.timeout(300)
def test_a_lead_agent_of_the_fleet_leads_two_codex_workers(tmp_path: Path, codex_bin: str,
                                                           model_catalog: Path) -> None:
    lead = LeadModel()
    model = scripted(lead)
    with MockServer(model) as server:
        fleet = team(tmp_path, codex_bin, server, model_catalog, with_lead=True)
        try:
            fleet.json("up")
            fleet.json("send", "boss", f"{LEAD_MARKER}: get docs/guide.md written by the fleet.")

            def answered() -> str | None:
                last = fleet.status("boss").get("last_turn") or {}
                message = last.get("last_message") or ""
                return message if last.get("outcome") == "completed" and "Lead " in message else None

            final = wait_until(answered, timeout=180, interval=0.3)
            check_the_work(fleet, model, lead, final, holder="agent:boss")
            listed = plugin_list(codex_bin, fleet.root / "homes" / "boss")
            assert "fleet@fleet" in listed
            assert "installed, enabled" in listed
        finally:
            reap(fleet)
