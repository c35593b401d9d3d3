"""On real Codex: a sandboxed worker cannot forge fleet's control plane (issue 12, item 11).

The proven attack: with the state dir under /tmp and a default workspace-write worker, the worker's
shell wrote `approve-policy.json` into fleet's state dir, and its next escalation was auto-approved.
Now `up` refuses that layout (tests/test_agents_control_plane.py); here the scripted model plays the hostile
worker in the layout `up` accepts (its /tmp and $TMPDIR excluded) and tries the same writes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from conftest import Fleet, wait_until
from mockmodel import MockServer
from mocksteps import Step


def content(path: Path) -> bytes | None:
    return path.read_bytes() if path.exists() else None


def test_a_sandboxed_worker_cannot_write_fleets_state_or_homes(fleet_factory: Callable[..., Fleet],
                                                               mock_model: MockServer) -> None:
    f = fleet_factory(2, model=mock_model, codex_args=("-a", "never"), agent_extra='role = "worker"\n')
    assert f.json("up")["ok"]
    policy = f.state_dir / "agents" / "agent-1" / "approve-policy.json"
    before = content(policy)  # none: no [watchdog] approve policy is configured
    other_home = f.root / "homes" / "agent-2" / "config.toml"
    journal = f.state_dir / "agents" / "agent-2" / "events.jsonl"
    journal_before = content(journal)
    cwd = f.root / "work" / "agent-1"
    forge = (f"echo ran > {cwd / 'ran.txt'}; "
             f"echo '{{\"allow\": [\"any\"]}}' > {policy}; "
             f"echo 'notify = [\"sh\"]' >> {other_home}; "
             f"echo '{{\"event\": \"turn_completed\"}}' >> {journal}; "
             f"echo x > {f.root / 'tmp-marker'}")
    mock_model.model.script(Step(tool=("exec_command", {"cmd": forge})), Step(text="Tried."))
    f.json("send", "agent-1", "Write the files.")
    wait_until((cwd / "ran.txt").exists, timeout=30)  # the command ran, in its sandbox
    wait_until(lambda: f.status("agent-1")["state"] == "idle", timeout=30)
    assert content(policy) == before
    assert not other_home.exists() or "notify" not in other_home.read_text()
    assert content(journal) == journal_before
    assert not (f.root / "tmp-marker").exists()
