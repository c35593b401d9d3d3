"""Durations: the grammar people type for deadlines, its errors, and the round trip."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleet.durations import MAX_SECONDS, format_duration, parse_duration
from fleet.errors import InvalidInput


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("10m", 600), ("1h", 3600), ("1h30m", 5400), ("2d", 172800), ("1d2h3m4s", 93784),
     (" 5M ", 300), ("1s", 1), ("30d", MAX_SECONDS)],
)
def test_valid_durations_parse_to_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "why"),
    [("", "empty"), ("   ", "empty"), ("30", "needs a unit"), ("1.5h", "whole numbers"), ("-5m", "whole numbers"),
     ("5 m", "whole numbers"), ("30m1h", "in that order"), ("1h1h", "in that order"), ("0s", "shorter than 1s"),
     ("0h0m", "shorter"), ("31d", "longer than the limit of 30d"), ("5w", "units"), ("x" * 40, "longer than 32"),
     ("٣s", "whole numbers")],
)
def test_invalid_durations_are_refused_with_the_reason(text: str, why: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_duration(text, what="deadline")
    err = info.value
    assert err.code == "invalid_input"
    assert why in err.message
    assert err.message.startswith("The deadline ")
    assert err.hint
    assert err.data["field"] == "deadline"


def test_a_bare_number_gets_a_hint_with_both_readings() -> None:
    with pytest.raises(InvalidInput) as info:
        parse_duration("30")
    assert "30s or 30m" in info.value.hint


def test_a_caller_can_lower_the_cap_but_not_raise_it() -> None:
    with pytest.raises(InvalidInput, match="limit of 1m"):
        parse_duration("2m", max_seconds=60)
    with pytest.raises(InvalidInput, match="limit of 30d"):
        parse_duration("40d", max_seconds=100 * 86400)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (0.4, "0s"), (59.6, "1m"), (5400, "1h30m"), (86400 + 1, "1d1s"), (-90, "-1m30s")],
)
def test_format_duration_uses_the_largest_units(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@given(st.integers(min_value=1, max_value=int(MAX_SECONDS)))
def test_format_then_parse_is_the_identity(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


@given(st.text(max_size=40))
def test_any_text_parses_or_raises_invalid_input(text: str) -> None:
    try:
        value = parse_duration(text)
    except InvalidInput:
        return
    assert 1 <= value <= MAX_SECONDS
    assert value == int(value)
