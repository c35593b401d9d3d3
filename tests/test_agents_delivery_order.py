"""Delivery is matched by the journal's order, never by wall-clock time.

Each journal writer stamps its own clock (fleet when it logs a send, Codex's hook process when it
records the prompt). A clock stepped back between the two used to put Codex's record "before" the send,
so the receipt was lost and a retry with the same request id typed the prompt a second time.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from test_agents_journal import EVENT, _event

from fleet.agents import journal
from fleet.agents.journal import compact, find_request, since_compaction, text_sha, turn_after_send


def test_a_prompt_recorded_with_an_earlier_clock_after_the_send_is_its_delivery() -> None:
    events = [{"time": 1000.0, "event": "send", "request_id": "r", "text_sha": text_sha("do it"), "sent_at": 1000.0},
              {"time": 400.0, "event": "turn_started", "turn_id": "t1", "prompt": "do it", "session_id": "s"}]
    found = find_request(events, "r")
    assert found is not None
    assert found["delivery"] == {"turn_id": "t1", "session_id": "s", "delivered_at": 400.0}


def test_a_prompt_recorded_before_the_send_is_never_its_delivery_whatever_its_time() -> None:
    events = [{"time": 5000.0, "event": "turn_started", "turn_id": "old", "prompt": "do it"},
              {"time": 1000.0, "event": "send", "request_id": "r", "text_sha": text_sha("do it"), "sent_at": 1000.0}]
    found = find_request(events, "r")
    assert found is not None
    assert found["delivery"] is None


def test_the_live_match_anchors_on_its_own_send_not_on_time() -> None:
    events = [{"time": 9.0, "event": "turn_started", "turn_id": "before", "prompt": "go"},
              {"time": 8.0, "event": "send", "send_id": "other", "text_sha": text_sha("go")},
              {"time": 7.0, "event": "send", "send_id": "mine", "text_sha": text_sha("go")},
              {"time": 1.0, "event": "turn_started", "turn_id": "mine", "prompt": "go\r\n"}]
    assert turn_after_send(events, "mine", "go") == (events[3], True)
    assert turn_after_send(events[:3], "mine", "go") == (None, True)
    assert turn_after_send(events[:2], "mine", "go") == (None, False)  # compacted away: look elsewhere


def test_after_a_compaction_the_previous_generation_and_later_events_keep_the_order() -> None:
    before = [{"time": 5.0, "event": "launched", "pid": 1},
              {"time": 5.0, "event": "turn_started", "turn_id": "t0", "prompt": "go"},
              {"time": 6.0, "event": "send", "send_id": "mine", "text_sha": text_sha("go")}]
    compacted = compact(before, 6.0)
    later = [{"time": 2.0, "event": "turn_started", "turn_id": "t1", "prompt": "go"}]
    current = [*compacted, *later]
    assert turn_after_send(current, "mine", "go") == (None, False)  # the kept t0 is not ours
    assert turn_after_send([*before, *since_compaction(current)], "mine", "go") == (later[0], True)


def _scrambled(events: list[dict[str, Any]], times: list[float]) -> list[dict[str, Any]]:
    """The events with arbitrary clocks: each writer's time, going back and forth."""
    out = []
    for i, raw in enumerate(events):
        t = times[i % len(times)]
        ev = {**raw, "time": t}
        if ev["event"] == "send":
            ev["sent_at"] = t
        out.append(ev)
    return out


TIMES = st.lists(st.floats(0, 10_000, allow_nan=False), min_size=1, max_size=50)


def _turn(rec: Any) -> Any:
    return None if rec is None else (rec["delivery"] or {}).get("turn_id", "none")


#: A send, then Codex's record of the same prompt: the case a clock step back used to break.
SEND_THEN_TURN = st.builds(lambda p, r: [_event("send", 0, p, r, False), _event("turn_started", r, p, r, False)],
                           st.integers(0, 2), st.integers(0, 4))
WITH_DELIVERIES = st.builds(lambda noise, pairs, cut: [*noise[:cut], *(e for pair in pairs for e in pair),
                                                      *noise[cut:]],
                            st.lists(EVENT, max_size=20), st.lists(SEND_THEN_TURN, min_size=1, max_size=3),
                            st.integers(0, 20))


@settings(max_examples=300, deadline=None)
@given(WITH_DELIVERIES, TIMES)
def test_which_turn_delivers_a_request_does_not_depend_on_any_clock(events: list[dict[str, Any]],
                                                                   times: list[float]) -> None:
    """Oracle: the same journal with every clock reading equal, where only the order can decide."""
    clocked, flat = _scrambled(events, times), _scrambled(events, [0.0])
    for rid in (f"r{i}" for i in range(5)):
        assert _turn(find_request(clocked, rid)) == _turn(find_request(flat, rid))


@settings(max_examples=300, deadline=None)
@given(st.lists(EVENT, max_size=40), st.lists(EVENT, max_size=12), TIMES)
def test_compaction_keeps_deliveries_exact_when_clocks_go_backwards(before: list[dict[str, Any]],
                                                                    after: list[dict[str, Any]],
                                                                    times: list[float]) -> None:
    old = _scrambled(before, times)
    new = _scrambled(after, times[::-1])
    now = 10_000.0  # every request is younger than the TTL
    kept = compact(old, now, request_bytes=1 << 30)
    for rid in (f"r{i}" for i in range(5)):
        assert find_request([*kept, *new], rid) == find_request([*old, *new], rid)
        assert find_request([*compact(kept, now, 1 << 30), *new], rid) == find_request([*old, *new], rid)


def test_the_journal_keeps_one_generation_for_the_live_match(tmp_path: Any) -> None:
    agent_dir = tmp_path
    journal.append(agent_dir, {"time": 3.0, "event": "launched", "pid": 1})
    journal.append(agent_dir, {"time": 2.0, "event": "send", "send_id": "s1", "text_sha": text_sha("x")})
    assert journal.compact_file(agent_dir, now=3.0, limit=0)
    journal.append(agent_dir, {"time": 1.0, "event": "turn_started", "turn_id": "t", "prompt": "x"})
    current = journal.read(agent_dir)
    assert turn_after_send(current, "s1", "x") == (None, False)
    found, anchored = turn_after_send([*journal.read_previous(agent_dir), *since_compaction(current)], "s1", "x")
    assert anchored
    assert found is not None
    assert found["turn_id"] == "t"
