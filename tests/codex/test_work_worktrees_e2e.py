"""Many agents, one repository, end to end: real git, real Codex workers in real tmux against the
scripted model, driven through the real CLI. Each worker has its own worktree, each assignment its
own branch; verified work is committed there and merged into the base, and a conflict changes
nothing."""

from __future__ import annotations

import json
import os
import re
import signal
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from conftest import Fleet, wait_until
from gitrepos import git, make_repo, rev, tree_digest
from mockmodel import MockServer
from mocksteps import Step
from test_watchdog_tick import policy, tick

WORKER = 'role = "worker"'


def report(changed: tuple[str, ...], summary: str) -> str:
    body = {"status": "done", "summary": summary, "changed": list(changed), "tests": "", "risks": "none known"}
    return f"Finished.\n```fleet-report\n{json.dumps(body)}\n```"


def patch(*hunks: str) -> Step:
    return Step(tool=("apply_patch", {"input": "\n".join(["*** Begin Patch", *hunks, "*** End Patch"]) + "\n"}))


def add(name: str, text: str) -> str:
    return f"*** Add File: {name}\n+{text}"


def set_a(value: str) -> str:
    return f"*** Update File: app.py\n@@\n-a = 1\n+a = {value}\n b = 2"


def repo_fleet(fleet_factory: Callable[..., Fleet], mock_model: MockServer, repo: Path, n: int) -> Fleet:
    """`n` workers whose `[defaults] repo` is `repo` (the factory's per-agent cwd lines taken out)."""
    f = fleet_factory(n, model=mock_model, agent_extra=WORKER, catalog=True, extra=f"repo = {json.dumps(str(repo))}")
    f.path.write_text(re.sub(r"(?m)^cwd = .*$", "", f.path.read_text()))
    return f


def events(f: Fleet, aid: str, kind: str) -> list[dict[str, Any]]:
    return [e for e in f.json("show", aid)["events"] if e["kind"] == kind]


def test_two_workers_on_one_repository_are_isolated_verified_committed_and_merged(
        tmp_path: Path, fleet_factory: Callable[..., Fleet], mock_model: MockServer) -> None:
    repo = make_repo(tmp_path / "shop")
    f = repo_fleet(fleet_factory, mock_model, repo, 2)
    up = f.json("up")
    assert up["ok"], up
    wt = {a: f.state_dir / "worktrees" / a for a in f.agents}
    assert all((p / "app.py").is_file() for p in wt.values())

    model = mock_model.model
    hold = threading.Event()  # the cart work is still running when the search work starts
    model.converse("TASK-CART", replace(patch(add("cart.py", "coupons = []"), set_a("10")), gate=hold),
                   Step(text=report(("cart.py", "app.py"), "Coupons in the cart")))
    search = model.converse("TASK-SEARCH", patch(add("search.py", "fuzzy = True")),
                            Step(text=report(("search.py",), "Typo-tolerant search")))
    a = f.json("assign", "--to", "agent-1", "--write", "cart.py", "--write", "app.py", "TASK-CART: add coupons")
    b = f.json("assign", "--to", "agent-2", "--write", "search.py", "TASK-SEARCH: tolerate typos")
    hold.set()
    aid, bid = a["assignment"], b["assignment"]
    done = {d["id"]: d for d in f.json("wait", aid, bid, "--timeout", "120")["done"]}
    assert done[aid]["state"] == "verified", f.json("show", aid)
    assert done[bid]["state"] == "verified", f.json("show", bid)
    check_isolated_and_committed(f, repo, wt, aid, bid)

    # a third assignment changes the line the first one changed, from the same base: verified too
    search.steps.extend([patch(set_a("2000")), Step(text=report(("app.py",), "a is 2000"))])
    cid = f.json("assign", "--to", "agent-2", "--write", "app.py", "TASK-SEARCH-2: set a")["assignment"]
    [c_done] = f.json("wait", cid, "--timeout", "120")["done"]
    assert c_done["state"] == "verified", f.json("show", cid)

    check_both_merge(f, repo, aid, bid, cid)
    check_conflict_and_dirty_base_change_nothing(f, repo, cid)

    # merging what is not verified is refused
    failed = f.json("assign", "--to", "agent-1", "--write", "cart.py", "TASK-CART-2: nothing")["assignment"]
    refused = json.loads(f.cli("merge", failed, "--json").stdout)["error"]
    assert refused["code"] == "merge_not_verified"

    # prune: the merged branches go; a cancelled one its agent's worktree is on stays, as does unmerged work
    f.json("cancel", failed, "--interrupt")
    pruned = f.json("worktree-prune")
    assert sorted(pruned["branches"]) == sorted([f"fleet/{aid}", f"fleet/{bid}"])
    assert [k["assignment"] for k in pruned["kept"]] == [failed]
    assert pruned["worktrees"] == []
    assert sorted(git(repo, "for-each-ref", "--format=%(refname:short)", "refs/heads/fleet/").split()) == \
        sorted([f"fleet/{cid}", f"fleet/{failed}"])


