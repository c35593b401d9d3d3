"""Hook decisions: ask once per turn for a report, deny out-of-scope patches, read the context safely."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleet.hooks.gates import (
    ASKS_FILE,
    CONTEXT_FILE,
    ContextError,
    HookContext,
    clear_context,
    parse_context,
    patch_violations,
    pretool_decision,
    read_context,
    record_ask,
    stop_decision,
    write_context,
)

AS_ID = "as-01JABCDEFGHJKMNPQRSTVWXYZ0"
REPORT = ('Done.\n```fleet-report\n{"status":"done","summary":"ok","changed":["docs/a.md"],"tests":"",'
          '"risks":""}\n```')


def ctx(tmp: Path | str = "/w/cwd", **kw: Any) -> HookContext:
    base: dict[str, Any] = {"assignment": AS_ID, "role": "worker", "cwd": str(tmp), "write_paths": ("docs/",)}
    return HookContext(**{**base, **kw})


def stop(message: str | None = "All done, no block.", turn: str = "t1", active: bool = False) -> dict[str, Any]:
    return {"hook_event_name": "Stop", "turn_id": turn, "stop_hook_active": active,
            "last_assistant_message": message, "cwd": "/w/cwd"}


def patch(*paths: str, cwd: str = "/w/cwd", tool: str = "apply_patch") -> dict[str, Any]:
    body = "".join(f"*** Add File: {p}\n+x\n" for p in paths)
    return {"hook_event_name": "PreToolUse", "tool_name": tool, "cwd": cwd,
            "tool_input": {"command": f"*** Begin Patch\n{body}*** End Patch\n"}}


# -- Stop ------------------------------------------------------------------------------------------

def test_a_missing_report_is_asked_for_naming_what_was_wrong() -> None:
    decision = stop_decision(stop(), ctx())
    assert decision is not None
    assert decision["decision"] == "block"
    assert AS_ID in decision["reason"]
    assert "no ```fleet-report block in the message" in decision["reason"]
    assert "```fleet-report\n{" in decision["reason"]  # shows the example


def test_an_invalid_report_is_asked_for_with_its_problem() -> None:
    bad = REPORT.replace('"done"', '"finished"')
    decision = stop_decision(stop(bad), ctx())
    assert decision is not None
    assert "status must be one of done, partial, blocked (got 'finished')" in decision["reason"]


@pytest.mark.parametrize(
    ("payload", "context"),
    [
        (stop(REPORT), ctx()),                              # a valid report
        (stop(active=True), ctx()),                         # Codex is already continuing for a Stop hook
        (stop(), None),                                     # no assignment open
        (stop(), ctx(asked_turns=frozenset({"t1"}))),       # asked once in this turn already
        (stop(turn="other"), ctx(turn_id="t1")),            # not the assignment's turn
        ({**stop(), "turn_id": None}, ctx()),               # no turn to account the ask to
    ],
)
def test_the_stop_hook_stands_down(payload: dict[str, Any], context: HookContext | None) -> None:
    assert stop_decision(payload, context) is None


def test_before_the_receipt_is_known_any_turn_is_the_assignments() -> None:
    assert stop_decision(stop(turn="whatever"), ctx(turn_id=None)) is not None
    assert stop_decision(stop(turn="t1"), ctx(turn_id="t1")) is not None


def test_the_reason_is_bounded() -> None:
    huge = "```fleet-report\n{" + '"x":1,' * 5000 + '"status":"no"}\n```'
    decision = stop_decision(stop(huge), ctx())
    assert decision is not None
    assert len(decision["reason"]) <= 2000


@given(st.lists(st.tuples(st.sampled_from(["t1", "t2", "t3"]), st.booleans(),
                          st.sampled_from([None, "no block", REPORT])), max_size=30))
def test_at_most_one_ask_per_turn_whatever_codex_sends(stops: list[tuple[str, bool, str | None]]) -> None:
    """Codex has no loop guard: simulate any sequence of Stop payloads with the caller's record-keeping."""
    asked: set[str] = set()
    asks: list[str] = []
    for turn, active, message in stops:
        decision = stop_decision(stop(message, turn=turn, active=active), ctx(asked_turns=frozenset(asked)))
        if decision is not None:
            assert not active
            assert message != REPORT
            asks.append(turn)
            asked.add(turn)
    assert len(asks) == len(set(asks))


# -- PreToolUse ------------------------------------------------------------------------------------

def test_a_patch_inside_the_scope_is_allowed() -> None:
    assert pretool_decision(patch("docs/a.md", "docs/b/c.md"), ctx(), follow_links=False) is None


def test_a_patch_outside_the_scope_is_denied_naming_the_paths_and_what_is_allowed() -> None:
    decision = pretool_decision(patch("docs/a.md", "src/x.py", "../y"), ctx(), follow_links=False)
    assert decision is not None
    out = decision["hookSpecificOutput"]
    assert out["hookEventName"] == "PreToolUse"
    assert out["permissionDecision"] == "deny"
    reason = out["permissionDecisionReason"]
    assert "src/x.py (outside the write paths)" in reason
    assert "../y (outside the working directory /w/cwd)" in reason
    assert "docs/a.md" not in reason.split("It may write only")[0]
    assert "It may write only: docs/ (relative to /w/cwd)" in reason


