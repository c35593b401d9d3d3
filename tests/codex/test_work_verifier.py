"""Checks never block a read: an assignment with `--check` commands is verified by a detached
verifier process, while the CLI call that saw the report returns at once; the watchdog's tick, whose
oneshot unit would kill such a child, runs checks itself. No Codex agent needed (the checks run in
Codex's sandbox, so the binary is): the journal lines Codex's hooks would write are written by hand."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import Fleet, require_offline, sent_in_ledger, wait_until

from fleet.service import Service
from fleet.service.tracking import VERIFY_LOG, reconcile


@pytest.fixture
def fleet(fleet_factory: Callable[..., Fleet], codex_bin: str) -> Fleet:
    """Checks run in the agent's Codex sandbox: the real Codex binary, offline, and the agent's home."""
    require_offline()
    f = fleet_factory(1, codex=codex_bin, extra="", agent_extra='role = "worker"\n')
    (f.root / "homes" / f.agents[0]).mkdir(parents=True)
    return f


def reported_by_hand(f: Fleet, checks: list[str]) -> str:
    """An assignment sent to agent-1 (turn t1) and its journal: the turn ended with a valid report."""
    agent = f.agents[0]
    aid = sent_in_ledger(f, agent, task="Look around", checks=checks)
    body = {"status": "done", "summary": "Looked.", "changed": [], "tests": "", "risks": ""}
    lines: list[dict[str, Any]] = [
        {"event": "turn_started", "turn_id": "t1", "time": 1.0},
        {"event": "turn_completed", "turn_id": "t1", "time": 2.0,
         "last_message": f"Done.\n```fleet-report\n{json.dumps(body)}\n```"}]
    journal = f.state_dir / "agents" / agent / "events.jsonl"
    journal.parent.mkdir(parents=True, exist_ok=True)
    journal.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return aid


def verifying(f: Fleet, aid: str) -> list[dict[str, Any]]:
    return [e["details"] for e in f.json("show", aid)["events"] if e["kind"] == "verifying"]


def test_a_slow_check_runs_in_a_verifier_while_reads_return(fleet: Fleet, tmp_path: Path) -> None:
    gate = tmp_path / "gate"  # outside the agent's cwd: opening it changes nothing the verdict sees
    aid = reported_by_hand(fleet, [f"while [ ! -e {gate} ]; do sleep 0.1; done; echo gate open"])
    try:
        # The check cannot end before the gate opens: if a read ran it, this call would not return.
        listed = fleet.json("assignments")["assignments"]
        assert [(a["id"], a["state"]) for a in listed] == [(aid, "reported")]
        assert fleet.json("show", aid)["state"] == "reported"
        [claim] = verifying(fleet, aid)
        assert (claim["attempt"], claim["where"], claim["checks"]) == (0, "verifier", 1)
        pending = fleet.cli("wait", aid, "--timeout", "1", "--json")
        assert pending.returncode == 5  # still pending: the verifier is waiting for the gate
    finally:
        gate.touch()
    [done] = fleet.json("wait", aid, "--timeout", "60")["done"]
    assert done["state"] == "verified"
    verification = fleet.json("show", aid)["verification"]
    [check] = verification["checks"]  # (a home under /tmp adds Codex's warning about its helper links)
    assert (check["passed"], check["output_tail"].endswith("gate open\n")) == (True, True)
    assert len(verifying(fleet, aid)) == 1  # later reads claimed nothing more
    log = (fleet.state_dir / VERIFY_LOG).read_text()
    assert f"{aid}: verified" in log


def test_without_checks_the_verdict_comes_with_the_read(fleet: Fleet) -> None:
    aid = reported_by_hand(fleet, [])
    assert fleet.json("show", aid)["state"] == "verified"
    [claim] = verifying(fleet, aid)
    assert claim["where"] == "inline"
    assert not (fleet.state_dir / VERIFY_LOG).exists()


def test_with_background_checks_off_the_checks_run_in_the_calling_process(fleet: Fleet) -> None:
    aid = reported_by_hand(fleet, ["echo here"])
    svc = Service(config_path=str(fleet.path), surface="api")
    svc.background_checks = False
    try:
        steps = reconcile(svc)
    finally:
        svc.close()
    assert [(s["from"], s["to"]) for s in steps] == [("sent", "working"), ("working", "reported"),
                                                      ("reported", "verified")]
    [claim] = verifying(fleet, aid)
    assert claim["where"] == "inline"


def test_the_watchdog_tick_runs_checks_in_its_own_process(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    """The tick's reconcile and dispatch are replaced to see the service's setting as the tick runs them."""
    from fleet.service.tick import run_tick

    seen: list[bool] = []

    def reconcile(svc: Service, agents: list[str] | None = None) -> list[dict[str, Any]]:
        seen.append(svc.background_checks)
        return []

    def dispatch(svc: Service) -> dict[str, Any]:
        seen.append(svc.background_checks)
        return {"sent": [], "queued": 0}

    monkeypatch.setattr("fleet.service.tick.reconcile", reconcile)
    monkeypatch.setattr("fleet.service.tickacts.dispatch", dispatch)
    svc = Service(config_path=str(fleet.path), surface="api")
    try:
        run_tick(svc)
        assert seen
        assert not any(seen)
        assert svc.background_checks is True  # restored for whatever the process does next
    finally:
        svc.close()


def test_a_verifier_that_died_is_replaced_after_the_stale_time(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    from fleet.service import tracking

    aid = reported_by_hand(fleet, ["true"])
    real_spawn = tracking._spawn_verifier
    monkeypatch.setattr(tracking, "_spawn_verifier", lambda svc, assignment: 0)  # a verifier that never ran
    svc = Service(config_path=str(fleet.path), surface="api")
    try:
        reconcile(svc)
        assert svc.ledger.get(aid).state == "reported"
        reconcile(svc)  # within the stale time: the claim stands, nothing is claimed again
        assert [e.details["attempt"] for e in svc.ledger.events_for(aid) if e.kind == "verifying"] == [0]
        # A real verifier for the takeover (never `monkeypatch.undo()`: it would also undo the autouse
        # isolation of HOME, XDG and FLEET_*, and the verifier would run against the real environment).
        monkeypatch.setattr(tracking, "_spawn_verifier", real_spawn)
        monkeypatch.setattr(tracking, "_verify_stale", lambda a: 1e-3)  # long past: a reconcile claims it
        # (once a millisecond has passed since it was reported: the first call may come sooner)
        wait_until(lambda: reconcile(svc) is not None and len(
            [e for e in svc.ledger.events_for(aid) if e.kind == "verifying"]) == 2, timeout=10)
        monkeypatch.setattr(tracking, "_verify_stale", lambda a: 1e6)  # and no later one claims it again
        wait_until(lambda: reconcile(svc) is not None and svc.ledger.get(aid).state == "verified", timeout=60)
        attempts = [e.details["attempt"] for e in svc.ledger.events_for(aid) if e.kind == "verifying"]
        assert len(attempts) == 2
        assert (attempts[0], attempts[1] >= 1) == (0, True)
    finally:
        svc.close()