def check_isolated_and_committed(f: Fleet, repo: Path, wt: dict[str, Path], aid: str, bid: str) -> None:
    """Each worked on its own branch in its own worktree and saw only its own change; the verified
    work is committed to the branch by the agent via fleet, message `id: summary`."""
    shown_a, shown_b = f.json("show", aid), f.json("show", bid)
    assert (shown_a["branch"], shown_b["branch"]) == (f"fleet/{aid}", f"fleet/{bid}")
    assert shown_a["verification"]["changed"] == ["app.py", "cart.py"]
    assert shown_b["verification"]["changed"] == ["search.py"]
    assert not (wt["agent-1"] / "search.py").exists()
    assert not (wt["agent-2"] / "cart.py").exists()
    assert not (repo / "cart.py").exists()  # the user's checkout is not touched by the work
    assert rev(repo, f"fleet/{aid}") == shown_a["verified_commit"]
    assert git(repo, "log", "-1", "--format=%an|%s", f"fleet/{aid}").strip() == \
        f"agent-1 via fleet|{aid}: Coupons in the cart"
    [committed] = events(f, aid, "committed")
    assert committed["details"]["commit"] == shown_a["verified_commit"]

    diff = f.json("diff", aid)
    assert "cart.py" in diff["stat"]
    assert "+coupons = []" in diff["patch"]
    assert not diff["truncated"]
    listed = {w["agent"]: w for w in f.json("worktrees")["worktrees"]}
    assert (listed["agent-1"]["branch"], listed["agent-1"]["state"]) == (f"fleet/{aid}", "clean")
    assert listed["agent-1"]["unmerged"] == [aid]
    assert listed["agent-2"]["unmerged"] == [bid]


def check_both_merge(f: Fleet, repo: Path, aid: str, bid: str, cid: str) -> None:
    """Both verified ones merge into main (a fast-forward, then a merge commit); the clean user
    checkout of main comes along; the ledger records each `merged` with its commit."""
    before = rev(repo, "main")
    merged = f.json("merge", aid, bid)
    assert merged["into"] == "main"
    assert merged["old"] == before
    assert [(s["assignment"], s["how"]) for s in merged["steps"]] == [(aid, "fast-forward"), (bid, "merge")]
    assert rev(repo, "main") == merged["new"]
    assert set(git(repo, "ls-tree", "--name-only", "main").split()) >= {"cart.py", "search.py", "app.py"}
    assert (repo / "cart.py").is_file()
    assert (repo / "search.py").is_file()
    [m] = events(f, aid, "merged")
    assert (m["details"]["how"], m["details"]["commit"]) == ("fast-forward", merged["steps"][0]["commit"])
    assert f.json("show", bid)["merged_commit"] == merged["new"]
    unmerged = {w["agent"]: w["unmerged"] for w in f.json("worktrees")["worktrees"]}
    assert unmerged == {"agent-1": [], "agent-2": [cid]}


