"""Two fleets with the same name share a tmux server (it is named from the fleet name); a send
must never type into the other fleet's agent, whose hooks write to the other fleet's journal (it
would wait for a receipt that cannot come, and the other agent would get the prompt)."""

from __future__ import annotations

import json
from collections.abc import Callable

from conftest import Fleet
from mockmodel import MockServer


def test_a_send_refuses_a_session_another_fleet_with_the_same_name_started(
        fleet_factory: Callable[..., Fleet], mock_model: MockServer) -> None:
    owner = fleet_factory(1, model=mock_model)
    agent = owner.agents[0]
    assert owner.cli("up").returncode == 0
    other_state = owner.root / "other-state"
    other = Fleet(path=owner.root / "other.toml", name=owner.name, state_dir=other_state, agents=owner.agents,
                  root=owner.root)
    other.path.write_text(owner.path.read_text().replace(str(owner.state_dir), str(other_state)))

    proc = other.cli("send", agent, "Hello from the other fleet.", "--json")

    assert proc.returncode != 0
    error = json.loads(proc.stdout)["error"]
    assert error["code"] == "agent_busy"
    assert error["launched_pid"] is None
    assert not any("Hello from the other fleet." in json.dumps(e) for e in owner.journal(agent))
    assert owner.status(agent)["state"] == "idle"  # the owner's agent is untouched and takes its own prompts
    assert owner.json("send", agent, "Hello from the owner.")["delivered"] is True
