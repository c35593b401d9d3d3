"""A `./fleet.toml` is used only after `fleet trust` recorded its path and exact content.

The hostile repository: its fleet.toml names a `codex` that writes a marker when run, and a
`state_dir` holding a fleet.db with a reported assignment whose check writes another marker. The
user runs fleet's reads in that directory (the CLI, and the MCP server a Codex plugin starts there):
each is refused, and neither marker ever appears. No Codex needed: nothing may start.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import Fleet, sent_in_ledger
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcpclient import mcp_session

from fleet.config import load_config
from fleet.config.trust import check_trusted, revoke, store_path, trust, trusted
from fleet.errors import ConfigError, ConfigUntrusted

MINIMAL = '[agents.mila]\nhome = "h"\ncwd = "."\n'


def fleet_in(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`fleet ARGS` run in `cwd` with no --config and no $FLEET_CONFIG: what finds ./fleet.toml."""
    env = {k: v for k, v in os.environ.items() if k != "FLEET_CONFIG"}
    return subprocess.run([sys.executable, "-m", "fleet", *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=60, check=False)


def error_code(proc: subprocess.CompletedProcess[str]) -> str:
    return str(json.loads(proc.stdout)["error"]["code"])


@pytest.fixture
def hostile(fleet_factory: Callable[..., Fleet], tmp_path: Path) -> Fleet:
    """A repository whose fleet.toml runs a marker-writing `codex` and whose ledger holds a reported
    assignment (report in the journal) with a marker-writing check: what a read would set off."""
    codex = tmp_path / "evil-codex"
    codex.write_text(f"#!/bin/sh\ntouch {tmp_path / 'codex-ran'}\necho codex-cli 0.169.0\n")
    codex.chmod(0o755)
    f = fleet_factory(1, codex=str(codex), agent_extra='role = "worker"\n')
    aid = sent_in_ledger(f, f.agents[0], task="Look around", checks=[f"touch {tmp_path / 'check-ran'}"])
    body = {"status": "done", "summary": "Looked.", "changed": [], "tests": "", "risks": ""}
    journal = f.state_dir / "agents" / f.agents[0] / "events.jsonl"
    journal.parent.mkdir(parents=True, exist_ok=True)
    journal.write_text(json.dumps({"event": "turn_started", "turn_id": "t1", "time": 1.0}) + "\n"
                       + json.dumps({"event": "turn_completed", "turn_id": "t1", "time": 2.0,
                                     "last_message": f"```fleet-report\n{json.dumps(body)}\n```"}) + "\n")
    assert aid
    return f


def markers(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in tmp_path.iterdir() if p.name in ("codex-ran", "check-ran"))


def test_the_cli_refuses_an_untrusted_fleet_toml_in_the_current_directory(hostile: Fleet, tmp_path: Path) -> None:
    for command in (["status"], ["assignments"], ["show", "as-" + "0" * 26], ["leases"], ["up"], ["install"],
                    ["watchdog", "tick", "--dry-run"]):
        proc = fleet_in(hostile.root, *command, "--json")
        assert proc.returncode == 2, (command, proc.stderr)
        assert error_code(proc) == "config_untrusted", (command, proc.stdout)
        assert f"fleet trust {hostile.path}" in proc.stderr
    doctor = fleet_in(hostile.root, "doctor", "--json")  # doctor reports it as its config check
    assert doctor.returncode == 1
    [config] = [c for c in json.loads(doctor.stdout)["checks"] if c["name"] == "config"]
    assert not config["ok"]
    assert "is not trusted" in config["detail"]
    assert "fleet trust" in config["hint"]
    assert markers(tmp_path) == []


def test_after_fleet_trust_it_works_and_after_an_edit_it_is_refused_again(hostile: Fleet, tmp_path: Path) -> None:
    trusted_proc = fleet_in(hostile.root, "trust", "--json")
    assert trusted_proc.returncode == 0, trusted_proc.stderr
    record = json.loads(trusted_proc.stdout)
    assert record["path"] == str(hostile.path.resolve())
    assert record["sha256"].startswith("sha256:")
    assert str(tmp_path / "evil-codex") in record["config"]["programs"]  # the person sees what it runs
    status = fleet_in(hostile.root, "status", "--json")
    assert status.returncode == 0, status.stderr
    assert [a["name"] for a in json.loads(status.stdout)["agents"]] == hostile.agents
    fleet_in(hostile.root, "doctor")
    assert markers(tmp_path) == ["codex-ran"]  # the marker is real: a trusted config's codex does run
    with hostile.path.open("a") as f:
        f.write("# one more line\n")
    proc = fleet_in(hostile.root, "assignments", "--json")
    assert error_code(proc) == "config_untrusted"
    assert "changed since you trusted it" in proc.stderr
    assert markers(tmp_path) == ["codex-ran"]  # the check never ran
    assert fleet_in(hostile.root, "trust", "--revoke").returncode == 0
    assert trusted() == []


def test_a_config_the_user_names_needs_no_trust(hostile: Fleet) -> None:
    assert fleet_in(hostile.root, "--config", str(hostile.path), "status", "--json").returncode == 0
    env_named = subprocess.run([sys.executable, "-m", "fleet", "status", "--json"], cwd=hostile.root,
                               env={**os.environ, "FLEET_CONFIG": str(hostile.path)}, capture_output=True,
                               text=True, check=False)
    assert env_named.returncode == 0, env_named.stderr


def test_the_mcp_server_in_an_untrusted_directory_refuses_every_read(hostile: Fleet, tmp_path: Path) -> None:
    with mcp_session(None, tmp_path / "mcp.log", cwd=hostile.root) as mcp:  # as the Codex plugin starts it
        [config] = [c for c in mcp.ok("fleet_doctor")["checks"] if c["name"] == "config"]
        assert not config["ok"]
        assert "is not trusted" in config["detail"]
        for tool, args in (("assignment_list", {}), ("fleet_status", {}), ("fleet_events", {}),
                           ("assignment_wait", {"assignments": ["as-" + "0" * 26], "timeout": 0}),
                           ("fleet_install", {}), ("watchdog_tick", {"dry_run": True})):
            error = mcp.error(tool, args)
            assert error["code"] == "config_untrusted", (tool, error)
            assert "fleet trust" in error["hint"]
        assert "fleet_trust" not in {t.name for t in mcp.list_tools()}  # a model can never trust a config
    assert markers(tmp_path) == []


# ---- the store --------------------------------------------------------------------------------------

def test_trust_is_for_one_path_and_one_content(tmp_path: Path) -> None:
    a, b = tmp_path / "a" / "fleet.toml", tmp_path / "b" / "fleet.toml"
    for p in (a, b):
        p.parent.mkdir()
        p.write_text(MINIMAL)
    trust(a)
    check_trusted(a, a.read_bytes())
    with pytest.raises(ConfigUntrusted):
        check_trusted(b, b.read_bytes())  # same bytes, another path
    with pytest.raises(ConfigUntrusted, match="changed since"):
        check_trusted(a, a.read_bytes() + b"\n")
    assert revoke(a)
    assert not revoke(a)
    with pytest.raises(ConfigUntrusted, match="is not trusted"):
        check_trusted(a, a.read_bytes())


def test_a_fleet_toml_symlinked_to_a_config_trusted_elsewhere_is_not_trusted(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """An agent that writes repository b could plant `b/fleet.toml -> ../a/fleet.toml` and so point
    your fleet in b at another fleet you trusted: the link's own place is what must be trusted."""
    a, b = tmp_path / "a" / "fleet.toml", tmp_path / "b" / "fleet.toml"
    a.parent.mkdir()
    b.parent.mkdir()
    a.write_text(MINIMAL)
    b.symlink_to(a)
    trust(a)
    with pytest.raises(ConfigUntrusted, match="is not trusted"):
        check_trusted(b, b.read_bytes())
    monkeypatch.chdir(b.parent)
    monkeypatch.delenv("FLEET_CONFIG", raising=False)
    with pytest.raises(ConfigUntrusted):
        load_config()
    with pytest.raises(ConfigError, match="is a symlink"):
        trust(b)  # nor can the link be trusted: name the real config with --config instead


def test_the_store_is_private_to_the_user(tmp_path: Path) -> None:
    p = tmp_path / "fleet.toml"
    p.write_text(MINIMAL)
    trust(p)
    store = store_path()
    assert store.stat().st_mode & 0o777 == 0o600
    assert store.parent.stat().st_mode & 0o777 == 0o700
    assert str(store).startswith(os.environ["XDG_STATE_HOME"])  # the user's state, not the repository


@pytest.mark.parametrize("mode", [0o620, 0o602])
def test_a_store_others_can_write_trusts_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: int) -> None:
    p = tmp_path / "fleet.toml"
    p.write_text(MINIMAL)
    trust(p)
    store_path().chmod(mode)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigUntrusted, match="not yours alone"):
        load_config()