def check_conflict_and_dirty_base_change_nothing(f: Fleet, repo: Path, cid: str) -> None:
    """The conflicting one is refused naming the file, main and the user's checkout unchanged; with
    the checkout dirty the merge is refused before anything, and the user's edit is kept."""
    picture, tip = tree_digest(repo), rev(repo, "main")
    conflict = f.cli("merge", cid, "--json")
    assert conflict.returncode != 0
    err = json.loads(conflict.stdout)["error"]
    assert (err["code"], err["files"], err["assignment"]) == ("merge_conflict", ["app.py"], cid)
    assert (rev(repo, "main"), tree_digest(repo)) == (tip, picture)
    assert "<<<<<<<" not in (repo / "app.py").read_text()
    assert not events(f, cid, "merged")

    (repo / "README.md").write_text("my own edit\n")
    dirty = f.cli("merge", cid, "--json")
    assert json.loads(dirty.stdout)["error"]["code"] == "base_checked_out_dirty"
    assert (repo / "README.md").read_text() == "my own edit\n"
    assert rev(repo, "main") == tip


def test_an_agent_killed_mid_assignment_resumes_on_the_same_branch_with_its_edits(
        tmp_path: Path, fleet_factory: Callable[..., Fleet], mock_model: MockServer) -> None:
    """The watchdog restarts a killed repo agent and re-sends its assignment: the worktree is still on
    the assignment's branch with the edit made before the kill, and the verified commit holds it."""
    repo = make_repo(tmp_path / "shop")
    f = fleet_factory(1, model=mock_model, agent_extra=WORKER, catalog=True,
                      extra=f"repo = {json.dumps(str(repo))}\n" + policy(idle_after="1m"))
    f.path.write_text(re.sub(r"(?m)^cwd = .*$", "", f.path.read_text()))
    f.json("up")
    wt = f.state_dir / "worktrees" / "agent-1"
    mock_model.model.script(patch(add("cart.py", "coupons = []")),
                            Step(text="slow " * 100, chunks=100, chunk_delay=0.2))  # open when killed
    aid = f.json("assign", "--to", "agent-1", "--write", "cart.py", "Add coupons")["assignment"]
    wait_until(lambda: (wt / "cart.py").is_file() and f.status("agent-1")["state"] == "working", timeout=30)
    assert tick(f)["actions"] == []  # the watchdog is running (so the work layer leaves a crash to it)
    os.kill(f.status("agent-1")["pid"], signal.SIGKILL)
    wait_until(lambda: f.status("agent-1")["state"] == "exited", timeout=30)
    # recoverable by hand: the worktree is on the branch, the edit uncommitted in it
    assert git(wt, "symbolic-ref", "--short", "HEAD").strip() == f"fleet/{aid}"
    assert git(wt, "status", "--porcelain").split() == ["??", "cart.py"]

    mock_model.model.script(Step(text=report(("cart.py",), "Coupons")))
    acted = tick(f)["actions"]
    assert [(a["action"], a["outcome"]) for a in acted] == [("restart_resume", "done"), ("resend", "done")], acted
    [done] = f.json("wait", aid, "--timeout", "60")["done"]
    assert done["state"] == "verified", f.json("show", aid)
    shown = f.json("show", aid)
    assert shown["verification"]["changed"] == ["cart.py"]
    assert git(repo, "show", f"{shown['verified_commit']}:cart.py") == "coupons = []\n"


def test_a_check_that_rewrites_verified_work_gets_it_rejected_and_nothing_committed(
        tmp_path: Path, fleet_factory: Callable[..., Fleet], mock_model: MockServer) -> None:
    """A check runs the agent's own code (a test's conftest) after the snapshot was taken: what it
    writes then was never verified, so fleet commits nothing and the verdict is rejected."""
    repo = make_repo(tmp_path / "shop")
    f = repo_fleet(fleet_factory, mock_model, repo, 1)
    assert f.json("up")["ok"]
    mock_model.model.converse("TASK-SWAP", patch(add("cart.py", "coupons = []")),
                              Step(text=report(("cart.py",), "Coupons")))
    aid = f.json("assign", "--to", "agent-1", "--write", "cart.py", "--check", "printf 'evil = 1\\n' > cart.py",
                 "TASK-SWAP: add coupons")["assignment"]
    [done] = f.json("wait", aid, "--timeout", "120")["done"]
    shown = f.json("show", aid)
    assert done["state"] == "rejected", shown
    assert [r["code"] for r in shown["verification"]["reasons"]] == ["not_committed"]
    assert "cart.py" in shown["verification"]["reasons"][0]["message"]
    assert shown["verified_commit"] is None
    assert rev(repo, f"fleet/{aid}") == rev(repo, "main")
