"""Real Codex agents in real tmux, against the scripted mock model, driven through the real CLI."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
from collections.abc import Callable

from conftest import Fleet, wait_until
from mockmodel import MockServer
from mocksteps import Step

TRICKY = "line one\nline 'two' with \"quotes\" $HOME `uname` && rm -rf / ; echo $((1+1))\nünïcödé 漢字 🚀\n\ttabbed"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_agents_start_take_a_prompt_work_and_return_to_idle(fleet_factory: Callable[..., Fleet],
                                                           mock_model: MockServer) -> None:
    f = fleet_factory(3, model=mock_model)
    up = f.json("up")
    assert [a["agent"] for a in up["agents"]] == f.agents
    assert all(a["started"] and a["state"] == "idle" for a in up["agents"])
    pids = [a["pid"] for a in f.json("status")["agents"]]
    assert all(isinstance(p, int) and alive(p) for p in pids)

    mock_model.model.script(Step(text="slow answer", chunks=30, chunk_delay=0.1))
    receipt = f.json("send", "agent-2", "-", input_text=TRICKY)
    assert receipt["delivered"] is True
    assert receipt["agent"] == "agent-2"
    assert receipt["turn_id"]
    assert f.status("agent-2")["state"] == "working"
    assert f.status("agent-1")["state"] == "idle"
    done = wait_until(lambda: (s := f.status("agent-2"))["state"] == "idle" and s, timeout=30)
    assert done["last_turn"]["turn_id"] == receipt["turn_id"]
    assert done["last_turn"]["outcome"] == "completed"
    assert done["last_turn"]["last_message"] == "slow answer"
    assert mock_model.model.user_prompts() == [TRICKY.strip()]

    kinds = [e["event"] for e in f.journal("agent-2")]
    for kind in ("launched", "ready", "send", "turn_started", "receipt", "turn_completed"):
        assert kind in kinds
    # Codex's title-generation side thread is told apart and does not count as a turn.
    wait_until(lambda: "side_turn_completed" in [e["event"] for e in f.journal("agent-2")])

    down = f.json("down")
    assert all(a["state"] == "stopped" for a in down["agents"])
    assert {a["state"] for a in f.json("status")["agents"]} == {"stopped"}
    assert not any(alive(p) for p in pids)
    assert f.tmux("list-sessions").returncode != 0  # nothing left on the fleet's tmux server


def test_a_long_prompt_is_delivered_whole(fleet_factory: Callable[..., Fleet], mock_model: MockServer) -> None:
    f = fleet_factory(1, model=mock_model)
    f.json("up")
    text = "\n".join(f"{i:05d} ünïcode 'q' \"dq\" $VAR `cmd` \\ back" for i in range(320))
    assert len(text) > 12000
    receipt = f.json("send", "agent-1", "-", input_text=text)
    assert receipt["chars"] == len(text)
    wait_until(mock_model.model.user_prompts)
    assert mock_model.model.user_prompts()[0] == text
    for follow_up in ("second prompt", "third prompt"):  # the composer is found empty again after each turn
        wait_until(lambda: f.status("agent-1")["state"] == "idle")
        assert f.json("send", "agent-1", follow_up)["delivered"] is True
    wait_until(lambda: f.status("agent-1")["state"] == "idle")
    assert mock_model.model.user_prompts() == [text, "second prompt", "third prompt"]


def test_a_retried_send_with_the_same_request_id_is_not_typed_twice(fleet_factory: Callable[..., Fleet],
                                                                    mock_model: MockServer) -> None:
    f = fleet_factory(1, model=mock_model)
    f.json("up")
    first = f.json("send", "agent-1", "do the thing once", "--request-id", "req-1")
    wait_until(lambda: f.status("agent-1")["state"] == "idle")
    again = f.json("send", "agent-1", "do the thing once", "--request-id", "req-1")
    assert again["duplicate"] is True
    assert again["turn_id"] == first["turn_id"]
    assert mock_model.model.user_prompts().count("do the thing once") == 1
    other = f.cli("send", "agent-1", "a different thing", "--request-id", "req-1", "--json")
    assert json.loads(other.stdout)["error"]["code"] == "request_id_conflict"
    # The id is in the ledger's durable index, per agent: another agent's req-1 is another request.
    with sqlite3.connect(f.state_dir / "fleet.db") as db:
        assert db.execute("SELECT scope FROM request_ids WHERE id = 'req-1'").fetchall() == [("send:agent-1",)]


def test_a_busy_agent_refuses_a_send_and_can_be_interrupted(fleet_factory: Callable[..., Fleet],
                                                           mock_model: MockServer) -> None:
    f = fleet_factory(1, model=mock_model)
    f.json("up")
    mock_model.model.script(Step(text="z" * 400, chunks=200, chunk_delay=0.1))
    receipt = f.json("send", "agent-1", "a long job")
    wait_until(lambda: f.status("agent-1")["state"] == "working")
    busy = f.cli("send", "agent-1", "another", "--json")
    assert busy.returncode == 1
    assert json.loads(busy.stdout)["error"]["code"] == "agent_busy"
    result = f.json("interrupt", "agent-1")
    assert (result["agent"], result["interrupted"], result["turn_id"]) == ("agent-1", True, receipt["turn_id"])
    status = f.status("agent-1")
    assert result["state"] == status["state"]  # observed after the interrupt, not assumed
    assert status["state"] == "idle"
    assert status["last_turn"]["outcome"] == "aborted"
    aborted = [e for e in f.journal("agent-1") if e["event"] == "turn_aborted"]
    assert [(e["turn_id"], e["source"]) for e in aborted] == [(receipt["turn_id"], "rollout")]
    assert mock_model.model.user_prompts() == ["a long job"]
    nothing = f.json("interrupt", "agent-1")
    assert nothing["interrupted"] is False


def test_a_crashed_agent_keeps_its_exit_status_and_last_screen(fleet_factory: Callable[..., Fleet],
                                                             mock_model: MockServer) -> None:
    f = fleet_factory(1, model=mock_model)
    f.json("up")
    pid = f.status("agent-1")["pid"]
    os.kill(pid, signal.SIGKILL)
    # tmux fills in the exit facts a moment after the pane dies
    crashed = wait_until(lambda: (s := f.status("agent-1"))["state"] == "exited" and s["exit_signal"] and s, 30)
    assert crashed["exit_signal"] == signal.SIGKILL
    assert crashed["detail"] == "killed by signal 9"
    assert crashed["pid"] is None
    tail = f.json("tail", "agent-1", "--lines", "20")
    assert tail["dead"] is True
    assert any("Ask Codex" in line or "OpenAI Codex" in line for line in tail["lines"])
    refused = f.cli("send", "agent-1", "hello?", "--json")
    assert json.loads(refused.stdout)["error"]["code"] == "agent_not_running"
    again = f.json("up", "agent-1")
    assert again["agents"][0]["started"] is True
    assert f.status("agent-1")["state"] == "idle"


def test_up_is_idempotent_for_a_running_agent(fleet_factory: Callable[..., Fleet], mock_model: MockServer) -> None:
    f = fleet_factory(1, model=mock_model)
    first = f.json("up")["agents"][0]
    second = f.json("up")["agents"][0]
    assert second["started"] is False
    assert second["pid"] == first["pid"]


def test_an_approval_menu_shows_as_waiting_approval(fleet_factory: Callable[..., Fleet],
                                                    mock_model: MockServer) -> None:
    f = fleet_factory(1, model=mock_model, codex_args=("-a", "on-request"))
    f.json("up")
    target = f.root / "work" / "agent-1" / "made-by-agent"
    mock_model.model.script(Step(tool=("exec_command", {
        "cmd": f"touch {target}", "sandbox_permissions": "require_escalated",
        "justification": "Need to create a file"})))
    receipt = f.json("send", "agent-1", "create the file")
    waiting = wait_until(lambda: (s := f.status("agent-1"))["state"] == "waiting_approval" and s, timeout=20)
    assert waiting["last_turn"]["turn_id"] == receipt["turn_id"]
    assert not target.exists()
    assert f.json("interrupt", "agent-1")["interrupted"] is True
    assert f.status("agent-1")["state"] == "idle"
    assert not target.exists()


FAKE_TUI = """
import sys, time
print("\u203a Ask Codex to do anything\\n  \u2190 for agents \u00b7 ? for shortcuts", flush=True)
for line in sys.stdin:
    pass
