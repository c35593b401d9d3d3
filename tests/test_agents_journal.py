"""The agent journal: compaction keeps state and receipts exact; appends are never lost to it."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet.agents import journal
from fleet.agents.journal import compact, find_request, text_sha
from fleet.agents.state import read_journal
from fleet.hooks import receiver

PROMPTS = ("alpha", "beta\n", "gamma")
LIMITS = {"primary": {"used_percent": 40.0, "window_minutes": 300, "resets_at": 1000},
          "secondary": {"used_percent": 12.5, "window_minutes": 10080, "resets_at": 9000}}


def _event(kind: str, turn: int, prompt: int, rid: int, flag: bool) -> dict[str, Any]:
    t, p, r = f"t{turn}", PROMPTS[prompt], f"r{rid}"
    if kind == "turn_started":
        return {"event": kind, "turn_id": t, "prompt": p, "session_id": "s", "transcript_path": f"/x/{turn % 2}"}
    if kind in ("turn_completed", "turn_failed", "turn_aborted"):
        ev: dict[str, Any] = {"event": kind, "turn_id": t, "last_message": "m" if flag else None}
        if kind == "turn_failed":
            ev["error"] = {"code": "usage_limit_exceeded" if flag else "other", "message": "x",
                           "http_status": None, "resets_at": 5000.0 if flag else None}
        if flag:
            ev["rate_limits"] = LIMITS
        return ev
    if kind in ("tool_started", "tool_completed"):
        return {"event": kind, "turn_id": t}
    if kind == "send":
        return {"event": kind, "request_id": r, "text_sha": text_sha(p), "chars": len(p)}
    if kind == "receipt":
        return {"event": kind, "request_id": r, "turn_id": t, "session_id": "s"}
    if kind == "stopped":
        return {"event": kind, "exit_status": 0 if flag else None}
    if kind == "launched":
        return {"event": kind, "pid": 100 + turn, "pid_start": 7}
    if kind in journal.HOOK_FACTS:
        return {"event": kind, "turn_id": t, "assignment": f"as-{rid}", "paths": [p] if flag else []}
    return {"event": kind}


KINDS = ("launched", "ready", "turn_started", "turn_completed", "turn_failed", "turn_aborted", "tool_started",
         "tool_completed", "send", "receipt", "not_delivered", "side_turn_completed", "stopped", "hook",
         *journal.HOOK_FACTS)
EVENT = st.builds(_event, st.sampled_from(KINDS), st.integers(0, 3), st.integers(0, 2), st.integers(0, 4),
                  st.booleans())


def _timed(events: list[dict[str, Any]], start: float) -> list[dict[str, Any]]:
    out = []
    for i, raw in enumerate(events):
        ev = {**raw, "time": start + i * 0.5}
        if ev["event"] == "send":
            ev["sent_at"] = ev["time"]
        out.append(ev)
    return out


@settings(max_examples=400, deadline=None)
@given(st.lists(EVENT, max_size=40), st.lists(EVENT, max_size=12))
def test_compaction_keeps_state_and_requests_exact_now_and_after_later_events(
        before: list[dict[str, Any]], after: list[dict[str, Any]]) -> None:
    old = _timed(before, 100.0)
    new = _timed(after, 200.0)
    now = 150.0
    kept = compact(old, now)
    assert len(kept) <= len(old) + 1 + 5
    assert read_journal(kept) == read_journal(old)
    assert read_journal([*kept, *new]) == read_journal([*old, *new])
    assert read_journal(compact(kept, now)) == read_journal(old)  # compacting again changes nothing
    for rid in (f"r{i}" for i in range(5)):
        assert find_request([*kept, *new], rid) == find_request([*old, *new], rid)
    # the hook's facts about assignments survive for the ledger's next reconcile, however many
    # compactions come first
    facts = [e for e in old if e["event"] in journal.HOOK_FACTS]
    assert [e for e in kept if e["event"] in journal.HOOK_FACTS] == facts
    assert [e for e in compact([*kept, *new], now + 1) if e["event"] in journal.HOOK_FACTS] == [
        *facts, *(e for e in new if e["event"] in journal.HOOK_FACTS)]


def test_compaction_keeps_only_the_newest_young_hook_facts() -> None:
    facts = [{"time": float(i), "event": "tool_denied", "turn_id": f"t{i}", "assignment": "as-1", "paths": ["x"]}
             for i in range(journal.MAX_HOOK_FACTS + 10)]
    kept = [e for e in compact(facts, 100.0) if e["event"] == "tool_denied"]
    assert kept == facts[-journal.MAX_HOOK_FACTS:]
    late = float(journal.MAX_HOOK_FACTS + 5) + journal.REQUEST_TTL
    assert [e["time"] for e in compact(facts, late) if e["event"] == "tool_denied"] == [
        float(i) for i in range(journal.MAX_HOOK_FACTS + 5, journal.MAX_HOOK_FACTS + 10)]


def test_a_request_older_than_the_ttl_is_forgotten_by_compaction() -> None:
    events = [{"time": 10.0, "event": "send", "request_id": "old", "text_sha": text_sha("x"), "sent_at": 10.0},
              {"time": 10.5, "event": "receipt", "request_id": "old", "turn_id": "t1"}]
    assert find_request(events, "old") is not None
    assert find_request(compact(events, 10.0 + journal.REQUEST_TTL + 1), "old") is None
    kept = compact(events, 10.0 + journal.REQUEST_TTL - 1)
    assert find_request(kept, "old") == find_request(events, "old")


def test_a_prompt_codex_took_late_is_matched_by_its_text_digest() -> None:
    events = [{"time": 0.5, "event": "turn_started", "turn_id": "early", "prompt": "do it"},
              {"time": 1.0, "event": "send", "request_id": "r", "text_sha": text_sha("do it\r\n"), "sent_at": 1.0},
              {"time": 1.2, "event": "not_delivered", "request_id": "r"},
              {"time": 3.0, "event": "turn_started", "turn_id": "other", "prompt": "something else"},
              {"time": 4.0, "event": "turn_started", "turn_id": "late", "prompt": "do it", "session_id": "s"}]
    found = find_request(events, "r")
    assert found is not None
    assert found["delivery"] == {"turn_id": "late", "session_id": "s", "delivered_at": 4.0}


def test_the_hook_receiver_uses_the_journal_bound_of_fleet() -> None:
    assert receiver.JOURNAL_MAX == journal.JOURNAL_MAX


def test_appends_racing_compactions_are_never_lost(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A tiny bound and an unbounded request budget: once past 4 KiB nearly every append compacts,
    and every request any writer appended must survive all of them."""
    monkeypatch.setattr(journal, "JOURNAL_MAX", 4096)
    monkeypatch.setattr(journal, "REQUEST_BYTES", 10**9)
    agent_dir = tmp_path / "agent"
    agent_dir.mkdir()
    now = time.time()

    def writer(n: int) -> None:
        for i in range(60):
            journal.append(agent_dir, {"time": now + i, "event": "send", "request_id": f"w{n}-{i}",
                                       "text_sha": text_sha(f"{n}-{i}"), "sent_at": now + i})

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    events = journal.read(agent_dir)
    assert (agent_dir / "events.jsonl.1").exists()
    assert sum(1 for ev in events if ev["event"] == "compacted") == 1
    missing = [(n, i) for n in range(4) for i in range(60) if find_request(events, f"w{n}-{i}") is None]
    assert missing == []