def test_a_symlinked_store_trusts_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "fleet.toml"
    p.write_text(MINIMAL)
    trust(p)
    real = tmp_path / "elsewhere.json"
    store_path().rename(real)
    store_path().symlink_to(real)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigUntrusted, match="not a regular file"):
        load_config()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(trusted_bytes=st.binary(max_size=200), used_bytes=st.binary(max_size=200))
def test_only_the_exact_trusted_bytes_pass(tmp_path_factory: pytest.TempPathFactory, trusted_bytes: bytes,
                                           used_bytes: bytes) -> None:
    path = tmp_path_factory.mktemp("t") / "fleet.toml"
    path.write_bytes(trusted_bytes)
    trust(path)
    if used_bytes == trusted_bytes:
        check_trusted(path, used_bytes)
    else:
        with pytest.raises(ConfigUntrusted):
            check_trusted(path, used_bytes)


def test_the_bytes_judged_are_the_bytes_parsed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file swapped after the check cannot be parsed unjudged: load_config reads it once. Simulated
    by swapping the file from inside the trust check (the one moment a race could use)."""
    p = tmp_path / "fleet.toml"
    p.write_text(MINIMAL)
    trust(p)
    monkeypatch.chdir(tmp_path)
    import fleet.config.trust as ct

    real_check = ct.check_trusted

    def swap_then_check(path: Path, data: bytes) -> Any:
        path.write_text(MINIMAL.replace("mila", "evil"))
        return real_check(path, data)

    monkeypatch.setattr(ct, "check_trusted", swap_then_check)
    assert list(load_config().agents) == ["mila"]
