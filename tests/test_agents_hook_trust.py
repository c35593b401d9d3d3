"""Hook trust without `--dangerously-bypass-hook-trust`: fleet trusts exactly its own handlers."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

from conftest import Fleet

from fleet.agents import codex
from fleet.agents.codex import hook_trust_hash, snake_event
from fleet.service import Service


def test_the_trust_hash_is_the_one_codex_writes() -> None:
    """Vectors from Codex 0.169's own "Trust all" (config.toml it wrote, see notes/codex-cli.md)."""
    assert hook_trust_hash("Stop", {"type": "command", "command": "touch /tmp/hx/ourhook-ran", "timeout": 10}) == (
        "sha256:f18c7b352f99bfe1cf6eb64384b595641ac476f6448246d1e58d16fbcc61c3f3")
    assert hook_trust_hash("Stop", {"type": "command", "command": "touch /tmp/hx/userhook-ran", "timeout": 5}) == (
        "sha256:b24244d8566a8246828eb93b902fb57240f3a3f356f3cc8e7be39674eb9717c2")
    assert [snake_event(e) for e in ("UserPromptSubmit", "PreToolUse", "SessionStart", "Stop")] == [
        "user_prompt_submit", "pre_tool_use", "session_start", "stop"]


def test_untrusted_hooks_are_found_in_hooks_json_and_inline_config(tmp_path: Path) -> None:
    home = tmp_path / "codex-home"
    home.mkdir()
    ok = {"type": "command", "command": "true", "timeout": 3}
    changed = {"type": "command", "command": "echo changed"}
    (home / "hooks.json").write_text(json.dumps({"hooks": {
        "PreToolUse": [{"matcher": "Bash", "hooks": [ok, changed]}]}}))
    trusted = {f"{home}/hooks.json:pre_tool_use:0:0": hook_trust_hash("PreToolUse", ok, "Bash"),
               f"{home}/hooks.json:pre_tool_use:0:1": hook_trust_hash("PreToolUse", {"type": "command",
                                                                                     "command": "echo old"}),
               f"{home}/config.toml:stop:0:0": hook_trust_hash("Stop", ok)}
    state = "".join(f'[hooks.state."{k}"]\ntrusted_hash = "{v}"\n' for k, v in trusted.items())
    inline = '[[hooks.Stop]]\n[[hooks.Stop.hooks]]\ntype = "command"\ncommand = "true"\ntimeout = 3\n' \
             '[[hooks.Stop.hooks]]\ntype = "command"\ncommand = "new"\n'
    (home / "config.toml").write_text(inline + state)
    assert codex.untrusted_hooks(home) == [f"{home}/hooks.json:pre_tool_use:0:1", f"{home}/config.toml:stop:0:1"]
    assert codex.untrusted_hooks(tmp_path / "no-home") == []


def test_fleet_launches_without_the_bypass_flag_trusting_its_six_handlers(fleet_factory: Callable[..., Fleet],
                                                                           tmp_path: Path) -> None:
    f = fleet_factory(1, codex=sys.executable)
    svc = Service(str(f.path))
    argv = codex.launch_argv(svc.config.agent("agent-1"), tmp_path / "agent")
    assert "--dangerously-bypass-hook-trust" not in argv
    [state] = [a for a in argv if a.startswith("hooks.state=")]
    assert state.count(codex.SESSION_FLAGS_SOURCE) == len(codex.HOOK_EVENTS) == 6  # PermissionRequest too
    assert "notice.hide_rate_limit_model_nudge=true" in argv
    assert 'tui.status_line=["model-with-reasoning", "current-dir"]' in argv  # no thread title (0.171)