def test_a_compacted_journal_stays_well_under_its_bound() -> None:
    now = 10_000.0
    sends = [{"time": now - i, "event": "send", "request_id": f"id-{i:05d}", "text_sha": text_sha(str(i)),
              "sent_at": now - i} for i in range(5000, 0, -1)]
    kept = compact(sends, now)
    size = sum(len(json.dumps(ev)) + 1 for ev in kept)
    assert size <= journal.REQUEST_BYTES + 512
    assert find_request(kept, "id-00001") is not None  # the newest survive


def test_the_hook_receiver_compacts_a_journal_past_its_bound(tmp_path: Path) -> None:
    agent_dir = tmp_path / "agent"
    agent_dir.mkdir()
    filler = {"time": 1.0, "event": "side_turn_completed", "pad": "y" * 1000}
    lines = [json.dumps({"time": 0.5, "event": "launched", "pid": 1, "pid_start": 2}), json.dumps(
        {"time": 0.6, "event": "ready"})] + [json.dumps(filler)] * (journal.JOURNAL_MAX // 1000 + 5)
    (agent_dir / "events.jsonl").write_text("\n".join(lines) + "\n")
    before = read_journal(journal.read(agent_dir))
    payload = {"hook_event_name": "UserPromptSubmit", "session_id": "s", "turn_id": "t9", "prompt": "hello",
               "transcript_path": "/nowhere.jsonl"}
    subprocess.run([sys.executable, "-S", receiver.__file__, "hook", str(agent_dir)], input=json.dumps(payload),
                   text=True, check=True, timeout=30)
    assert not (agent_dir / "hookrecv.err").exists()
    assert (agent_dir / "events.jsonl").stat().st_size < 4096
    after = read_journal(journal.read(agent_dir))
    assert (after.launched_at, after.ready_at, after.pid, after.open_turn) == (
        before.launched_at, before.ready_at, 1, "t9")


