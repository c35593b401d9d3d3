"""`fleet assign --budget` refuses a bad budget before anything is written or sent (no Codex needed:
the request is checked first), on the CLI and through the one schema the MCP tool advertises."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from conftest import Fleet

from fleet.ops import get


@pytest.mark.parametrize(("budget", "why"), [("0", "at least 1 token"), ("-5", "not a positive number"),
                                             ("lots", "not a positive number"), ("1.2345k", "whole number")])
def test_a_bad_budget_is_refused_with_invalid_input_and_a_hint(fleet_factory: Callable[..., Fleet], budget: str,
                                                              why: str) -> None:
    f = fleet_factory(1)
    out = f.json("assign", "Count the files.", "--to", "agent-1", "--budget", budget, ok=False)
    err = out["error"]
    assert err["code"] == "invalid_input"
    assert why in err["message"]
    assert "200k" in err["hint"]
    assert f.json("assignments")["assignments"] == []  # nothing written


def test_the_mcp_schema_takes_a_budget_as_text_or_a_positive_integer() -> None:
    op = get("assignment_create")
    assert "budget" in op.input_schema["properties"]
    for good in ("200k", 5000):
        assert not list(op.validator.iter_errors({"task": "t", "budget": good}))
    for bad in (0, "", 1.5, True, None):
        assert list(op.validator.iter_errors({"task": "t", "budget": bad})), bad
