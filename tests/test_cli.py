"""The CLI surface: one clear line on stderr for expected failures, JSON errors, exit statuses."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from conftest import Fleet

from fleet import __version__


def fleet(*args: str, cwd: Path | None = None, input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fleet", *args], capture_output=True, text=True, cwd=cwd,
                          input=input_text, timeout=60, check=False)


def assert_clean_error(proc: subprocess.CompletedProcess[str], code: str, status: int = 1) -> dict[str, str]:
    assert proc.returncode == status, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"fleet: {code}: ")
    assert "Traceback" not in proc.stderr
    if proc.stdout.strip():
        error: dict[str, str] = json.loads(proc.stdout)["error"]
        assert error["code"] == code
        assert error["message"]
        assert error["hint"]
        return error
    return {}


def test_version_prints_the_package_version() -> None:
    proc = fleet("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"fleet {__version__}"


def test_missing_config_is_one_line_with_a_hint(tmp_path: Path) -> None:
    proc = fleet("status", cwd=tmp_path)
    assert_clean_error(proc, "config_not_found", 2)
    assert "fleet.toml" in proc.stderr


def test_malformed_toml_fails_with_json_error(tmp_path: Path) -> None:
    (tmp_path / "fleet.toml").write_text("[agents\n")
    assert fleet("trust", cwd=tmp_path).returncode == 0  # a ./fleet.toml is parsed only once trusted
    error = assert_clean_error(fleet("status", "--json", cwd=tmp_path), "config_invalid", 2)
    assert "fleet.toml" in error["message"]


def test_unknown_agent_is_refused_with_the_known_names(fleet_factory: Callable[..., Fleet]) -> None:
    f = fleet_factory(2)
    error = assert_clean_error(f.cli("send", "nobody", "hi", "--json"), "unknown_agent", 2)
    assert "agent-1" in error["hint"]


def test_bad_agent_name_is_invalid_input(fleet_factory: Callable[..., Fleet]) -> None:
    f = fleet_factory(1)
    assert_clean_error(f.cli("tail", "Bad_Name", "--json"), "invalid_input", 2)


def test_send_to_a_stopped_agent_is_refused_and_nothing_starts(fleet_factory: Callable[..., Fleet]) -> None:
    f = fleet_factory(1)
    error = assert_clean_error(f.cli("send", "agent-1", "hello", "--json"), "agent_not_running")
    assert "fleet up agent-1" in error["hint"]
    assert f.tmux("list-sessions").returncode != 0  # no server was started


def test_oversized_text_is_refused_before_anything_happens(fleet_factory: Callable[..., Fleet]) -> None:
    f = fleet_factory(1)
    proc = f.cli("send", "agent-1", "-", "--json", input_text="x" * 32001)
    assert_clean_error(proc, "invalid_input", 2)
    assert not (f.state_dir / "agents" / "agent-1" / "events.jsonl").exists()


def test_missing_codex_fails_before_any_session_exists(fleet_factory: Callable[..., Fleet]) -> None:
    f = fleet_factory(2, codex="/nonexistent/codex")
    assert_clean_error(f.cli("up", "--json"), "codex_missing", 4)
    assert f.tmux("list-sessions").returncode != 0


def test_missing_cwd_names_the_agent_key(fleet_factory: Callable[..., Fleet]) -> None:
    f = fleet_factory(2, codex=sys.executable)
    (f.root / "work" / "agent-2").rmdir()
    error = assert_clean_error(f.cli("up", "--json"), "config_invalid", 2)
    assert "$.agents.agent-2.cwd" in error["message"]
    assert f.tmux("list-sessions").returncode != 0  # agent-1 was not started either


def test_missing_tmux_is_an_environment_fault(fleet_factory: Callable[..., Fleet], tmp_path: Path) -> None:
    f = fleet_factory(1, codex=sys.executable)
    empty = tmp_path / "bin"
    empty.mkdir()
    proc = f.cli("up", env={"PATH": str(empty)})
    assert_clean_error(proc, "tmux_missing", 4)


def test_status_of_a_fresh_fleet_lists_stopped_agents(fleet_factory: Callable[..., Fleet]) -> None:
    f = fleet_factory(3)
    result = f.json("status")
    assert [a["name"] for a in result["agents"]] == f.agents
    assert {a["state"] for a in result["agents"]} == {"stopped"}
    for agent in result["agents"]:
        assert {"name", "state", "role", "pid", "home", "cwd", "since", "last_turn"} <= set(agent)
    table = f.cli("status")
    assert table.returncode == 0
    assert "agent-3" in table.stdout
    assert "stopped" in table.stdout


def test_doctor_reports_each_check(fleet_factory: Callable[..., Fleet]) -> None:
    f = fleet_factory(1, codex="/nonexistent/codex")
    proc = f.cli("doctor", "--json")
    result = json.loads(proc.stdout)
    assert proc.returncode == 1
    names = {c["name"]: c for c in result["checks"]}
    assert names["tmux"]["ok"]
    assert names["config"]["ok"]
    assert not names["codex agent-1"]["ok"]
    assert "/nonexistent/codex" in names["codex agent-1"]["detail"]
    assert names["codex agent-1"]["hint"]
