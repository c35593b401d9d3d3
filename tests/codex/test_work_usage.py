"""Token usage end to end: real Codex against the scripted model, whose every reply reports its own
usage; fleet's figures for the assignment, the agent and `fleet usage` must be those summed."""

from __future__ import annotations

import json
from collections.abc import Callable

from conftest import Fleet, wait_until
from mockmodel import MockServer
from mocksteps import Step, usage_of

WORKER = 'role = "worker"'


def report() -> str:
    body = {"status": "done", "summary": "Did it.", "changed": [], "tests": "", "risks": "none known"}
    return f"Finished.\n```fleet-report\n{json.dumps(body)}\n```"


def test_an_assignment_counts_every_response_of_every_turn_it_caused(fleet_factory: Callable[..., Fleet],
                                                                      mock_model: MockServer) -> None:
    """Turn 1 ends without a report, the Stop hook asks in the same turn and the reply still has none;
    turn 2 is the report request (as the watchdog sends it through `deliver`) and brings the report."""
    from fleet.service import Service
    from fleet.service.assign import deliver
    from fleet.service.tracking import reconcile

    f = fleet_factory(1, model=mock_model, agent_extra=WORKER)
    f.json("up")
    steps = [Step(text="No report.", usage={"input": 1200, "cached_input": 800, "output": 70, "reasoning": 30}),
             Step(text="Still none.", usage={"input": 1500, "cached_input": 1100, "output": 40, "reasoning": 0}),
             Step(text=report(), usage={"input": 1900, "cached_input": 1400, "output": 120, "reasoning": 55})]
    mock_model.model.script(*steps)
    created = f.json("assign", "--to", "agent-1", "Look around")
    aid = created["assignment"]
    wait_until(lambda: any(e["kind"] == "no_report" for e in f.json("show", aid)["events"]), timeout=30)
    first = f.json("show", aid)["usage"]
    assert first == {**_sum(steps[:2]), "turns": 1}
    svc = Service(config_path=str(f.path), surface="api", holder="watchdog")
    try:
        deliver(svc, aid, actor="watchdog", text="Please send your fleet-report block now.")
        wait_until(lambda: reconcile(svc) or svc.ledger.get(aid).state == "verified", timeout=30)
    finally:
        svc.close()
    want = {**_sum(steps), "turns": 2}
    shown = f.json("show", aid)
    assert shown["state"] == "verified"
    assert shown["usage"] == want
    used = f.json("usage")
    assert [a["usage"] for a in used["assignments"] if a["id"] == aid] == [want]
    [agent] = used["agents"]
    assert (agent["name"], agent["usage"]) == ("agent-1", want)
    assert used["total"] == want
    assert f.json("usage", "--agent", "agent-1", "--since", "1h")["agents"][0]["usage"] == want
    assert f.status("agent-1")["usage"] == _sum(steps)


def test_a_failed_turn_s_usage_is_read_from_the_rollout_and_counts_in_the_session(
        fleet_factory: Callable[..., Fleet], mock_model: MockServer) -> None:
    """A turn that fires no Stop hook (here an HTTP 500 after a tool call) still counts the response
    it got: fleet reads it from the rollout's tail with the turn's end."""
    f = fleet_factory(1, model=mock_model, agent_extra=WORKER, catalog=True)
    f.json("up")
    patch = "*** Begin Patch\n*** Add File: a.txt\n+hello\n*** End Patch\n"
    steps = [Step(text="ok", usage={"input": 400, "cached_input": 100, "output": 20, "reasoning": 5}),
             Step(tool=("apply_patch", {"input": patch}),
                  usage={"input": 700, "cached_input": 300, "output": 60, "reasoning": 9})]
    mock_model.model.script(steps[0], steps[1], Step.server_error())
    first = f.json("send", "agent-1", "hello")
    wait_until(lambda: f.status("agent-1")["last_turn"]["outcome"] == "completed", 30)
    second = f.json("send", "agent-1", "write a.txt")
    status = wait_until(lambda: (s := f.status("agent-1"))["last_turn"]["turn_id"] == second["turn_id"]
                        and s["last_turn"]["outcome"] == "failed" and s, 30)
    assert status["last_turn"]["usage"] == _sum(steps[1:])
    assert status["usage"] == _sum(steps)
    assert first["turn_id"] != second["turn_id"]


def _sum(steps: list[Step]) -> dict[str, int]:
    figures = [usage_of(s) for s in steps]
    return {k: sum(u[k] for u in figures) for k in ("input", "cached_input", "output", "reasoning")}
