"""The lead role: a `role = "lead"` agent launches with fleet's MCP tools (approved), the fleet-lead
skill (through fleet's plugin, installed in its home by Codex's own commands) and the holder
`agent:<name>`; routing never gives it work; the watchdog's escalations go to it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import Fleet, require_offline, wait_until
from mockmodel import MockModel, MockServer
from mockrequests import request_text, searched, tool_outputs
from mocksteps import Step
from offlinecodex import codex_offline_args

from fleet import ops
from fleet.agents.codex import resolve_binary
from fleet.install import PLUGIN_ID
from fleet.install.codexcli import CodexPlugins

# ---- the launch, pure -----------------------------------------------------------------------------

# ---- the launch, real Codex ---------------------------------------------------------------------

def lead_fleet(tmp_path: Path, codex_bin: str, server: MockServer, lead_args: tuple[str, ...] = (), *,
               worker_args: tuple[str, ...] = (), extra: str = "") -> Fleet:
    """A fleet of a lead (`boss`, plugins on so its skills load) and one worker, against the mock;
    `worker_args`: more lines for the worker's table, `extra`: more tables."""
    require_offline()
    name = f"t{os.urandom(5).hex()}"
    root = tmp_path / name
    offline = codex_offline_args(server.url)
    lead_args_all = codex_offline_args(server.url, plugins=True)
    lines = ["[fleet]", f'name = "{name}"', f'state_dir = "{root / "state"}"', "", "[defaults]",
             f"codex = {json.dumps(codex_bin)}", f"args = {json.dumps(offline)}"]
    for agent, role, args in (("boss", "lead", [*lead_args_all, *lead_args]), ("agent-1", "worker", None)):
        (root / "work" / agent).mkdir(parents=True)
        lines += ["", f"[agents.{agent}]", f'home = "{root / "homes" / agent}"', f'cwd = "{root / "work" / agent}"',
                  f'role = "{role}"']
        if args is not None:
            lines.append(f"args = {json.dumps(args)}")
        else:
            lines += list(worker_args)
    path = root / "fleet.toml"
    path.write_text("\n".join([*lines, "", extra]) + "\n")
    return Fleet(path=path, name=name, state_dir=root / "state", agents=["boss", "agent-1"], root=root)


@pytest.mark.parametrize("deferred", [False, True], ids=["listed", "deferred"])
@pytest.mark.parametrize("approval", ["on-request", "never"])
def test_a_lead_agent_calls_fleets_tools_unasked_as_itself_and_sees_the_lead_skill(
        tmp_path: Path, codex_bin: str, model_catalog: Path, approval: str, deferred: bool) -> None:
    """`deferred`: the lead runs with a real model's catalog entry, so Codex lists fleet's tools only
    after a `tool_search` (its scripted model searches first, for every tool); else (a model with no
    catalog entry) Codex lists them in the request's `tools`."""
    model = MockModel(default_text="Idle.", retry_unsupported=True)
    search = [Step(search=("fleet", 50))] if deferred else []
    catalog = ("-c", f"model_catalog_json={json.dumps(str(model_catalog))}") if deferred else ()
    conv = model.converse("LEAD-CHECK", *search,
                          Step(tool=("fleet_status", {}), namespace="mcp__fleet"),
                          Step(tool=("agent_claim", {"agent": "agent-1", "ttl": 600}), namespace="mcp__fleet"),
                          Step(text="Checked the fleet."))
    with MockServer(model) as server:
        fleet = lead_fleet(tmp_path, codex_bin, server, ("-c", f'approval_policy="{approval}"', *catalog))
        try:
            up = fleet.json("up", "boss")
            assert up["agents"][0]["state"] == "idle"
            installed = CodexPlugins(resolve_binary(codex_bin), fleet.root / "homes" / "boss").installed()
            assert installed[PLUGIN_ID]["enabled"] is True

            fleet.json("send", "boss", "LEAD-CHECK: look at the fleet and take agent-1.")

            def done() -> bool:
                last = fleet.status("boss").get("last_turn") or {}
                return last.get("outcome") == "completed" and last.get("last_message") == "Checked the fleet."

            wait_until(done, timeout=60, interval=0.2)
        finally:
            fleet.cli("down")

    if deferred:
        offered = set(searched(conv.requests[-1])[-1][2]["mcp__fleet"])
    else:
        [namespace] = [t for t in conv.requests[-1]["tools"] if t.get("name") == "mcp__fleet"]
        offered = {t["name"] for t in namespace["tools"]}
    assert offered == set(ops.REGISTRY)
    assert "- fleet:fleet-lead: " in request_text(conv.requests[0])
    outputs = {name: out if isinstance(out, str) else json.dumps(out)
               for name, out in tool_outputs(conv.requests).items()}
    assert "requires approval" not in outputs["fleet_status"]
    assert '"agent-1"' in outputs["fleet_status"]
    assert '"agent:boss"' in outputs["agent_claim"], outputs["agent_claim"]
    [lease] = [x for x in fleet.json("leases")["leases"] if x["agent"] == "agent-1"]
    assert (lease["state"], lease["holder"]) == ("held", "agent:boss")


