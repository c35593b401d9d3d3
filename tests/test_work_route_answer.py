"""`assignment_route`, the internal operation another host's fleet asks when it routes across hosts:
this host's pick for the work, with its rank key, or every agent's reason; nothing created or sent.
Real agents (the stand-in TUI, idle) in real tmux."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Fleet, sent_in_ledger
from faketui import fake_codex

from fleet import ops
from fleet.errors import FleetError
from fleet.service import Service

#: A worker whose sandbox could write /tmp (where the test's state lives) is refused by `up`.
TMP_NOT_WRITABLE = ('args = ["-c", "sandbox_workspace_write.exclude_slash_tmp=true", "-c", '
                    '"sandbox_workspace_write.exclude_tmpdir_env_var=true"]')


def test_the_routing_answer_names_the_pick_with_its_rank_and_creates_nothing(fleet_factory: Callable[..., Fleet],
                                                                            tmp_path: Path) -> None:
    f = fleet_factory(2, codex=fake_codex(tmp_path), agent_extra='role = "worker"', extra=TMP_NOT_WRITABLE)
    svc = Service(str(f.path))
    try:
        down = ops.invoke(svc, "assignment_route", {}, internal=True)
        assert (down["agent"], down["rank"]) == (None, None)
        assert {(r["agent"], r["why"]) for r in down["reasons"]} == {("agent-1", "not_running"),
                                                                    ("agent-2", "not_running")}
        f.json("up")
        idle = ops.invoke(svc, "assignment_route", {"write_paths": ["docs/"]}, internal=True)
        assert (idle["agent"], idle["rank"], idle["reasons"]) == ("agent-1", [False, 0, False, 0.0, "agent-1"], [])
        earlier = sent_in_ledger(f, "agent-1", task="Earlier work.")  # agent-1 now has an open assignment
        busier = ops.invoke(svc, "assignment_route", {"write_paths": ["docs/"]}, internal=True)
        assert (busier["agent"], busier["rank"]) == ("agent-2", [False, 0, False, 0.0, "agent-2"])
        assert [a["id"] for a in ops.invoke(svc, "assignment_list", {})["assignments"]] == [earlier]
        assert {x["agent"]: x["state"] for x in f.json("leases")["leases"]} == {"agent-1": "free", "agent-2": "free"}
        with pytest.raises(FleetError) as absolute:  # a bad request is said as for `assign`
            ops.invoke(svc, "assignment_route", {"write_paths": ["/etc/"]}, internal=True)
        assert absolute.value.code == "invalid_input"
        with pytest.raises(FleetError) as skill:
            ops.invoke(svc, "assignment_route", {"skills": ["nobody-has-it"]}, internal=True)
        assert skill.value.code == "skill_not_found"
        with pytest.raises(FleetError) as public:  # not an operation of the CLI or of MCP
            ops.invoke(svc, "assignment_route", {})
        assert public.value.code == "invalid_input"
    finally:
        svc.close()
