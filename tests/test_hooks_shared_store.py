"""Codex's approval hook reads only the local lease files. When the fleet keeps its leases in the
shared store (the marker `fleet.service.core` writes), the hook cannot tell who holds the agent, so it
makes no decision of its own and a person (or the watchdog) decides: it fails closed."""

from __future__ import annotations

from pathlib import Path

from fleet.config.watchdog import ApprovalPolicy
from fleet.hooks.approve import decide
from fleet.hooks.gates import HookContext, write_context
from fleet.leases.files import SHARED_STORE_MARKER
from fleet.watchdog.policyfile import sync

AS_ID = "as-01JABCDEFGHJKMNPQRSTVWXYZ0"


def agent_dir(tmp_path: Path) -> Path:
    state, work = tmp_path / "state", tmp_path / "work"
    agent = state / "agents" / "a"
    agent.mkdir(parents=True, mode=0o700)
    work.mkdir()
    (work / "README.md").write_text("hello\n")
    write_context(agent, HookContext(assignment=AS_ID, role="worker", cwd=str(work), write_paths=("docs/",)))
    sync(agent, ApprovalPolicy(allow=frozenset({"read-only"}), otherwise="ask"), work, [str(work)])
    return agent


def test_the_hook_decides_on_a_free_agent_of_an_embedded_fleet(tmp_path: Path) -> None:
    assert decide(agent_dir(tmp_path), "Bash", "cat README.md", cwd=str(tmp_path / "work")) is not None


def test_the_hook_leaves_the_decision_to_a_person_when_leases_are_in_the_shared_store(tmp_path: Path) -> None:
    agent = agent_dir(tmp_path)
    marker = tmp_path / "state" / "leases" / SHARED_STORE_MARKER
    marker.parent.mkdir(mode=0o700)
    marker.touch()
    assert decide(agent, "Bash", "cat README.md", cwd=str(tmp_path / "work")) is None