def test_an_explorer_is_denied_any_patch() -> None:
    decision = pretool_decision(patch("docs/a.md"), ctx(role="explorer"), follow_links=False)
    assert decision is not None
    assert "may not modify any file" in decision["hookSpecificOutput"]["permissionDecisionReason"]


def test_relative_patch_paths_resolve_against_the_payload_cwd() -> None:
    assert pretool_decision(patch("a.md", cwd="/w/cwd/docs"), ctx(), follow_links=False) is None
    assert pretool_decision(patch("a.md", cwd="/w/cwd"), ctx(), follow_links=False) is not None


@pytest.mark.parametrize("payload", [patch("x", tool="Bash"), {}])
def test_other_tools_are_not_judged(payload: dict[str, Any]) -> None:
    assert pretool_decision(payload, ctx()) is None


@pytest.mark.parametrize(
    "payload",
    [{"tool_name": "apply_patch", "tool_input": "str"}, {"tool_name": "apply_patch", "tool_input": {"command": 5}}],
)
def test_an_apply_patch_whose_text_cannot_be_read_is_denied(payload: dict[str, Any]) -> None:
    decision = pretool_decision(payload, ctx())
    assert decision is not None
    assert "a patch fleet cannot judge (the patch is not text)" in (
        decision["hookSpecificOutput"]["permissionDecisionReason"])


def test_no_open_assignment_means_no_denial() -> None:
    assert pretool_decision(patch("/etc/passwd"), None) is None


@given(st.lists(st.text(alphabet="ab./\n ", max_size=12), max_size=5), st.sampled_from(["explorer", "worker"]))
def test_a_patch_is_denied_exactly_when_it_has_a_violation(paths: list[str], role: str) -> None:
    payload = patch(*paths)
    decision = pretool_decision(payload, ctx(role=role), follow_links=False)
    assert (decision is None) == (patch_violations(payload, ctx(role=role), follow_links=False) == [])


# -- the context file ------------------------------------------------------------------------------

def test_the_context_round_trips_and_merges_recorded_asks(tmp_path: Path) -> None:
    c = ctx(tmp_path, read_paths=("src/",), turn_id="t1", asked_turns=frozenset({"t0"}))
    write_context(tmp_path, c)
    assert (tmp_path / CONTEXT_FILE).stat().st_mode & 0o777 == 0o600
    assert read_context(tmp_path) == c
    record_ask(tmp_path, AS_ID, "t1", now=1.0)
    record_ask(tmp_path, "as-01JZZZZZZZZZZZZZZZZZZZZZZZ", "t9", now=1.0)  # another assignment's ask
    with (tmp_path / ASKS_FILE).open("a") as f:
        f.write("torn{\n")
    got = read_context(tmp_path)
    assert got is not None
    assert got.asked_turns == {"t0", "t1"}
    assert (tmp_path / ASKS_FILE).stat().st_mode & 0o777 == 0o600


def test_no_file_means_no_open_assignment(tmp_path: Path) -> None:
    assert read_context(tmp_path) is None


def test_a_symlinked_or_oversized_context_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "planted.json"
    target.write_text(json.dumps(ctx(tmp_path).to_json()))
    os.symlink(target, tmp_path / CONTEXT_FILE)
    with pytest.raises(ContextError, match="cannot be opened safely"):
        read_context(tmp_path)
    os.unlink(tmp_path / CONTEXT_FILE)
    (tmp_path / CONTEXT_FILE).write_text(" " * 70000)
    with pytest.raises(ContextError, match="larger than"):
        read_context(tmp_path)


@pytest.mark.parametrize(
    ("obj", "why"),
    [([], "not a version 1"), ({"version": 2}, "not a version 1"),
     ({"version": 1, "assignment": "as-x", "role": "worker", "cwd": "/"}, "assignment must be"),
     ({"version": 1, "assignment": AS_ID, "role": "boss", "cwd": "/"}, "role must be"),
     ({"version": 1, "assignment": AS_ID, "role": "worker", "cwd": "rel"}, "cwd must be"),
     ({"version": 1, "assignment": AS_ID, "role": "worker", "cwd": "/", "write_paths": "docs/"}, "write_paths"),
     ({"version": 1, "assignment": AS_ID, "role": "worker", "cwd": "/", "turn_id": 3}, "turn_id")],
)
def test_a_malformed_context_says_what_is_wrong(obj: object, why: str) -> None:
    with pytest.raises(ContextError, match=why):
        parse_context(obj)


def test_clear_context_removes_only_its_own_assignments_file(tmp_path: Path) -> None:
    write_context(tmp_path, ctx(tmp_path))
    record_ask(tmp_path, AS_ID, "t1")
    assert not clear_context(tmp_path, "as-01JZZZZZZZZZZZZZZZZZZZZZZZ")
    assert (tmp_path / CONTEXT_FILE).exists()
    assert clear_context(tmp_path, AS_ID)
    assert not (tmp_path / CONTEXT_FILE).exists()
    assert not (tmp_path / ASKS_FILE).exists()
