"""The dashboard's view model (`fleet.dash.model`): pure, one call per case; no Textual, no I/O."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from rich.cells import cell_len

from fleet.dash.model import build_view, cell, clip, fit_widths, pane_text
from fleet.untrusted import is_dangerous

NOW = 1_800_000_000.0


def agent(name: str, state: str = "idle", **extra: Any) -> dict[str, Any]:
    return {"name": name, "state": state, "detail": None, "role": "worker", "since": NOW - 30, "last_turn": None,
            "exit_status": None, "exit_signal": None, "resets_at": None, "rate_limits": None, "approval": None,
            "lease": {"state": "free"}, **extra}


def assignment(id_: str, state: str, created: float, agent_name: str = "a1", **extra: Any) -> dict[str, Any]:
    return {"id": id_, "agent": agent_name, "holder": "lead", "task": "do it", "state": state, "created_at": created,
            "verdict": None, "report_status": None, "reason": None, **extra}


def all_cells(view: Any) -> list[str]:
    out = [view.header, *view.log]
    for rows in (view.agents, view.assignments, view.approvals):
        for row in rows:
            out += row.cells()
    return out


def no_control(text: str) -> bool:
    return not any(is_dangerous(c) or c in "\n\t" for c in text)


# Text an agent may write anywhere: every code point, with the troublemakers over-represented.
agent_text = st.text(st.one_of(st.characters(), st.sampled_from("\x1b\x9b\n\r\t\x07\u202e\u200b\U000e0041[]")),
                     max_size=60)


@settings(max_examples=200, deadline=None)
@given(detail=agent_text, message=agent_text, task=agent_text, command=agent_text, why=agent_text,
       reason=agent_text, holder=agent_text, kind=agent_text, fleet=agent_text)
def test_agent_text_never_puts_a_control_character_in_any_cell(detail: str, message: str, task: str,
                                                               command: str, why: str, reason: str,
                                                               holder: str, kind: str, fleet: str) -> None:
    status = {"fleet": fleet, "agents": [
        agent("a1", "waiting_approval", detail=detail,
              approval={"command": command, "justification": why, "since": NOW - 5},
              last_turn={"outcome": "completed", "last_message": message, "error": None},
              lease={"state": "held", "holder": holder, "token": 3}),
        agent("a2", "exited", exit_status=1, last_turn={"outcome": "failed", "last_message": None,
                                                         "error": {"message": message}})]}
    jobs = [assignment("as-1", "working", NOW - 60, task=task, reason=reason, verdict=reason)]
    watchdog = {"last_tick": {"at": NOW - 5}, "recent": [
        {"at": NOW - 5, "actions": [{"agent": "a1", "action": "request_report", "rung": 1, "reason": reason,
                                     "outcome": "ok"}]}]}
    events = [{"cursor": 1, "time": NOW, "assignment": "as-1", "agent": "a1", "actor": holder, "kind": kind,
               "from": "sent", "to": "working"}]
    view = build_view(status, jobs, watchdog, events, NOW)
    for text in all_cells(view):
        assert no_control(text), repr(text)
    assert no_control(pane_text([detail, message]).replace("\n", ""))


@given(agent_text)
def test_a_cell_is_one_line_within_its_limit(text: str) -> None:
    shown = cell(text, 20)
    assert len(shown) <= 20
    assert cell_len(shown) <= 20
    assert no_control(shown)


def test_markup_in_agent_text_is_kept_as_text() -> None:
    view = build_view({"agents": []}, [assignment("as-1", "sent", NOW, task="[bold red]verified[/]")], None, [], NOW)
    assert view.assignments[0].task == "[bold red]verified[/]"


def test_open_assignments_come_first_then_newest_first() -> None:
    jobs = [assignment("as-a", "verified", NOW - 10), assignment("as-b", "sent", NOW - 300),
            assignment("as-c", "cancelled", NOW - 5), assignment("as-d", "working", NOW - 20),
            assignment("as-e", "reported", NOW - 400)]
    view = build_view({"agents": []}, jobs, None, [], NOW)
    assert [r.id for r in view.assignments] == ["as-d", "as-b", "as-e", "as-c", "as-a"]
    assert [r.open for r in view.assignments] == [True, True, True, False, False]


@given(st.lists(st.tuples(st.sampled_from(["queued", "sent", "working", "reported", "verified", "rejected",
                                           "failed", "cancelled"]), st.floats(0, 1e6)), max_size=30))
def test_no_ended_assignment_is_listed_above_an_open_one(rows: list[tuple[str, float]]) -> None:
    jobs = [assignment(f"as-{i}", state, NOW - age) for i, (state, age) in enumerate(rows)]
    opens = [r.open for r in build_view({"agents": []}, jobs, None, [], NOW).assignments]
    assert opens == sorted(opens, reverse=True)


def test_an_agent_row_shows_its_newest_open_assignment_lease_and_time_in_state() -> None:
    lease = {"state": "held", "holder": "dash:me", "token": 2}
    status = {"fleet": "f", "agents": [agent("a1", "working", lease=lease)]}
    jobs = [assignment("as-old", "sent", NOW - 500), assignment("as-new", "working", NOW - 90),
            assignment("as-done", "verified", NOW - 10)]
    [row] = build_view(status, jobs, None, [], NOW).agents
    assert row.assignment_id == "as-new"
    assert row.assignment == "as-new working 1m"
    assert row.lease == "dash:me#2"
    assert row.in_state == "30s"


def test_state_labels_say_what_a_person_needs_next() -> None:
    status = {"agents": [agent("a1", "exited", exit_status=2), agent("a2", "exited", exit_status=0),
                         agent("a3", "starting", detail="trust prompt"), agent("a4", "limited", resets_at=NOW + 600)]}
    labels = [r.state_label for r in build_view(status, [], None, [], NOW).agents]
    assert labels[0] == "crashed (exit 2)"
    assert labels[1] == "exited"
    assert labels[2] == "starting (trust prompt)"
    assert labels[3].startswith("limited until ")


def test_header_counts_states_in_fleet_order_and_shows_headroom_and_the_last_tick() -> None:
    status = {"fleet": "crew", "agents": [
        agent("a1", "working", rate_limits={"primary": {"used_percent": 40.0}}),
        agent("a2", "idle", rate_limits={"primary": {"used_percent": 75.0}}), agent("a3", "idle")]}
    view = build_view(status, [], {"last_tick": {"at": NOW - 42}, "recent": []}, [], NOW)
    assert view.header == "fleet crew  2 idle 1 working  headroom 25%  watchdog ticked 40s ago"


def test_approvals_list_the_longest_waiting_first_with_command_and_justification() -> None:
    status = {"agents": [
        agent("a1", "waiting_approval",
              approval={"command": "rm -rf build", "justification": "clean", "since": NOW - 5}),
        agent("a2", "waiting_approval",
              approval={"command": "make", "justification": "build", "since": NOW - 50}),
        agent("a3", "idle")]}
    rows = build_view(status, [], None, [], NOW).approvals
    assert [(r.agent, r.waiting, r.command, r.justification) for r in rows] == [
        ("a2", "50s", "make", "build"), ("a1", "<10s", "rm -rf build", "clean")]


def test_the_log_merges_watchdog_actions_and_ledger_events_newest_first() -> None:
    watchdog = {"last_tick": None, "recent": [{"at": NOW - 10, "actions": [
        {"agent": "a1", "action": "request_report", "rung": 1, "reason": "idle", "outcome": "ok"}]}]}
    move = {"assignment": "as-1", "agent": "a1", "kind": "transition"}
    events = [{"cursor": 7, "time": NOW - 20, "actor": "lead", "from": "sent", "to": "working", **move},
              {"cursor": 8, "time": NOW - 1, "actor": "fleet", "from": "working", "to": "reported", **move}]
    log = build_view({"agents": []}, [], watchdog, events, NOW).log
    assert len(log) == 3
    assert "working -> reported" in log[0]
    assert "watchdog a1: request_report (rung 1) ok -- idle" in log[1]
    assert "sent -> working" in log[2]


def test_ages_are_coarse_so_an_idle_screen_rarely_redraws() -> None:
    from fleet.dash.model import ago

    assert [ago(s) for s in (None, 0, 9.9, 10, 59, 60, 119, 7199, 7200, 172799, 172800)] == [
        "-", "<10s", "<10s", "10s", "50s", "1m", "1m", "119m", "2h", "47h", "2d"]


def test_the_filter_keeps_rows_with_every_word() -> None:
    status = {"agents": [agent("alpha", "idle"), agent("beta", "working", role="explorer")]}
    view = build_view(status, [assignment("as-1", "working", NOW, agent_name="beta")], None, [], NOW,
                      filter_text="BETA work")
    assert [r.name for r in view.agents] == ["beta"]
    assert [r.id for r in view.assignments] == ["as-1"]
    assert [r.name for r in build_view(status, [], None, [], NOW, filter_text="nobody").agents] == []


HEADERS = ("AGENT", "STATE", "ROLE", "LEASE", "ASSIGNMENT", "LAST TURN", "FOR")


@given(st.lists(st.tuples(*[st.text(max_size=90)] * len(HEADERS)), max_size=8), st.integers(-5, 250))
def test_fitted_columns_fit_and_never_hide_a_header(rows: list[tuple[str, ...]], available: int) -> None:
    widths = fit_widths(HEADERS, rows, available)
    natural = [max([len(h), *(cell_len(r[i]) for r in rows)]) for i, h in enumerate(HEADERS)]
    assert all(w >= len(h) for w, h in zip(widths, HEADERS, strict=True))
    assert all(w <= n for w, n in zip(widths, natural, strict=True))
    if sum(natural) + 2 * len(HEADERS) <= available or available <= 0:
        assert list(widths) == natural  # room enough (or no size yet): nothing is cut
    elif sum(len(h) for h in HEADERS) + 2 * len(HEADERS) <= available:
        assert sum(widths) + 2 * len(HEADERS) <= available
    for row in rows:
        for text, width in zip(row, widths, strict=True):
            shown = clip(text, width)
            assert cell_len(shown) <= width  # terminal cells: a wide (CJK) character takes two
            kept = shown[:-1]
            assert shown == text or (shown.endswith("…") and (text.startswith(kept) or (
                kept.endswith(" ") and text.startswith(kept[:-1]))))  # a straddling wide char became a space


def test_wide_characters_are_clipped_by_cells_with_an_ellipsis() -> None:
    assert clip("日本語のテキスト", 6) == "日本 …"  # 5 cells kept: two wide chars, then half of one as a space
    assert clip("日本語のテキスト", 7) == "日本語…"
    assert clip("日本語", 6) == "日本語"
    assert clip("e" + "\u0301" * 50, 10) == "e" + "\u0301" * 8 + "…"  # zero-width marks count as characters
    assert fit_widths(("AGENT",), [("日本語のエージェント",)], 0) == (20,)


def test_a_full_assignment_id_is_shortened_to_its_tail_in_the_agents_row_and_kept_in_its_detail() -> None:
    aid = "as-01JABCDEFGHJKMNPQRSTVWXYZ0"
    lease = {"state": "held", "holder": f"assignment:{aid}", "token": 2}
    status = {"agents": [agent("a1", "working", lease=lease)]}
    [row] = build_view(status, [assignment(aid, "working", NOW - 90)], None, [], NOW).agents
    assert row.lease == "as-…VWXYZ0#2"
    assert row.assignment == "as-…VWXYZ0 working 1m"
    assert row.assignment_id == aid
    assert row.detail == f"lease assignment:{aid}#2, assignment {aid}"
    assert [r.name for r in build_view(status, [assignment(aid, "working", NOW)], None, [], NOW,
                                       filter_text=aid).agents] == ["a1"]
