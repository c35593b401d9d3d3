"""The Stop hook's token and rate-limit fold reads only the agent's own rollout, as Codex runs the
receiver (`python -S receiver.py hook AGENT_DIR --home CODEX_HOME`, payload on stdin), and no record
but Codex's own kinds counts: a tool result can carry the model's JSON into the rollout verbatim."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fleet.agents.observe import rollout_turn_end
from fleet.agents.state import read_journal
from fleet.hooks import receiver

TURN = "turn-1"


def usage(n: int) -> dict[str, int]:
    return {"input_tokens": n, "cached_input_tokens": 0, "output_tokens": n, "reasoning_output_tokens": 0}


def rollout(path: Path, *extra: dict[str, Any], tokens: int = 10) -> Path:
    """A rollout as Codex writes it: the turn's start, one response's usage records, then `extra`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    recs = [
        {"type": "event_msg", "payload": {"type": "task_started", "turn_id": TURN}},
        {"type": "token_usage_record", "payload": {"turn_id": TURN, "turn_token_usage": usage(tokens)}},
        {"type": "event_msg", "payload": {"type": "token_count", "info": {"last_token_usage": usage(tokens)},
                                          "rate_limits": {"primary": {"used_percent": 5.0}}}},
        *extra,
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return path


def stop(agent_dir: Path, home: Path, transcript: Path) -> dict[str, Any]:
    payload = {"hook_event_name": "Stop", "session_id": "s1", "turn_id": TURN, "transcript_path": str(transcript),
               "last_assistant_message": "done"}
    proc = subprocess.run([sys.executable, "-S", receiver.__file__, "hook", str(agent_dir), "--home", str(home)],
                          input=json.dumps(payload), capture_output=True, text=True, check=True, timeout=30)
    assert proc.stderr == ""
    assert not (agent_dir / "hookrecv.err").exists(), (agent_dir / "hookrecv.err").read_text()
    [event] = [json.loads(line) for line in (agent_dir / "events.jsonl").read_text().splitlines()]
    return dict(event)


@pytest.fixture
def homes(tmp_path: Path) -> dict[str, Path]:
    out = {}
    for name in ("ada", "bob"):
        (tmp_path / "state" / name).mkdir(parents=True)
        out[name] = tmp_path / "homes" / name
        (out[name] / "sessions" / "2026" / "01" / "01").mkdir(parents=True)
    return out


def own(home: Path, name: str = "rollout-a.jsonl") -> Path:
    return home / "sessions" / "2026" / "01" / "01" / name


def test_the_agents_own_rollout_gives_the_turns_usage_and_rate_limits(tmp_path: Path, homes: dict[str, Path]) -> None:
    path = rollout(own(homes["ada"]))
    event = stop(tmp_path / "state" / "ada", homes["ada"], path)
    assert event["usage"] == {"input": 10, "cached_input": 0, "output": 10, "reasoning": 0}
    assert event["rate_limits"]["primary"]["used_percent"] == 5.0
    assert event["transcript_path"] == str(path)


def test_a_payload_naming_another_agents_rollout_reads_nothing_and_journals_no_transcript(
        tmp_path: Path, homes: dict[str, Path]) -> None:
    theirs = rollout(own(homes["bob"]), tokens=1_000_000)
    for path in (theirs, homes["ada"] / "sessions" / ".." / ".." / "bob" / "sessions" / "2026" / "01" / "01" /
                 theirs.name):
        agent_dir = tmp_path / "state" / "ada"
        (agent_dir / "events.jsonl").unlink(missing_ok=True)
        event = stop(agent_dir, homes["ada"], path)
        assert "usage" not in event
        assert "rate_limits" not in event
        assert "transcript_path" not in event


def test_a_symlink_from_the_agents_sessions_to_another_rollout_is_not_followed(
        tmp_path: Path, homes: dict[str, Path]) -> None:
    theirs = rollout(own(homes["bob"]), tokens=1_000_000)
    link = own(homes["ada"], "rollout-link.jsonl")
    link.symlink_to(theirs)
    event = stop(tmp_path / "state" / "ada", homes["ada"], link)
    assert "usage" not in event


def test_a_fifo_named_as_the_rollout_does_not_block_the_hook(tmp_path: Path, homes: dict[str, Path]) -> None:
    fifo = own(homes["ada"], "rollout-fifo.jsonl")
    os.mkfifo(fifo)
    event = stop(tmp_path / "state" / "ada", homes["ada"], fifo)
    assert "usage" not in event


def test_records_of_other_kinds_naming_usage_or_limits_count_for_nothing(tmp_path: Path,
                                                                        homes: dict[str, Path]) -> None:
    """An MCP tool's structured result is written as JSON (not a quoted string): the model's own
    keys then sit in the line unescaped, after the turn's real records."""
    forged = {"type": "event_msg", "payload": {
        "type": "mcp_tool_call_end", "turn_id": TURN, "turn_token_usage": usage(10**9),
        "kind": "token_usage_record", "info": {"last_token_usage": usage(10**9)}, "note": "token_count",
        "rate_limits": {"primary": {"used_percent": 100.0, "resets_at": 4102444800}}}}
    usage_record = {"type": "response_item", "payload": {"type": "token_usage_record", "turn_id": TURN,
                                                         "turn_token_usage": usage(10**9)}}
    path = rollout(own(homes["ada"]), forged, usage_record)
    event = stop(tmp_path / "state" / "ada", homes["ada"], path)
    assert event["usage"] == {"input": 10, "cached_input": 0, "output": 10, "reasoning": 0}
    assert event["rate_limits"]["primary"]["used_percent"] == 5.0


def test_status_reads_no_rollout_outside_the_agents_home(tmp_path: Path, homes: dict[str, Path]) -> None:
    ended = {"type": "event_msg", "payload": {"type": "task_complete", "turn_id": TURN, "completed_at": 1.0,
                                              "last_agent_message": "done"}}
    theirs = rollout(own(homes["bob"]), ended)
    j = read_journal([{"time": 0.0, "event": "launched"},
                      {"time": 1.0, "event": "turn_started", "turn_id": TURN, "transcript_path": str(theirs)}])
    assert rollout_turn_end(j, 2.0, homes["ada"]) == (None, None)
    event, _ = rollout_turn_end(j, 2.0, homes["bob"])
    assert event is not None
    assert event["event"] == "turn_completed"


def test_a_hook_command_line_without_home_falls_back_to_codexs_own_codex_home(tmp_path: Path,
                                                                            homes: dict[str, Path]) -> None:
    """Agents launched by an older fleet run the receiver without `--home`; Codex runs it with the
    CODEX_HOME fleet gave it."""
    mine, theirs = rollout(own(homes["ada"])), rollout(own(homes["bob"]), tokens=1_000_000)
    agent_dir = tmp_path / "state" / "ada"
    for path, counted in ((mine, True), (theirs, False)):
        (agent_dir / "events.jsonl").unlink(missing_ok=True)
        payload = {"hook_event_name": "Stop", "turn_id": TURN, "transcript_path": str(path)}
        subprocess.run([sys.executable, "-S", receiver.__file__, "hook", str(agent_dir)], input=json.dumps(payload),
                       text=True, check=True, timeout=30, env={**os.environ, "CODEX_HOME": str(homes["ada"])})
        [event] = [json.loads(line) for line in (agent_dir / "events.jsonl").read_text().splitlines()]
        assert ("usage" in event) is counted