"""




def test_the_footer_shows_no_prompt_text(fleet_factory: Callable[..., Fleet], mock_model: MockServer) -> None:
    """Codex 0.171 shows the thread's title (from its first prompt) after the cwd in the footer for the
    whole session, where fleet reads the screen (`fleet.agents.screen`): a prompt (an assignment's
    comes from a lead's task) could read as a dialog there for good. fleet sets the footer to the
    model and the cwd, as 0.169 draws it by default."""
    f = fleet_factory(1, model=mock_model)
    f.json("up")
    first = f.json("send", "agent-1", "Update available: Trust this folder? Press enter to confirm or esc to cancel")
    wait_until(lambda: f.status("agent-1")["last_turn"]["turn_id"] == first["turn_id"], timeout=30)
    screen = f.tmux("capture-pane", "-p", "-J", "-t", "=agent-1:").stdout.rstrip().splitlines()
    composer = max(i for i, line in enumerate(screen) if "Ask Codex to do anything" in line)
    footer = [line.strip() for line in screen[composer + 1:] if line.strip()]
    assert footer[0] == f"mock-model default · {f.root / 'work' / 'agent-1'}", footer
    assert "for agents · ? for shortcuts" in footer[1]
    assert not [line for line in footer if "Trust this folder?" in line], footer


def test_dialog_text_in_the_history_does_not_block_the_next_send(fleet_factory: Callable[..., Fleet],
                                                                  mock_model: MockServer) -> None:
    """A prompt or an answer is data: one quoting a first-run dialog ("Trust this folder?") stays on the
    screen in the history, and fleet must not take it for a dialog that needs a person (every later
    send was refused `agent_busy` until it scrolled away)."""
    f = fleet_factory(1, model=mock_model)
    f.json("up")
    mock_model.model.script(Step(text="Trust this folder?\nSign in with ChatGPT\nHooks need review\n› 1. Yes"))
    first = f.json("send", "agent-1", "Do you trust the contents of this directory? Update available")
    wait_until(lambda: f.status("agent-1")["last_turn"]["turn_id"] == first["turn_id"], timeout=30)
    screen = f.tmux("capture-pane", "-p", "-J", "-t", "=agent-1:").stdout
    assert "Trust this folder?" in screen  # still shown, in the history
    assert "Do you trust the contents" in screen
    second = f.json("send", "agent-1", "and now something else")
    assert second["turn_id"] != first["turn_id"]
    wait_until(lambda: f.status("agent-1")["last_turn"]["turn_id"] == second["turn_id"], timeout=30)
    assert f.status("agent-1")["state"] == "idle"
