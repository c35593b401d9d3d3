"""No fleet process imports from its working directory. `python -m` puts the cwd first on sys.path,
and fleet's own processes start in directories an agent can write (the MCP server in the Codex
session's directory, the verifier wherever the caller stood, the watchdog unit in a home). An agent
that plants `fleet/__init__.py` or `json.py` there must never get it run: each planted module here
writes a marker, and every real fleet command line is started in that directory."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Fleet, wait_until

from fleet.agents.lead import server_table
from fleet.config import load_config
from fleet.install.bundle import server_argv
from fleet.service import Service, tracking
from fleet.watchdog.units import fleet_command

PLANTED = ("fleet/__init__.py", "json.py", "typer.py", "sqlite3.py")


@pytest.fixture
def planted(tmp_path: Path) -> tuple[Path, Path]:
    """A directory holding modules that record being imported; returns (directory, marker dir)."""
    where = tmp_path / "agent-wrote-this"
    markers = tmp_path / "markers"
    markers.mkdir()
    for name in PLANTED:
        path = where / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"open({str(markers / name.replace('/', '_'))!r}, 'w').write('imported')\n")
    return where, markers


def run_in(cwd: Path, argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
                          check=False)


def test_the_plugins_mcp_server_imports_nothing_from_its_cwd(planted: tuple[Path, Path]) -> None:
    where, markers = planted
    proc = run_in(where, server_argv())  # stdin at EOF: the server starts, then ends
    assert list(markers.iterdir()) == [], proc.stderr
    assert "imported" not in proc.stdout


def test_a_leads_mcp_server_imports_nothing_from_its_cwd(planted: tuple[Path, Path],
                                                         fleet_factory: Callable[..., Fleet]) -> None:
    where, markers = planted
    f = fleet_factory(1, agent_extra='role = "lead"\n')
    config = load_config(str(f.path))
    table = server_table(config.agents["agent-1"], f.path, f.state_dir)
    argv = [str(table["command"]), *map(str, table["args"])]  # type: ignore[call-overload]
    proc = subprocess.run(argv, cwd=where, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
                          env={**os.environ, **table["env"]}, check=False)  # type: ignore[dict-item]
    assert list(markers.iterdir()) == [], proc.stderr


def test_the_watchdog_units_fallback_command_imports_nothing_from_its_cwd(planted: tuple[Path, Path],
                                                                         tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    where, markers = planted
    venv = tmp_path / "venv-alias"  # this venv, seen through a directory with no `fleet` script in bin/
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    (venv / "lib").symlink_to(Path(sys.prefix) / "lib")
    (venv / "pyvenv.cfg").write_bytes((Path(sys.prefix) / "pyvenv.cfg").read_bytes())
    monkeypatch.setattr(sys, "executable", str(venv / "bin" / "python"))
    command = fleet_command()
    assert command[0] == sys.executable  # the `python -m fleet` fallback
    proc = run_in(where, [*command, "--version"])
    assert proc.returncode == 0, proc.stderr
    assert list(markers.iterdir()) == []


def test_the_detached_verifier_imports_nothing_from_its_callers_cwd(planted: tuple[Path, Path],
                                                                    fleet_factory: Callable[..., Fleet],
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    where, markers = planted
    f = fleet_factory(1)
    svc = Service(config_path=str(f.path), surface="api")
    try:
        assert svc.ledger.path.exists()  # the state dir is made, as by any earlier call
        monkeypatch.chdir(where)  # a CLI call or an MCP server standing in the agent's directory
        tracking._spawn_verifier(svc, "as-nothing-here")
        [proc] = [p for p in tracking._verifiers if p.args[-1] == "as-nothing-here"]
        proc.wait(timeout=60)
    finally:
        svc.close()
    assert list(markers.iterdir()) == []
    log = f.state_dir / tracking.VERIFY_LOG
    wait_until(lambda: "as-nothing-here" in log.read_text(), timeout=10)  # fleet's own verifier ran
