"""Journal and audit lines are parsed in one batch when they can be, with the same result as line by line."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from fleet.fsutil import _parse_lines, parse_jsonl

OBJECTS = st.dictionaries(st.text(max_size=5), st.one_of(st.integers(), st.text(max_size=8), st.none(),
                                                         st.floats(allow_nan=False)), max_size=3)
GOOD = OBJECTS.map(lambda o: json.dumps(o).encode())
TORN = GOOD.flatmap(lambda line: st.integers(0, max(0, len(line) - 1)).map(lambda n: line[:n]))
ODD = st.sampled_from([b"", b"   ", b"1", b"[1, 2]", b'"s"', b"null", b'{"a": 1},{"b": 2}', b'{"a": 1}{"b": 2}',
                       b"1,2", b"{", b"}", b"]", b",", b'{"a": [1', b'2]}', b"\xff\xfe", b'{"a": NaN}',
                       b"\xef\xbb\xbf{}", b'{"a": 1},', b"\r"])
LINES = st.lists(st.one_of(GOOD, GOOD, TORN, ODD, st.binary(max_size=12)), max_size=12)


@settings(max_examples=500)
@given(lines=LINES)
def test_the_batch_parse_gives_what_parsing_line_by_line_gives(lines: list[bytes]) -> None:
    assert json.dumps(parse_jsonl(lines)) == json.dumps(list(_parse_lines(lines)))  # NaN != NaN


def test_well_formed_lines_are_all_kept_in_order() -> None:
    lines = [json.dumps({"n": i}).encode() for i in range(100)]
    assert [o["n"] for o in parse_jsonl(lines)] == list(range(100))
