"""Failover on real Codex against the scripted model: with `on_limit = "reassign"`, the open
assignment of an agent parked at its usage limit moves to an idle agent on another account, ends
`verified` there, and the parked agent never gets its prompt again (after its reset it is told the
work moved)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import Fleet, wait_until
from gitrepos import git, make_repo
from mockmodel import MockServer
from mocksteps import Step, rate_limit_headers, usage_of
from test_watchdog_tick import REPORT, assign, policy, tick

from codex.test_work_worktrees_e2e import add, events, patch, repo_fleet, report
from fleet.work.ledger import Ledger

TASK = "Count the moons of Jupiter."


def on_accounts(f: Fleet, accounts: dict[str, str]) -> None:
    """Give each agent its `account` in the fleet's config."""
    text = f.path.read_text()
    for agent, account in accounts.items():
        text = re.sub(rf"(?m)^(\[agents\.{agent}\]\n)", rf'\1account = "{account}"\n', text, count=1)
    f.path.write_text(text)


def test_a_parked_agents_assignment_moves_to_an_agent_on_another_account_and_is_verified_there(
        fleet_factory: Callable[..., Fleet], mock_model: MockServer) -> None:
    f = fleet_factory(2, model=mock_model, extra=policy(on_limit="reassign", idle_after="1h", limit_retry="1h"))
    on_accounts(f, {"agent-1": "team-a", "agent-2": "team-b"})
    f.json("up")
    assert [a["account"] for a in f.json("status")["agents"]] == ["team-a", "team-b"]
    reset = int(time.time()) + 12
    mock_model.model.script(Step.usage_limit(headers=rate_limit_headers(100, reset)), Step(text=REPORT))
    mock_model.model.default_text = "Stopped."
    aid = assign(f, "agent-1", TASK)
    wait_until(lambda: f.status("agent-1")["state"] == "limited", timeout=30)

    first = tick(f)
    moved = [a for a in first["actions"] if a["action"] == "reassign"]
    assert [(a["agent"], a["assignment"], a["outcome"]) for a in moved] == [("agent-1", aid, "done")], first
    assert moved[0]["detail"]["to"] == "agent-2"
    with Ledger(f.state_dir) as ledger:
        events = ledger.events_for(aid)
        row = ledger.get(aid)
    assert row.agent == "agent-2"
    hops = [e for e in events if e.kind == "reassigned"]
    assert [(e.details["from"], e.details["to"]) for e in hops] == [("agent-1", "agent-2")]
    # the parked agent's claim ended before the new send: its lease is free
    leases = {lease["agent"]: lease for lease in f.json("leases")["leases"]}
    assert leases["agent-1"]["holder"] != f"assignment:{aid}"
    assert leases["agent-2"]["holder"] == f"assignment:{aid}"

    def verified() -> bool:
        tick(f)
        with Ledger(f.state_dir) as ledger:
            return ledger.get(aid).state == "verified"

    wait_until(verified, timeout=60, interval=0.3)
    prompts = [p for p in mock_model.model.user_prompts() if TASK in p]
    assert len(prompts) == 2  # the first send to agent-1, then the handover to agent-2
    assert "continues the work of agent agent-1" in prompts[1]
    assert "The first attempt changed no file." in prompts[1]

    # After its reset the parked agent is told the work moved, never sent the task or a bare "continue".
    resumed: list[dict[str, Any]] = []
    wait_until(lambda: resumed.extend(a for a in tick(f)["actions"] if a["agent"] == "agent-1") or resumed,
               timeout=60, interval=0.3)
    assert [(a["action"], a["outcome"], a["assignment"]) for a in resumed] == [("resume_after_limit", "done", None)]
    wait_until(lambda: any(aid in p and "given to another agent" in p for p in mock_model.model.user_prompts()),
               timeout=20)
    assert [p for p in mock_model.model.user_prompts() if TASK in p] == prompts
    assert not any(p.strip() == "continue" for p in mock_model.model.user_prompts())


def test_a_repo_agents_assignment_continues_on_its_branch_in_the_new_agents_worktree(
        tmp_path: Path, fleet_factory: Callable[..., Fleet], mock_model: MockServer) -> None:
    repo = make_repo(tmp_path / "shop")
    f = repo_fleet(fleet_factory, mock_model, repo, 2)
    f.path.write_text(f.path.read_text() + "\n" + policy(on_limit="reassign", idle_after="1h") + "\n")
    on_accounts(f, {"agent-1": "team-a", "agent-2": "team-b"})
    assert f.json("up")["ok"]
    wt = {a: f.state_dir / "worktrees" / a for a in f.agents}
    replies = [patch(add("notes.txt", "first half")),  # agent-1's, then the limit
               patch("*** Update File: notes.txt\n@@\n first half\n+second half"),  # agent-2's two
               Step(text=report(("notes.txt",), "both halves"))]
    mock_model.model.converse("TASK-WT", replies[0], Step.usage_limit(), *replies[1:])
    aid = f.json("assign", "--to", "agent-1", "--write", "notes.txt", "TASK-WT: write both halves")["assignment"]
    wait_until(lambda: f.status("agent-1")["state"] == "limited", timeout=30)
    assert (wt["agent-1"] / "notes.txt").read_text() == "first half\n"

    moved = [a for a in tick(f)["actions"] if a["action"] == "reassign"]
    assert [(a["outcome"], a["detail"]["to"]) for a in moved] == [("done", "agent-2")], moved

    def verified() -> bool:
        tick(f)
        return bool(f.json("show", aid)["state"] == "verified")

    wait_until(verified, timeout=60, interval=0.3)
    branch = f"fleet/{aid}"
    [hop] = events(f, aid, "reassigned")
    assert (hop["details"]["from"], hop["details"]["to"], hop["details"]["branch"]) == ("agent-1", "agent-2", branch)
    assert hop["details"]["changed"] == ["notes.txt"]
    # the first attempt's file was committed to the branch by agent-1, the rest by agent-2, on top
    log = git(repo, "log", "--format=%an|%s", branch).splitlines()
    assert [line.split("|")[0] for line in log[:2]] == ["agent-2 via fleet", "agent-1 via fleet"], log
    assert git(repo, "show", f"{branch}:notes.txt") == "first half\nsecond half\n"
    # agent-1's worktree left the branch (nothing lost: detached at its commit), agent-2's is on it
    assert git(wt["agent-1"], "status", "--porcelain") == ""
    assert git(wt["agent-1"], "rev-parse", "HEAD").strip() == git(repo, "rev-parse", f"{branch}~1").strip()
    assert git(wt["agent-2"], "symbolic-ref", "HEAD").strip() == f"refs/heads/{branch}"
    # the assignment's tokens are both attempts': agent-1's turn, carried over, and agent-2's
    usage = f.json("show", aid)["usage"]
    want = {k: sum(usage_of(r)[k] for r in replies) for k in ("input", "cached_input", "output", "reasoning")}
    assert {k: usage[k] for k in want} == want, (usage, events(f, aid, "reassigned")[0]["details"].get("usage"))
    assert usage["turns"] == 2
    handover = [p for p in mock_model.model.user_prompts() if "TASK-WT" in p][-1]
    assert f"You are on the assignment's branch {branch}" in handover
    assert '"notes.txt"' in handover


