"""Token budgets as people write them (`fleet.tokens`): parsing, formatting back, refusals, and what counts."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleet.errors import FleetError
from fleet.tokens import MAX_TOKENS, budget_use, counted, format_tokens, parse_tokens


@pytest.mark.parametrize(("text", "tokens"), [
    ("200k", 200_000), ("1.5m", 1_500_000), ("250000", 250_000), ("200_000", 200_000), (" 2K ", 2_000),
    ("1b", 1_000_000_000), ("0.5k", 500), ("1.001k", 1_001), ("10b", MAX_TOKENS), (42, 42),
])
def test_budgets_read_as_people_write_them(text: str | int, tokens: int) -> None:
    assert parse_tokens(text) == tokens


@pytest.mark.parametrize(("value", "why"), [
    ("0", "at least 1"), ("0k", "at least 1"), (0, "at least 1"), (-5, "at least 1"), ("-5", "not a positive"),
    ("+5", "not a positive"), ("abc", "not a positive"), ("1e5", "not a positive"), ("", "empty"),
    ("1.2345k", "whole number"), ("1.5", "whole number"), ("11b", "more than the limit"),
    ("1" * 40, "longer than"), (True, "not a number"), (1.5, "not a number"), (None, "not a number"),
    ("5 k", "not a positive"), ("1_", "not a positive"), ("k", "not a positive"),
])
def test_zero_negative_and_garbage_are_refused_with_a_code_and_a_hint(value: Any, why: str) -> None:
    with pytest.raises(FleetError) as info:
        parse_tokens(value, what="budget")
    err = info.value
    assert err.code == "invalid_input"
    assert why in err.message
    assert err.message.startswith("The budget ")
    assert "200k" in err.hint


@given(st.integers(1, MAX_TOKENS))
def test_a_formatted_budget_reads_back_exactly(tokens: int) -> None:
    text = format_tokens(tokens)
    assert parse_tokens(text) == tokens
    assert len(text) <= len(str(tokens))


@given(st.integers(1, 10_000), st.sampled_from(["", "k", "m", "b"]))
def test_whole_numbers_with_a_unit_scale_exactly(n: int, unit: str) -> None:
    scale = {"": 1, "k": 1000, "m": 10**6, "b": 10**9}[unit]
    if n * scale > MAX_TOKENS:
        with pytest.raises(FleetError):
            parse_tokens(f"{n}{unit}")
    else:
        assert parse_tokens(f"{n}{unit.upper()}") == n * scale


FIGURE = st.integers(0, 10**9)


@given(st.fixed_dictionaries({"input": FIGURE, "cached_input": FIGURE, "output": FIGURE, "reasoning": FIGURE,
                              "turns": st.integers(0, 50)}))
def test_a_budget_counts_input_and_output_only(usage: dict[str, int]) -> None:
    """Cached input is part of input and reasoning part of output in Codex's figures: never added twice."""
    assert counted(usage) == usage["input"] + usage["output"]


def test_missing_or_junk_usage_counts_nothing() -> None:
    assert counted(None) == 0
    assert counted({}) == 0
    assert counted({"input": "5", "output": True, "cached_input": 9}) == 0


@given(st.integers(1, MAX_TOKENS), st.integers(0, 10**10), st.integers(0, 10**10))
def test_budget_use_says_used_left_and_over(budget: int, inp: int, out: int) -> None:
    use = budget_use(budget, {"input": inp, "output": out})
    assert use == {"used": inp + out, "left": budget - inp - out, "over": inp + out > budget}
    assert budget_use(None, {"input": inp}) is None
