"""Token usage folds, pure: a turn's usage from the rollout (the fold and the Stop hook's reading agree),
the session's totals from the journal (exact through compactions), an assignment's sum."""

from __future__ import annotations

import json
import random
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from fleet.agents.journal import compact, session_usage, turn_usages
from fleet.agents.rollout import facts
from fleet.agents.state import read_journal
from fleet.hooks import receiver
from fleet.vocab import USAGE_KEYS, TokenUsage, add_usage
from fleet.work.progress import assignment_usage

FIGURE = st.integers(0, 10**7)
USAGE = st.builds(lambda i, c, o, r: TokenUsage(input=i, cached_input=c, output=o, reasoning=r),
                  FIGURE, FIGURE, FIGURE, FIGURE)


def _codex(u: TokenUsage) -> dict[str, int]:
    return {"input_tokens": u["input"], "cached_input_tokens": u["cached_input"], "cache_write_input_tokens": 0,
            "output_tokens": u["output"], "reasoning_output_tokens": u["reasoning"],
            "total_tokens": u["input"] + u["output"]}


def _rollout(turns: list[list[TokenUsage]], records: bool) -> list[dict[str, Any]]:
    """A rollout as Codex 0.169 writes it: per response a `token_usage_record` (its running per-turn
    figure; only with `records`) and a `token_count` with `last_token_usage` and the session total."""
    out: list[dict[str, Any]] = [{"type": "session_meta", "payload": {}}]
    total: list[TokenUsage] = []
    for n, responses in enumerate(turns):
        turn = f"turn-{n}"
        out.append({"type": "event_msg", "payload": {"type": "task_started", "turn_id": turn}})
        done: list[TokenUsage] = []
        for u in responses:
            done.append(u)
            total.append(u)
            if records:
                out.append({"type": "token_usage_record", "payload": {
                    "turn_id": turn, "usage": _codex(u), "turn_token_usage": _codex(add_usage(done)),
                    "thread_token_usage": _codex(add_usage(total))}})
            out.append({"type": "event_msg", "payload": {"type": "token_count", "info": {
                "total_token_usage": _codex(add_usage(total)), "last_token_usage": _codex(u)}, "rate_limits": None}})
        out.append({"type": "event_msg", "payload": {"type": "task_complete", "turn_id": turn,
                                                     "last_agent_message": "ok", "completed_at": 1000 + n}})
    return out


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(USAGE, min_size=1, max_size=4), min_size=1, max_size=5), st.booleans())
def test_each_turn_s_usage_is_the_exact_sum_of_its_responses_never_the_session_total(
        turns: list[list[TokenUsage]], records: bool) -> None:
    """With Codex's per-turn records or only `token_count`s, the rollout fold and the Stop hook's
    reading of the tail give every turn the sum of its own responses' usage."""
    rollout = _rollout(turns, records)
    ends = facts(rollout).ends
    lines = [json.dumps(r).encode() for r in rollout]
    for n, responses in enumerate(turns):
        want = add_usage(responses)
        assert ends[f"turn-{n}"].usage == want
        # the hook reads the file as it stands at the turn's Stop: up to (not with) its task_complete
        upto = next(i for i, r in enumerate(rollout) if r["payload"].get("type") == "task_complete"
                    and r["payload"]["turn_id"] == f"turn-{n}")
        assert receiver._usage(lines[:upto], f"turn-{n}") == want


def test_a_turn_whose_start_left_the_tail_without_usage_records_has_no_usage() -> None:
    rollout = _rollout([[TokenUsage(input=5, cached_input=0, output=1, reasoning=0)]], records=False)
    tail = [r for r in rollout if r["payload"].get("type") != "task_started"]
    assert facts(tail).ends["turn-0"].usage is None
    assert receiver._usage([json.dumps(r).encode() for r in tail], "turn-0") is None


ZERO = TokenUsage(input=0, cached_input=0, output=0, reasoning=0)
ONE_REASONING = TokenUsage(input=0, cached_input=0, output=0, reasoning=1)


