"""The worktree operations without a running Codex: `--repo` routing, what diff and merge refuse,
a repo agent's worktree as `up` makes it (its base recorded at first start), `fleet worktrees`, and
`fleet worktree-prune` of an agent no longer configured, through the real CLI and the service."""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import Fleet
from gitrepos import commit_file, git, make_repo

from fleet.agents.writable import Roots, find_exposures, own_worktrees_allowed, worktree_exposures
from fleet.config import load_config
from fleet.service import Service
from fleet.service.worktree import ensure_agent_worktree, recorded


def error(f: Fleet, *args: str) -> dict[str, Any]:
    proc = f.cli(*args, "--json")
    assert proc.returncode != 0, proc.stdout
    err: dict[str, Any] = json.loads(proc.stdout)["error"]
    assert err["hint"]
    return err


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "shop")


@pytest.fixture
def fleet(fleet_factory: Callable[..., Fleet], repo: Path) -> Fleet:
    """agent-1 and agent-2 workers in worktrees of `repo`, agent-3 a worker with a plain cwd."""
    f = fleet_factory(3, agent_extra='role = "worker"')
    text = re.sub(r'(?m)^cwd = "[^"]*/agent-[12]"$', f"repo = {json.dumps(str(repo))}", f.path.read_text())
    f.path.write_text(text)
    return f


def test_repo_restricts_routing_to_that_repositorys_agents(fleet: Fleet, repo: Path, tmp_path: Path) -> None:
    queued = fleet.json("assign", "--queue", "--repo", str(repo), "--write", "src/", "Fix the cart")
    assert queued["state"] == "queued"
    shown = fleet.json("show", queued["assignment"])
    assert (shown["repo"], shown["branch"]) == (os.path.realpath(repo), None)
    err = error(fleet, "assign", "--queue", "--repo", str(tmp_path / "elsewhere"), "Fix it")
    assert (err["code"], err["repo"]) == ("invalid_input", str(tmp_path / "elsewhere"))
    err = error(fleet, "assign", "--to", "agent-3", "--repo", str(repo), "Fix it")
    assert err["code"] == "invalid_input"
    assert "agent-3" in err["message"]


def test_diff_and_merge_refuse_work_that_has_no_branch(fleet: Fleet, repo: Path) -> None:
    plain = fleet.json("assign", "--queue", "--to", "agent-3", "Look around")["assignment"]
    queued = fleet.json("assign", "--queue", "--repo", str(repo), "Look around")["assignment"]
    for aid in (plain, queued):
        assert error(fleet, "diff", aid)["code"] == "invalid_input"
        assert error(fleet, "merge", aid)["code"] == "invalid_input"
    assert error(fleet, "merge", "--into", "-x", queued)["code"] == "invalid_input"


def test_a_repo_agents_worktree_is_made_once_with_its_base_recorded_and_listed(fleet: Fleet, repo: Path) -> None:
    with contextlib.closing(Service(config_path=fleet.path, surface="cli")) as svc:
        spec = svc.config.agent("agent-1")
        made = ensure_agent_worktree(svc, spec)
        assert made is not None
        assert (made["base"], made["created"]) == ("main", True)
        assert recorded(svc, "agent-1")["base"] == "main"
        git(repo, "checkout", "-q", "-b", "topic")  # the user's checkout moves; the agent's base does not
        again = ensure_agent_worktree(svc, spec)
        assert again is not None
        assert (again["base"], again["created"], again["path"]) == ("main", False, made["path"])
        assert ensure_agent_worktree(svc, svc.config.agent("agent-3")) is None
    assert Path(made["path"]) == (fleet.state_dir / "worktrees" / "agent-1").resolve()
    (Path(made["path"]) / "notes.txt").write_text("ad hoc\n")
    listed = {w["agent"]: w for w in fleet.json("worktrees")["worktrees"]}
    assert sorted(listed) == ["agent-1", "agent-2"]  # agent-3 has no repo
    w = listed["agent-1"]
    assert (w["state"], w["dirty"], w["configured"], w["unmerged"], w["branch"]) == (
        "dirty", ["notes.txt"], True, [], None)
    assert listed["agent-2"]["state"] == "absent"  # not started yet
    assert "agent-1" in fleet.cli("worktrees").stdout


def test_prune_removes_a_gone_agents_worktree_but_nothing_unmerged_without_force(fleet: Fleet, repo: Path) -> None:
    with contextlib.closing(Service(config_path=fleet.path, surface="cli")) as svc:
        for name in ("agent-1", "agent-2"):
            ensure_agent_worktree(svc, svc.config.agent(name))
    wt2 = fleet.state_dir / "worktrees" / "agent-2"
    git(wt2, "checkout", "-q", "-b", "mine")
    commit_file(wt2, "mine.txt", "work of my own\n")
    fleet.path.write_text(fleet.path.read_text().replace("[agents.agent-2]", "[agents.old-2]"))
    listed = {w["agent"]: w for w in fleet.json("worktrees")["worktrees"]}
    assert listed["agent-2"]["configured"] is False
    err = error(fleet, "worktree-prune")
    assert err["code"] == "unmerged_work"
    assert wt2.is_dir()
    pruned = fleet.json("worktree-prune", "--force")
    assert pruned["worktrees"] == [str(wt2.resolve())]
    assert not wt2.exists()
    assert (fleet.state_dir / "worktrees" / "agent-1").is_dir()
    assert fleet.json("worktree-prune")["worktrees"] == []  # nothing left to do: a no-op


def test_a_dirty_worktree_refuses_work_named_for_its_agent_before_anything_is_written(fleet: Fleet) -> None:
    with contextlib.closing(Service(config_path=fleet.path, surface="cli")) as svc:
        made = ensure_agent_worktree(svc, svc.config.agent("agent-1"))
    assert made is not None
    (Path(made["path"]) / "scratch.txt").write_text("left from ad-hoc work\n")
    err = error(fleet, "assign", "--to", "agent-1", "--queue", "--write", "src/", "Fix the cart")
    assert (err["code"], err["files"]) == ("worktree_dirty", ["scratch.txt"])
    assert fleet.json("assignments")["assignments"] == []
    assert (Path(made["path"]) / "scratch.txt").read_text() == "left from ad-hoc work\n"  # nothing stashed


def test_a_worktree_another_sandboxed_agent_can_write_is_an_exposure(fleet: Fleet) -> None:
    """agent-3 (a worker with a plain cwd) may write an extra root holding agent-1's worktree; a
    repo agent's own worktree under the state dir is not an exposure of the state dir."""
    config = load_config(fleet.path)
    wt1 = (fleet.state_dir / "worktrees" / "agent-1").resolve()
    roots = [Roots("agent-3", "workspace-write", (fleet.state_dir.resolve() / "worktrees",)),
             Roots("agent-1", "workspace-write", (wt1,))]
    found = worktree_exposures(roots, config)
    assert sorted((e.agent, e.what) for e in found) == [("agent-3", "the worktree of agent-1"),
                                                         ("agent-3", "the worktree of agent-2")]
    assert worktree_exposures(roots[1:], config) == []
    state = [("the state dir", fleet.state_dir.resolve(), True)]
    assert own_worktrees_allowed(find_exposures(roots[1:], state), config) == []
