"""Hook trust without `--dangerously-bypass-hook-trust`: fleet trusts exactly its own handlers."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

from conftest import Fleet, wait_until
from mockmodel import MockServer

from fleet.agents import codex
from fleet.agents.codex import hook_trust_hash
from fleet.service import Service


def user_stop_hook(home: Path, marker: Path) -> dict[str, object]:
    handler = {"type": "command", "command": f"sh -c 'echo ran >> {marker}'", "timeout": 5}
    home.mkdir(parents=True, exist_ok=True)
    (home / "hooks.json").write_text(json.dumps({"hooks": {"Stop": [{"hooks": [handler]}]}}))
    return handler


def test_an_untrusted_user_hook_is_never_run_and_keeps_the_agent_from_starting(
        fleet_factory: Callable[..., Fleet], mock_model: MockServer, tmp_path: Path) -> None:
    f = fleet_factory(1, model=mock_model)
    home = f.root / "homes" / "agent-1"
    marker = tmp_path / "user-hook-ran"
    user_stop_hook(home, marker)
    proc = f.cli("up", "--json")
    assert proc.returncode == 1
    error = json.loads(proc.stdout)["error"]
    assert error["code"] == "hooks_untrusted"
    assert error["hooks"] == [f"{home}/hooks.json:stop:0:0"]
    assert "review" in error["hint"].lower()
    assert f.tmux("list-sessions").returncode != 0
    assert not marker.exists()


def test_codex_itself_holds_the_users_untrusted_hook_and_trusts_fleets_own(
        fleet_factory: Callable[..., Fleet], mock_model: MockServer, tmp_path: Path) -> None:
    """Past fleet's own check (launched directly), Codex asks to review exactly one hook: the user's."""
    f = fleet_factory(1, model=mock_model)
    marker = tmp_path / "user-hook-ran"
    user_stop_hook(f.root / "homes" / "agent-1", marker)
    svc = Service(str(f.path))
    spec = svc.config.agent("agent-1")
    svc.runtime.prepare(dataclasses.replace(spec, home=tmp_path / "empty-home"))  # dirs, no hook check
    svc.runtime.launch(spec, codex.launch_command(spec, svc.runtime.agent_dir("agent-1")))
    screen = wait_until(lambda: "Hooks need review" in (s := svc.runtime.tmux.capture("agent-1")) and s, 30)
    assert "1 hook is new or changed" in screen
    svc.runtime.stop(spec)
    assert not marker.exists()


def test_a_user_hook_the_user_trusted_runs_beside_fleets_own(fleet_factory: Callable[..., Fleet],
                                                             mock_model: MockServer, tmp_path: Path) -> None:
    f = fleet_factory(1, model=mock_model)
    home = f.root / "homes" / "agent-1"
    marker = tmp_path / "user-hook-ran"
    handler = user_stop_hook(home, marker)
    config = f'[hooks.state."{home}/hooks.json:stop:0:0"]\ntrusted_hash = "{hook_trust_hash("Stop", handler)}"\n'
    (home / "config.toml").write_text(config)
    assert f.json("up")["agents"][0]["result"] == "started"
    receipt = f.json("send", "agent-1", "hello")  # fleet's UserPromptSubmit hook gives the receipt
    done = wait_until(lambda: (s := f.status("agent-1"))["state"] == "idle" and s, 30)
    assert (done["last_turn"]["turn_id"], done["last_turn"]["outcome"]) == (receipt["turn_id"], "completed")
    assert [e["source"] for e in f.journal("agent-1") if e["event"] == "turn_completed"] == ["hook"]  # Stop
    wait_until(marker.exists, 10)
    assert marker.read_text() == "ran\n"  # once: fleet does not copy the user's hooks into its own layer
    text = (home / "config.toml").read_text()
    assert text.startswith(config)  # fleet never edits the home's config (Codex adds its own keys)
    assert "receiver.py" not in text


