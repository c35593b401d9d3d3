"""The agent journal: compaction keeps state and receipts exact; appends are never lost to it."""

from __future__ import annotations

import json
from collections.abc import Callable

from conftest import Fleet, wait_until
from hypothesis import strategies as st
from mockmodel import MockServer
from test_agents_journal import _event

from fleet.agents import journal
from fleet.agents.journal import compact_file

PROMPTS = ("alpha", "beta\n", "gamma")
LIMITS = {"primary": {"used_percent": 40.0, "window_minutes": 300, "resets_at": 1000},
          "secondary": {"used_percent": 12.5, "window_minutes": 10080, "resets_at": 9000}}


KINDS = ("launched", "ready", "turn_started", "turn_completed", "turn_failed", "turn_aborted", "tool_started",
         "tool_completed", "send", "receipt", "not_delivered", "side_turn_completed", "stopped", "hook",
         *journal.HOOK_FACTS)
EVENT = st.builds(_event, st.sampled_from(KINDS), st.integers(0, 3), st.integers(0, 2), st.integers(0, 4),
                  st.booleans())


def test_state_and_receipts_stay_exact_across_a_compaction(fleet_factory: Callable[..., Fleet],
                                                          mock_model: MockServer) -> None:
    f = fleet_factory(1, model=mock_model)
    f.json("up")
    first = f.json("send", "agent-1", "first job", "--request-id", "job-1")
    wait_until(lambda: f.status("agent-1")["state"] == "idle", 30)
    second = f.json("send", "agent-1", "second job", "--request-id", "job-2")
    wait_until(lambda: f.status("agent-1")["last_turn"]["outcome"] == "completed", 30)
    before = f.status("agent-1")
    agent_dir = f.state_dir / "agents" / "agent-1"
    assert compact_file(agent_dir, limit=0)
    assert [e["event"] for e in f.journal("agent-1")][-1] == "compacted"
    assert f.status("agent-1") == before
    for rid, text, receipt in (("job-1", "first job", first), ("job-2", "second job", second)):
        again = f.json("send", "agent-1", text, "--request-id", rid)
        assert (again["duplicate"], again["turn_id"], again["delivered_at"]) == (
            True, receipt["turn_id"], receipt["delivered_at"])
    assert mock_model.model.user_prompts() == ["first job", "second job"]
    conflict = f.cli("send", "agent-1", "a different text", "--request-id", "job-1", "--json")
    assert conflict.returncode == 2
    assert json.loads(conflict.stdout)["error"]["code"] == "request_id_conflict"
    third = f.json("send", "agent-1", "third job")
    done = wait_until(lambda: (s := f.status("agent-1"))["last_turn"]["turn_id"] == third["turn_id"]
                      and s["state"] == "idle" and s, 30)
    assert done["last_turn"]["outcome"] == "completed"
