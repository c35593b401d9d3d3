"""The report contract: finding the last fleet-report block, parsing it, and naming every problem."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from fleet.work.report import (
    EXAMPLE_BLOCK,
    MAX_BLOCK_CHARS,
    MAX_TEXT_CHARS,
    REPORT_SCHEMA,
    Report,
    extract_report,
    find_report_block,
    render_report,
    validate_report,
)

GOOD = {"status": "done", "summary": "Wrote it.", "changed": ["a.txt"], "tests": "pytest: ok", "risks": ""}


def block(obj: Any, info: str = "fleet-report", fence: str = "```") -> str:
    body = obj if isinstance(obj, str) else json.dumps(obj)
    return f"{fence}{info}\n{body}\n{fence}"


def problems_of(message: str) -> list[str]:
    result = extract_report(message)
    assert result.report is None
    return list(result.problems)


def test_a_valid_block_at_the_end_of_a_message_is_the_report() -> None:
    result = extract_report(f"All done.\n\n{block(GOOD)}\n")
    assert result.ok
    assert result.report == Report("done", "Wrote it.", ("a.txt",), "pytest: ok", "")
    assert result.problems == ()


def test_the_last_block_wins_over_earlier_ones() -> None:
    first = {**GOOD, "status": "partial"}
    result = extract_report(f"{block(first)}\nthen more work\n{block(GOOD)}")
    assert result.report is not None
    assert result.report.status == "done"


def test_a_later_invalid_block_is_not_rescued_by_an_earlier_valid_one() -> None:
    assert problems_of(f"{block(GOOD)}\n{block({**GOOD, 'status': 'finished'})}") == [
        "status must be one of done, partial, blocked (got 'finished')"]


def test_a_block_inside_another_fenced_block_does_not_count() -> None:
    quoted = f"````markdown\n{block(GOOD)}\n````"
    assert problems_of(f"Here is an example:\n{quoted}\n") == ["no ```fleet-report block in the message"]


def test_tilde_fences_indent_and_extra_info_words_are_read_as_commonmark_does() -> None:
    assert extract_report(block(GOOD, fence="~~~")).ok
    assert extract_report("   " + block(GOOD, info="fleet-report json")).ok
    assert not extract_report(block(GOOD, info="json")).ok
    assert not extract_report(block(GOOD, info="fleet-reports")).ok


def test_an_unclosed_block_runs_to_the_end_of_the_message() -> None:
    assert extract_report(f"```fleet-report\n{json.dumps(GOOD)}\n").ok


def test_a_closing_fence_must_be_at_least_as_long_as_the_opening_one() -> None:
    text = f"````fleet-report\n{json.dumps(GOOD)}\n```\n````"
    assert find_report_block(text) == f"{json.dumps(GOOD)}\n```"


def test_windows_line_endings_are_accepted() -> None:
    assert extract_report(block(GOOD).replace("\n", "\r\n")).ok


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("", ["no ```fleet-report block in the message"]),
        ("I am done.", ["no ```fleet-report block in the message"]),
        (block(""), ["the fleet-report block is empty; it must hold one JSON object"]),
        (block('{"status": "done",\n "summary": "x" "changed": []}'),
         ["not valid JSON at line 2, column 17 of the block: Expecting ',' delimiter"]),
        (block(json.dumps(GOOD) + "\n{}"),
         ["extra text after the JSON object at line 2, column 1 of the block; the block must hold exactly one "
          "JSON object"]),
        (block([GOOD]), ["the block must hold one JSON object, not an array"]),
        (block('{"status":"done","status":"done","summary":"s","changed":[],"tests":"","risks":""}'),
         ["duplicate key(s) 'status' in the JSON object"]),
        (block({"status": "done"}), ["missing key(s) 'summary', 'changed', 'tests', 'risks'"]),
        (block({**GOOD, "notes": 1}), ["unknown key(s) 'notes'; the keys are status, summary, changed, tests, risks"]),
        (block({**GOOD, "status": 1}), ["status must be one of done, partial, blocked (got 1)"]),
        (block({**GOOD, "summary": "  "}), ["summary must not be empty"]),
        (block({**GOOD, "tests": None}), ["tests must be a string (got null)"]),
        (block({**GOOD, "changed": "a.txt"}), ["changed must be a list of paths (got a string)"]),
        (block({**GOOD, "changed": ["a", 3, "", "a", "x\ny"]}),
         ["changed[1] must be a path string (got a number)", "changed[2] is not a usable path ('')",
          "changed lists 'a' twice", "changed[4] is not a usable path ('x\\ny')"]),
        (block({**GOOD, "risks": "r" * (MAX_TEXT_CHARS + 1)}), [f"risks is longer than {MAX_TEXT_CHARS} characters"]),
    ],
)
def test_each_problem_is_named_precisely(message: str, expected: list[str]) -> None:
    assert problems_of(message) == expected


def test_every_problem_is_listed_at_once() -> None:
    got = problems_of(block({"status": "ok", "summary": 5, "changed": {}, "extra": True}))
    assert got == ["unknown key(s) 'extra'; the keys are status, summary, changed, tests, risks",
                   "missing key(s) 'tests', 'risks'",
                   "status must be one of done, partial, blocked (got 'ok')",
                   "summary must be a string (got a number)",
                   "changed must be a list of paths (got an object)"]


def test_an_oversized_block_is_refused_without_parsing() -> None:
    big = {**GOOD, "summary": "x" * MAX_BLOCK_CHARS}
    result = extract_report(block(big))
    assert result.problems == (f"the fleet-report block is longer than {MAX_BLOCK_CHARS} characters",)
    assert result.block is not None
    assert len(result.block) == MAX_BLOCK_CHARS


def test_the_example_block_is_a_valid_report() -> None:
    assert extract_report(EXAMPLE_BLOCK).ok


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    Draft202012Validator.check_schema(REPORT_SCHEMA)


# -- properties ------------------------------------------------------------------------------------

texts = st.text(max_size=50)
paths = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x2FFF), min_size=1, max_size=30)
reports = st.builds(
    Report,
    status=st.sampled_from(["done", "partial", "blocked"]),
    summary=texts.filter(lambda s: s.strip() != "" and not s.isspace()),
    changed=st.lists(paths, unique=True, max_size=5).map(tuple),
    tests=texts,
    risks=texts,
)


@given(reports, st.text(max_size=200))
def test_render_then_extract_gives_back_the_report(report: Report, prose: str) -> None:
    prose = prose.replace("`", "'").replace("~", "-")  # prose with its own fences is another case
    result = extract_report(f"{prose}\n{render_report(report)}\n")
    assert result.report == report, result.problems


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
near_reports = st.fixed_dictionaries(
    {},
    optional={
        "status": st.sampled_from(["done", "partial", "blocked", "finished", ""]) | json_values,
        "summary": st.text(max_size=20) | json_values,
        "changed": st.lists(st.text(max_size=10), max_size=4) | json_values,
        "tests": st.text(max_size=20) | json_values,
        "risks": st.text(max_size=20) | json_values,
        "extra": json_values,
    },
)


@settings(max_examples=300)
@given(near_reports | json_values)
def test_the_checks_accept_exactly_what_the_schema_accepts(obj: Any) -> None:
    schema_ok = Draft202012Validator(REPORT_SCHEMA).is_valid(obj)
    report, problems = validate_report(obj)
    assert (report is not None) == schema_ok, problems
    assert bool(problems) != schema_ok


@given(st.text(max_size=400))
def test_garbage_never_raises(message: str) -> None:
    result = extract_report(message)
    assert result.ok != bool(result.problems)


@given(st.text(alphabet="`~{}[]\":,\n fleet-report done", max_size=300))
def test_fence_and_json_shaped_garbage_never_raises(message: str) -> None:
    result = extract_report(message)
    assert result.ok != bool(result.problems)


def test_non_strings_and_deep_nesting_never_raise() -> None:
    assert not extract_report(None).ok
    assert not extract_report(b"```fleet-report\n{}\n```").ok
    assert not extract_report(block("[" * 100_000 + "]" * 100_000)).ok
