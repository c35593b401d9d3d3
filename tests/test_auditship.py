"""The pure parts of copying the hook's audit records to the shared store (`fleet.service.auditship`):
reading `audit.jsonl` in bounded chunks from a cursor, and choosing what to copy. The copying itself,
against PostgreSQL, is in tests/store/test_store_auditship.py."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from fleet import audit
from fleet.service.auditship import Cursor, complete_lines, copies, head_hash, read_cursor, resume_at

_LINE = st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"."))


@given(lines=st.lists(_LINE, max_size=20), partial=_LINE, start=st.integers(0, 10**9))
def test_complete_lines_are_every_line_before_the_last_newline(lines: list[bytes], partial: bytes,
                                                               start: int) -> None:
    data = b"".join(line + b"\n" for line in lines) + partial
    got, end, skipping = complete_lines(data, start, skipping=False, at_bound=False)
    assert got == lines
    assert end == start + len(data) - len(partial)  # the line being written stays for the next read
    assert not skipping


@given(lines=st.lists(_LINE, max_size=30), partial=_LINE, bound=st.integers(1, 50))
def test_reading_in_bounded_chunks_yields_each_short_line_once_and_skips_long_ones(
        lines: list[bytes], partial: bytes, bound: int) -> None:
    """The tick's loop over many ticks: every read starts at a line's start or inside a skipped line."""
    data = b"".join(line + b"\n" for line in lines) + partial
    offset, skipping, seen = 0, False, []
    while True:
        chunk = data[offset:offset + bound]
        got, end, skipping = complete_lines(chunk, offset, skipping=skipping, at_bound=len(chunk) == bound)
        seen += got
        if end == offset:
            break
        assert end > offset
        offset = end
    assert seen == [line for line in lines if len(line) < bound]
    assert offset <= len(data)


def test_a_cursor_resumes_only_on_the_same_unshrunk_file_with_the_same_start() -> None:
    cursor = Cursor(1, 2, 100, head_hash(b"x" * 100), skipping=True)
    assert resume_at(cursor, 1, 2, 100, b"x" * 100) == (100, True)
    assert resume_at(cursor, 1, 2, 500, b"x" * 100) == (100, True)
    assert resume_at(None, 1, 2, 500, b"") == (0, False)
    assert resume_at(cursor, 1, 3, 500, b"x" * 100) == (0, False)  # replaced (rotated by renaming)
    assert resume_at(cursor, 9, 2, 500, b"x" * 100) == (0, False)
    assert resume_at(cursor, 1, 2, 99, b"x" * 99) == (0, False)  # truncated
    assert resume_at(cursor, 1, 2, 500, b"y" * 100) == (0, False)  # truncated and written past the cursor


def test_only_well_formed_hook_records_are_copied_keyed_by_their_line(tmp_path: Path) -> None:
    audit.record(tmp_path, "approval.policy", surface="hook", holder="watchdog:policy", agent="w1", request="r-1",
                 decision="allow", reason="listed")
    audit.record(tmp_path, "agent_claim", holder="alice", outcome="ok")
    audit.record(tmp_path, "watchdog.remind", reason='"event":"approval.policy"')  # only looks like one
    lines = (tmp_path / "audit.jsonl").read_bytes().split(b"\n")[:-1]
    lines += [b'{"time":1,"event":"approval.policy"', b'["event","approval.policy"]',
              b'{"time":"soon","event":"approval.policy"}', b'{"time":true,"event":"approval.policy"}',
              b'{"time":NaN,"event":"approval.policy"}', b'{"time":1' + b"0" * 400 + b',"event":"approval.policy"}',
              b'{"time":1,"event":"approval.policy","pad":"' + b"x" * 70_000 + b'"}']
    got = copies(lines)
    assert [(key, entry["request"]) for key, entry in got] == [(hashlib.sha256(lines[0]).hexdigest(), "r-1")]
    assert got[0][1] == json.loads(lines[0])  # the record as the hook wrote it


def test_a_cursor_that_cannot_be_read_is_no_cursor(tmp_path: Path) -> None:
    path = tmp_path / "audit.shipped"
    assert read_cursor(path) is None
    for text in ("{", "[]", '{"device": 1}', '{"device": 1, "inode": 2, "offset": -5, "head": ""}',
                 '{"device": true, "inode": 2, "offset": 5, "head": ""}',
                 '{"device": 1, "inode": 2, "offset": 5, "head": "", "more": 1}'):
        path.write_text(text)
        assert read_cursor(path) is None, text
    path.write_text('{"device": 1, "inode": 2, "offset": 5, "head": "ab", "skipping": false}')
    assert read_cursor(path) == Cursor(1, 2, 5, "ab", False)
    path.unlink()
    path.symlink_to(tmp_path / "elsewhere")
    assert read_cursor(path) is None
