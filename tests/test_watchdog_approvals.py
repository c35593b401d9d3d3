"""Approvals from Codex's exact signal, on real Codex: fleet's PermissionRequest hook answers at once
when the `[watchdog] approve` policy decides, else holds the call until `fleet approve` / `fleet deny`
answers, and lets the dialog open after `approval_timeout`, when the watchdog escalates it."""

from __future__ import annotations

import json
from collections.abc import Callable

from conftest import Fleet

#: The tests' HOME is under /tmp, which a workspace-write agent may write: a login shell would run the
#: agent's profile files, so fleet's hook rightly refuses every allow there. Tests that need an allow
#: give the fleet a HOME no agent can write (it need not exist: no profile file is read from it).
SAFE_HOME = "/nonexistent-fleet-home"


# -- a hostile agent -----------------------------------------------------------------------------------

def test_make_test_in_commands_is_refused_because_it_runs_the_agents_makefile(
        fleet_factory: Callable[..., Fleet]) -> None:
    f = fleet_factory(1, extra='[watchdog]\napprove = { commands = ["make test"] }')
    err = f.cli("status", "--json")
    assert err.returncode != 0
    error = json.loads(err.stdout)["error"]
    assert error["code"] == "config_invalid"
    assert "list it under commands_running_workspace_code" in error["message"]


