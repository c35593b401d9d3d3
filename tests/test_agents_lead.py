"""The lead role: a `role = "lead"` agent launches with fleet's MCP tools (approved), the fleet-lead
skill (through fleet's plugin, installed in its home by Codex's own commands) and the holder
`agent:<name>`; routing never gives it work; the watchdog's escalations go to it."""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path
from typing import Any

from fleet import ops
from fleet.agents import lead
from fleet.agents.codex import launch_argv
from fleet.config import parse_config
from fleet.errors import FleetError
from fleet.service.install import ensure_lead_plugin


def config(tmp_path: Path, agents: str, watchdog: str = "") -> Any:
    raw = tomllib.loads(f"{watchdog}\n{agents}")
    return parse_config(raw, tmp_path / "fleet.toml")


def toml_value(override: str) -> Any:
    key, _, value = override.partition("=")
    return key, tomllib.loads(f"v = {value}")["v"]


# ---- the launch, pure -----------------------------------------------------------------------------

def test_a_lead_gets_fleets_mcp_server_with_its_holder_approved_and_pointed_at_this_fleet(tmp_path: Path) -> None:
    cfg = config(tmp_path, '[agents.boss]\nhome = "h"\ncwd = "."\nrole = "lead"\n')
    spec = cfg.agent("boss")
    assert spec.sandbox == "read-only"
    overrides = lead.overrides(spec, cfg.path, cfg.state_dir, {"TMUX_TMPDIR": "/tmp/x", "OTHER": "y"})
    assert overrides[1] == "features.plugins=true"
    key, table = toml_value(overrides[0])
    assert key == "mcp_servers.fleet"
    assert table == {
        "command": sys.executable,
        "args": ["-P", "-m", "fleet", "--config", str(cfg.path), "mcp"],
        "env": {"FLEET_HOLDER": "agent:boss", "FLEET_HOME": str(cfg.state_dir), "TMUX_TMPDIR": "/tmp/x"},
        "default_tools_approval_mode": "approve",
        "tools": {"agent_approve": {"approval_mode": "prompt"}, "fleet_install": {"approval_mode": "prompt"},
                  "worktree_prune": {"approval_mode": "prompt"}},
    }


def test_a_leads_gated_tools_ask_a_person_unless_the_user_opted_in_for_approvals(tmp_path: Path) -> None:
    """agent_approve and fleet_install act outside every sandbox, worktree_prune deletes work: a lead's
    model cannot call them unasked. `[lead] auto_approve_agent_approvals` lifts the gate on
    agent_approve, and only there."""
    body = '[agents.boss]\nhome = "h"\ncwd = "."\nrole = "lead"\n'
    cfg = config(tmp_path, body)
    assert cfg.lead_auto_approve_agent_approvals is False
    _, table = toml_value(lead.overrides(cfg.agent("boss"), cfg.path, cfg.state_dir, {})[0])
    assert table["tools"] == {"agent_approve": {"approval_mode": "prompt"},
                              "fleet_install": {"approval_mode": "prompt"},
                              "worktree_prune": {"approval_mode": "prompt"}}
    opted = config(tmp_path, body + "[lead]\nauto_approve_agent_approvals = true\n")
    assert opted.lead_auto_approve_agent_approvals is True
    _, table = toml_value(lead.overrides(opted.agent("boss"), opted.path, opted.state_dir, {},
                                         auto_approve_agent_approvals=True)[0])
    assert table["tools"] == {"fleet_install": {"approval_mode": "prompt"},
                              "worktree_prune": {"approval_mode": "prompt"}}


def test_the_plugins_mcp_json_gates_the_same_tools_as_a_lead() -> None:
    from fleet.install import plugin_source

    mcp = json.loads((plugin_source().plugin_dir / ".mcp.json").read_text())
    assert mcp["mcpServers"]["fleet"]["tools"] == lead.gated_tools()


def test_a_leads_server_gets_the_stores_credentials_by_name_and_its_shell_never(tmp_path: Path) -> None:
    """`$FLEET_STORE_URL` by value would sit on Codex's command line for any local user's `ps`: the
    table names it (Codex passes it on from its own environment), and the lead's shell excludes it,
    after the home's own patterns."""
    cfg = config(tmp_path, '[agents.boss]\nhome = "h"\ncwd = "."\nrole = "lead"\n')
    spec = cfg.agent("boss")
    secret = "postgresql://fleet:s3cret@db/fleet"
    overrides = lead.overrides(spec, cfg.path, cfg.state_dir, {"FLEET_STORE_URL": secret})
    assert not any("s3cret" in o for o in overrides)
    table = toml_value(overrides[0])[1]
    assert table["env_vars"] == ["FLEET_STORE_URL"]
    assert "FLEET_STORE_URL" not in table["env"]
    assert toml_value(overrides[2]) == ("shell_environment_policy.exclude", ["FLEET_STORE_URL", "PGPASSWORD"])
    assert "env_vars" not in toml_value(lead.overrides(spec, cfg.path, cfg.state_dir, {})[0])[1]
    spec.home.mkdir(parents=True)
    (spec.home / "config.toml").write_text('[shell_environment_policy]\nexclude = ["AWS_*", "PGPASSWORD", 7]\n')
    assert toml_value(lead.overrides(spec, cfg.path, cfg.state_dir, {})[2])[1] == [
        "AWS_*", "PGPASSWORD", "FLEET_STORE_URL"]


