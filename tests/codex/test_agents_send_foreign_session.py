"""Each fleet has its own tmux server, named from its name and its state dir: two fleets with the same
name (two projects that keep the default name, two demos at once) never see each other's agents. And a
session on the fleet's own server that its journal did not launch (made by hand) is never driven: its
hooks would write elsewhere, so a send would wait for a receipt that cannot come."""

from __future__ import annotations

import json
from collections.abc import Callable

from conftest import Fleet
from mockmodel import MockServer

from fleet.config import load_config


def test_two_fleets_with_the_same_name_and_their_own_state_dirs_do_not_share_agents(
        fleet_factory: Callable[..., Fleet], mock_model: MockServer) -> None:
    owner = fleet_factory(1, model=mock_model)
    agent = owner.agents[0]
    assert owner.cli("up").returncode == 0
    other_state = owner.root / "other-state"
    other = Fleet(path=owner.root / "other.toml", name=owner.name, state_dir=other_state, agents=owner.agents,
                  root=owner.root)
    other.path.write_text(owner.path.read_text().replace(str(owner.state_dir), str(other_state)))
    assert load_config(str(other.path)).tmux_socket != load_config(str(owner.path)).tmux_socket

    assert other.status(agent)["state"] == "stopped"  # the owner's running agent is not the other's
    [started] = other.json("up")["agents"]
    assert started["result"] == "started"
    assert other.status(agent)["pid"] != owner.status(agent)["pid"]

    for fleet, text in ((other, "Hello from the other fleet."), (owner, "Hello from the owner.")):
        assert fleet.json("send", agent, text)["delivered"] is True
    assert not any("Hello from the other fleet." in json.dumps(e) for e in owner.journal(agent))
    assert not any("Hello from the owner." in json.dumps(e) for e in other.journal(agent))
    other.json("down")
    assert owner.status(agent)["state"] in ("working", "idle")  # the other's `down` left the owner's alone


