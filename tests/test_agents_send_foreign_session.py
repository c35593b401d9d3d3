"""Each fleet has its own tmux server, named from its name and its state dir: two fleets with the same
name (two projects that keep the default name, two demos at once) never see each other's agents. And a
session on the fleet's own server that its journal did not launch (made by hand) is never driven: its
hooks would write elsewhere, so a send would wait for a receipt that cannot come."""

from __future__ import annotations

import json
from collections.abc import Callable

from conftest import Fleet


def test_a_send_refuses_a_session_the_fleet_did_not_launch(fleet_factory: Callable[..., Fleet]) -> None:
    f = fleet_factory(1)
    agent = f.agents[0]
    made = f.tmux("-f", "/dev/null", "new-session", "-d", "-s", agent, "cat")
    assert made.returncode == 0, made.stderr
    try:
        proc = f.cli("send", agent, "Hello, stranger.", "--json")
        assert proc.returncode != 0
        error = json.loads(proc.stdout)["error"]
        assert error["code"] == "agent_busy"
        assert error["launched_pid"] is None
        assert "Hello, stranger." not in f.tmux("capture-pane", "-p", "-t", f"={agent}:").stdout
    finally:
        f.tmux("kill-server")