def test_other_roles_get_no_lead_wiring(tmp_path: Path) -> None:
    cfg = config(tmp_path, '[agents.w]\nhome = "h"\ncwd = "."\nrole = "worker"\n'
                           '[agents.e]\nhome = "h2"\ncwd = "."\n')
    for spec in cfg.agents.values():
        assert lead.overrides(spec, cfg.path, cfg.state_dir) == []
        assert ensure_lead_plugin(spec) == []


def test_the_lead_overrides_come_after_fleets_own_and_before_the_agents_args(tmp_path: Path) -> None:
    codex = tmp_path / "codex"
    codex.write_text("#!/bin/sh\n")
    codex.chmod(0o755)
    cfg = config(tmp_path, f'[agents.boss]\nhome = "h"\ncwd = "."\nrole = "lead"\ncodex = "{codex}"\n'
                           'args = ["-c", "features.plugins=false"]\n')
    spec = cfg.agent("boss")
    argv = launch_argv(spec, tmp_path / "agent", lead.overrides(spec, cfg.path, cfg.state_dir))
    values = [argv[i + 1] for i, a in enumerate(argv) if a == "-c"]
    server = next(i for i, v in enumerate(values) if v.startswith("mcp_servers.fleet="))
    assert values.index("features.plugins=true") == server + 1
    assert values[-1] == "features.plugins=false"  # the user's own args still have the last word
    assert any(v.startswith("notify=") for v in values[:server])


def test_the_one_lead_agent_gets_the_watchdogs_escalations_unless_the_policy_names_another(tmp_path: Path) -> None:
    agents = ('[agents.boss]\nhome = "h"\ncwd = "."\nrole = "lead"\n'
              '[agents.w]\nhome = "h2"\ncwd = "."\nrole = "worker"\n')
    assert config(tmp_path, agents).watchdog.lead == "boss"
    assert config(tmp_path, agents, '[watchdog]\nlead = "w"').watchdog.lead == "w"
    two = agents + '[agents.boss2]\nhome = "h3"\ncwd = "."\nrole = "lead"\n'
    assert config(tmp_path, two).watchdog.lead is None
    assert config(tmp_path, '[agents.w]\nhome = "h2"\ncwd = "."\n').watchdog.lead is None


def test_routing_never_assigns_to_a_lead() -> None:
    from fleet.work.routing import AgentFacts, Need, route

    # boss would rank first (no open assignments, first by name) were it not a lead
    boss = AgentFacts(name="boss", role="lead", state="idle", skills=frozenset({"docs"}))
    worker = AgentFacts(name="zed", role="worker", state="idle", skills=frozenset({"docs"}), open_assignments=1)
    result = route([boss, worker], Need(skills=frozenset({"docs"})))
    assert (result.agent, result.ranked) == ("zed", ())
    [refused] = result.refusals
    assert (refused.agent, refused.why) == ("boss", "lead")
    assert "lead" in refused.detail
    assert route([boss], Need()).agent is None


# ---- the launch, real Codex ---------------------------------------------------------------------

def test_the_lead_skill_names_only_real_tools_and_assignment_arguments() -> None:
    """The skill is the lead model's manual: a renamed argument there is a failed call later."""
    import re

    from fleet.install import plugin_source

    text = (plugin_source().skills_dir / "fleet-lead" / "SKILL.md").read_text()
    tools = {t for t in re.findall(r"`([a-z]+_[a-z_]+)`", text)
             if t.split("_")[0] in ("fleet", "agent", "assignment", "skill", "lease", "watchdog")}
    assert tools <= set(ops.REGISTRY), tools - set(ops.REGISTRY)
    assign = text.split("**Assign.**", 1)[1].split("**Wait.**", 1)[0]
    codes = {c.code for c in _subclasses(FleetError)}
    arguments = set(re.findall(r"`([a-z]\w*)`", assign)) - set(ops.REGISTRY) - codes
    assert {"task", "skills", "write_paths", "request_id"} <= arguments
    schema = ops.REGISTRY["assignment_create"].input_schema["properties"]
    assert arguments <= set(schema), arguments - set(schema)


def _subclasses(cls: type) -> list[type]:
    return [cls, *(s for sub in cls.__subclasses__() for s in _subclasses(sub))]