def _journal(turns: list[tuple[list[TokenUsage], bool]]) -> list[dict[str, Any]]:
    """A session: launch, then per turn a start, the Stop hook's running figure for each ask and the
    turn's end (with the whole turn's figure, or none when `ended` is false: still open)."""
    events: list[dict[str, Any]] = [{"event": "launched", "pid": 1}]
    for n, (asks, ended) in enumerate(turns):
        turn = f"t{n}"
        events.append({"event": "turn_started", "turn_id": turn, "prompt": "p"})
        for k in range(1, len(asks)):
            events.append({"event": "report_asked", "turn_id": turn, "assignment": "as-1",
                           "usage": dict(add_usage(asks[:k]))})
        if ended:
            events.append({"event": "turn_completed", "turn_id": turn, "last_message": "m",
                           "usage": dict(add_usage(asks))})
    return [{**ev, "time": 100.0 + i} for i, ev in enumerate(events)]


TURNS = st.lists(st.tuples(st.lists(USAGE, min_size=1, max_size=3), st.booleans()), max_size=6)


@settings(max_examples=200, deadline=None)
@given(TURNS)
def test_the_session_total_is_the_exact_sum_of_each_turn_s_latest_figure(
        turns: list[tuple[list[TokenUsage], bool]]) -> None:
    events = _journal(turns)
    want = add_usage(add_usage(asks if ended else asks[:-1]) for asks, ended in turns)
    assert read_journal(events).usage == want == session_usage(events)


@settings(max_examples=200, deadline=None)
@given(TURNS, st.randoms(use_true_random=False))
def test_the_order_of_different_turns_records_does_not_change_the_total(
        turns: list[tuple[list[TokenUsage], bool]], rnd: random.Random) -> None:
    """Turns' final records in any order sum the same (a turn's own records keep their order)."""
    finals = [ev for ev in _journal(turns) if ev["event"] == "turn_completed"]
    shuffled = list(finals)
    rnd.shuffle(shuffled)
    assert session_usage(shuffled) == session_usage(finals)


@example([([ZERO], False)] * 3 + [([ZERO], True), ([ZERO, ONE_REASONING, ZERO], False), ([ZERO], False)], [])
@settings(max_examples=200, deadline=None)
@given(TURNS, st.lists(USAGE, min_size=1, max_size=3))
def test_compaction_keeps_the_session_total_exact_now_and_after_the_open_turn_ends(
        turns: list[tuple[list[TokenUsage], bool]], later: list[TokenUsage]) -> None:
    events = _journal(turns)
    kept = compact(events, 150.0)
    assert read_journal(kept).usage == read_journal(events).usage
    assert read_journal(compact(kept, 151.0)).usage == read_journal(events).usage
    last = next((ev["turn_id"] for ev in reversed(events) if ev["event"] == "turn_started"), None)
    if last is not None:  # the last turn's Stop comes after the compaction, with its whole figure
        end = {"event": "turn_completed", "turn_id": last, "time": 500.0, "usage": dict(add_usage(later))}
        assert read_journal([*kept, end]).usage == read_journal([*events, end]).usage


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(USAGE, st.integers(0, 100)), max_size=8), st.integers(0, 100), st.integers(0, 100),
       st.randoms(use_true_random=False))
def test_an_assignment_sums_exactly_the_turns_between_its_send_and_its_end(
        turns: list[tuple[TokenUsage, int]], sent: int, length: int, rnd: random.Random) -> None:
    usages = {f"t{n}": (float(at), u) for n, (u, at) in enumerate(turns)}
    got = assignment_usage(usages, {"t0"}, float(sent), float(sent + length))
    mine = [u for n, (u, at) in enumerate(turns) if n == 0 or sent <= at <= sent + length]
    assert got == {**{k: add_usage(mine)[k] for k in USAGE_KEYS}, "turns": len(mine)}
    items = list(usages.items())
    rnd.shuffle(items)
    assert assignment_usage(dict(items), {"t0"}, float(sent), float(sent + length)) == got


def test_turn_usages_keeps_each_turn_s_latest_figure_with_its_time() -> None:
    small, big = TokenUsage(input=1, cached_input=0, output=1, reasoning=0), \
        TokenUsage(input=9, cached_input=4, output=3, reasoning=2)
    events = [{"time": 1.0, "event": "report_asked", "turn_id": "a", "usage": dict(small)},
              {"time": 2.0, "event": "turn_completed", "turn_id": "a", "usage": dict(big)},
              {"time": 3.0, "event": "turn_completed", "turn_id": "b"}]
    assert turn_usages(events) == {"a": (2.0, big)}