def test_a_first_attempt_that_wrote_outside_its_paths_stays_with_its_agent_and_is_not_offered_again(
        tmp_path: Path, fleet_factory: Callable[..., Fleet], mock_model: MockServer) -> None:
    """On a branch the next attempt builds on, a change outside the write paths (here by a shell
    command, which the patch gate does not see) would escape the new attempt's verification: nothing
    moves, the refusal is recorded once, and later ticks do not try again."""
    repo = make_repo(tmp_path / "shop")
    f = repo_fleet(fleet_factory, mock_model, repo, 2)
    f.path.write_text(f.path.read_text() + "\n" + policy(on_limit="reassign", idle_after="1h") + "\n")
    on_accounts(f, {"agent-1": "team-a", "agent-2": "team-b"})
    assert f.json("up")["ok"]
    mock_model.model.converse("TASK-SLY", Step(tool=("exec_command", {"cmd": "echo sly > other.txt"})),
                              Step.usage_limit())
    aid = f.json("assign", "--to", "agent-1", "--write", "notes.txt", "TASK-SLY: write notes")["assignment"]
    wait_until(lambda: f.status("agent-1")["state"] == "limited", timeout=30)
    first = [a for a in tick(f)["actions"] if a["agent"] == "agent-1"]
    assert [(a["action"], a["outcome"], a["error"]["code"]) for a in first] == [
        ("reassign", "failed", "work_not_movable")], first
    assert "other.txt" in first[0]["error"]["message"]
    assert [a for a in tick(f)["actions"] if a["agent"] == "agent-1"] == []  # not offered again
    shown = f.json("show", aid)
    assert (shown["agent"], shown["state"]) == ("agent-1", "working")
    assert [e["details"]["agent"] for e in events(f, aid, "reassign_refused")] == ["agent-1"]
    assert events(f, aid, "reassigned") == []
    assert f.status("agent-2")["state"] == "idle"
    assert git(repo, "log", "--format=%an", f"fleet/{aid}").splitlines()[0] == "User"  # nothing committed


def test_an_agent_that_cannot_take_the_branch_over_is_not_chosen_for_it_again(
        tmp_path: Path, fleet_factory: Callable[..., Fleet], mock_model: MockServer) -> None:
    repo = make_repo(tmp_path / "shop")
    f = repo_fleet(fleet_factory, mock_model, repo, 2)
    f.path.write_text(f.path.read_text() + "\n" + policy(on_limit="reassign", idle_after="1h") + "\n")
    on_accounts(f, {"agent-1": "team-a", "agent-2": "team-b"})
    assert f.json("up")["ok"]
    (f.state_dir / "worktrees" / "agent-2" / "leftover.txt").write_text("a person's file\n")  # fleet stashes nothing
    mock_model.model.converse("TASK-DIRT", patch(add("notes.txt", "first half")), Step.usage_limit())
    aid = f.json("assign", "--to", "agent-1", "--write", "notes.txt", "TASK-DIRT: write notes")["assignment"]
    wait_until(lambda: f.status("agent-1")["state"] == "limited", timeout=30)
    first = [a for a in tick(f)["actions"] if a["agent"] == "agent-1"]
    assert [(a["action"], a["outcome"], a["error"]["code"]) for a in first] == [
        ("reassign", "failed", "worktree_dirty")], first
    assert [a for a in tick(f)["actions"] if a["agent"] == "agent-1"] == []  # agent-2 is not chosen again
    [refused] = events(f, aid, "reassign_refused")
    assert (refused["details"]["key"], refused["details"]["code"]) == ("to:agent-2", "worktree_dirty")
    shown = f.json("show", aid)
    assert shown["agent"] == "agent-1"
    assert events(f, aid, "reassigned") == []
    # nothing moved and nothing was lost: the new agent was checked before git was touched, so the first
    # attempt is where agent-1's own resume finds it, in its worktree, still on the branch
    wt1 = f.state_dir / "worktrees" / "agent-1"
    assert (wt1 / "notes.txt").read_text() == "first half\n"
    assert git(wt1, "symbolic-ref", "HEAD").strip() == f"refs/heads/fleet/{aid}"
    assert (f.state_dir / "worktrees" / "agent-2" / "leftover.txt").read_text() == "a person's file\n"
