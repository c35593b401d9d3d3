"""`fleet.untrusted`, pure: what escaping and marking guarantee for any text (property tests)."""

from __future__ import annotations

import json
import sys
import unicodedata
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from fleet.untrusted import UNTRUSTED_KEY, escape_terminal, is_dangerous, json_text, mark_paths, one_line

text_with_controls = st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from(
    ["\x1b", "\x9b", "\x07", "\r", "\u202e", "\u2066", "\u200b", "\ufeff", "\U000e0041", "\n", "\t"]))


def raw_dangerous(text: str) -> list[str]:
    return sorted({c for c in text if is_dangerous(c)})


# ---- pure: escaping ------------------------------------------------------------------------------

@given(text_with_controls)
def test_escaped_text_has_no_control_or_format_character_but_newline_and_tab(text: str) -> None:
    out = escape_terminal(text)
    assert raw_dangerous(out) == []
    assert out.count("\n") == text.count("\n")
    assert out.count("\t") == text.count("\t")


@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cc", "Cf", "Zl", "Zp", "Cs"))))
def test_printable_text_is_left_as_it_is(text: str) -> None:
    assert escape_terminal(text) == text


def test_every_control_format_and_separator_code_point_is_escaped() -> None:
    """The hard-coded ranges cover what this Python's Unicode calls Cc, Cf, Zl, Zp and Cs."""
    missed = [hex(cp) for cp in range(sys.maxunicode + 1)
              if unicodedata.category(chr(cp)) in ("Cc", "Cf", "Zl", "Zp", "Cs") and chr(cp) not in "\n\t"
              and not is_dangerous(chr(cp))]
    assert missed == []


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | text_with_controls,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text_with_controls, inner, max_size=4),
    max_leaves=12)


@given(json_values)
def test_json_for_a_terminal_decodes_to_the_same_value_and_has_nothing_raw(value: Any) -> None:
    for text in (json_text(value), json_text(value, indent=None, separators=(",", ":"))):
        assert json.loads(text) == value
        assert raw_dangerous(text) == []


# ---- pure: marking -------------------------------------------------------------------------------

@given(st.lists(st.sampled_from(["report", "summary", "lines", "reason"]), min_size=1, max_size=3), text_with_controls)
def test_marking_a_path_twice_marks_it_once_and_changes_nothing_else(path: list[str], text: str) -> None:
    doc: dict[str, Any] = {"keep": text}
    node = doc
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = text
    once = mark_paths(doc, [path])
    assert mark_paths(once, [path]) == once
    assert once["keep"] == text or path == ["keep"]
    inner = once
    for key in path:
        inner = inner[key]
    assert inner == {UNTRUSTED_KEY: text}


@given(text_with_controls)
def test_one_line_fields_keep_no_newline(text: str) -> None:
    out = one_line(text)
    assert "\n" not in out
    assert raw_dangerous(out) == []


def test_everything_a_renderer_prints_inside_the_block_is_escaped(capsys: Any) -> None:
    from fleet.untrusted import escaping_stdout

    with escaping_stdout():
        print("report: \x1b]52;c;eA==\x07 \u202e")
        print("warning: \x9b2J", file=sys.stderr)
    out, err = capsys.readouterr()
    assert out == "report: \\x1b]52;c;eA==\\x07 \\u202e\n"
    assert err == "warning: \\x9b2J\n"
