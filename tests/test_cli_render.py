"""What a person reads in `fleet status` and `fleet show`: the report, not its fence; no `None`."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleet.cli.agents import _last_message
from fleet.cli.work import _render_show


def report_message(status: str = "done", summary: str = "Wrote the summary.") -> str:
    body = {"status": status, "summary": summary, "changed": [], "tests": "", "risks": ""}
    return f"Wrote the summary.\n\n```fleet-report\n{json.dumps(body)}\n```"


def test_status_shows_a_reports_status_and_summary_never_its_fence() -> None:
    shown = _last_message(report_message())
    assert shown == "report done: Wrote the summary."
    assert "```" not in shown
    assert "{" not in shown


def test_a_message_without_a_valid_report_shows_its_first_words() -> None:
    assert _last_message("All done here, nothing else to say about it at all") == repr("All done here, nothing "
                                                                                      "else to say about")
    assert _last_message("```fleet-report\n{not json\n```").startswith("'```fleet-report")
    assert _last_message(None) == "-"


@given(st.text(max_size=300))
def test_the_last_message_cell_is_one_escaped_line(summary: str) -> None:
    for message in (summary, report_message(summary=summary or "s")):
        shown = _last_message(message)
        assert "\n" not in shown
        assert "\x1b" not in shown
        assert "\x9b" not in shown
        assert len(shown) <= 200


def test_show_prints_the_creation_event_without_a_none_state(capsys: pytest.CaptureFixture[str]) -> None:
    now = time.time()
    _render_show({"id": "as-1", "agent": "mila", "state": "queued", "task": "t", "skills": [], "write_paths": [],
                  "read_paths": [], "checks": [], "receipt": None, "report": None, "verification": None,
                  "holder": "lead", "created_at": now, "updated_at": now, "deadline": None, "reason": None,
                  "events": [{"cursor": 1, "time": now, "kind": "created", "from": None, "to": "queued",
                              "actor": "lead"},
                             {"cursor": 2, "time": now, "kind": "transition", "from": "queued", "to": "sent",
                              "actor": "fleet"}]})
    out = capsys.readouterr().out
    assert "None" not in out
    assert "created -> queued by lead" in out
    assert "transition queued -> sent by fleet" in out


def test_status_says_what_a_full_access_agents_verdicts_are_worth(capsys: pytest.CaptureFixture[str]) -> None:
    from fleet.cli.agents import _render_status

    def agent(name: str, sandbox: str) -> dict[str, object]:
        return {"name": name, "state": "idle", "detail": None, "role": "worker", "pid": 1, "since": None,
                "last_turn": None, "lease": None, "sandbox": sandbox}

    _render_status({"agents": [agent("mila", "workspace-write")]})
    assert "full-access" not in capsys.readouterr().out
    _render_status({"agents": [agent("mila", "workspace-write"), agent("noor", "danger-full-access")]})
    out = capsys.readouterr().out
    assert "note: noor run(s) in danger-full-access" in out
    assert "worth no more than its own word" in out


def test_status_has_an_account_column_only_when_an_account_is_known(capsys: pytest.CaptureFixture[str]) -> None:
    from fleet.cli.agents import _render_status

    def agent(name: str, account: str | None) -> dict[str, object]:
        return {"name": name, "state": "idle", "detail": None, "role": "worker", "pid": 1, "since": None,
                "last_turn": None, "lease": None, "sandbox": "workspace-write", "account": account}

    _render_status({"agents": [agent("mila", None)]})
    assert "ACCOUNT" not in capsys.readouterr().out
    _render_status({"agents": [agent("mila", "team-a"), agent("noor", None)]})
    header, mila, noor = capsys.readouterr().out.splitlines()
    assert header.split()[:4] == ["AGENT", "STATE", "ROLE", "ACCOUNT"]
    assert mila.split()[:4] == ["mila", "idle", "worker", "team-a"]
    assert noor.split()[:4] == ["noor", "idle", "worker", "-"]
