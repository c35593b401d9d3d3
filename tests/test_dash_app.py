"""`fleet dash` without Codex: the layout, the keys, and errors shown as one line (agents stay stopped).

Driven by Textual's own pilot (`App.run_test`) against a real fleet config and state dir; the
Codex-backed tests (states, approvals, cancel) are in tests/codex/test_dash.py.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from html import unescape
from typing import Any

from conftest import Fleet
from textual.widgets import DataTable, Input

from fleet.dash.app import DashApp
from fleet.dash.client import Client


async def until(pilot: Any, predicate: Callable[[], Any], timeout: float = 20.0) -> Any:
    """Let the app run until `predicate()` is truthy; fail with its last value otherwise."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (value := predicate()):
        assert loop.time() < deadline, f"condition not met within {timeout}s (last value: {value!r})"
        await pilot.pause(0.05)
    return value


def screen_text(app: DashApp) -> str:
    """The screen as text, from Textual's SVG export (one line per row of cells)."""
    svg = app.export_screenshot()
    rows: dict[float, list[tuple[float, str]]] = {}
    for m in re.finditer(r'<text[^>]*x="([\d.]+)" y="([\d.]+)"[^>]*>(.*?)</text>', svg):
        rows.setdefault(float(m.group(2)), []).append((float(m.group(1)), unescape(m.group(3))))
    return "\n".join("".join(t for _, t in sorted(r)).replace("\xa0", " ") for _, r in sorted(rows.items()))


def message(app: DashApp) -> str:
    return str(app.query_one("#message").render())


def test_the_layout_has_every_region_and_the_footer_lists_the_keys(fleet_factory: Callable[..., Fleet]) -> None:
    f = fleet_factory(2)

    async def main() -> None:
        app = DashApp(Client(str(f.path)), poll_seconds=0.2)
        async with app.run_test(size=(160, 45)) as pilot:
            await until(pilot, lambda: app.view is not None and len(app.view.agents) == 2)
            text = await until(pilot, lambda: "approve" in (t := screen_text(app)) and t)  # the footer is drawn late
            for region in ("agents", "screen: agent-1", "assignments (open first)", "approvals waiting",
                           "log: watchdog and ledger"):
                assert region in text, text
            assert f"fleet {f.name}  2 stopped" in text
            for column in ("AGENT", "STATE", "ROLE", "LEASE", "ASSIGNMENT", "LAST TURN", "FOR", "VERDICT",
                           "COMMAND", "JUSTIFICATION"):
                assert column in text
            for key in ("approve", "deny", "send", "interrupt", "cancel", "start", "stop", "tick", "filter", "quit"):
                assert key in text
            await pilot.press("question_mark")
            await until(pilot, lambda: type(app.screen).__name__ == "HelpScreen")
            assert "attach to the selected agent" in screen_text(app)
            await pilot.press("escape")
            await until(pilot, lambda: type(app.screen).__name__ != "HelpScreen")

    asyncio.run(main())


def test_j_k_select_and_the_filter_narrows_the_table(fleet_factory: Callable[..., Fleet]) -> None:
    f = fleet_factory(3)

    async def main() -> None:
        app = DashApp(Client(str(f.path)), poll_seconds=0.2)
        async with app.run_test(size=(160, 45)) as pilot:
            await until(pilot, lambda: app.view is not None and len(app.view.agents) == 3)
            assert app.selected == "agent-1"
            await pilot.press("j", "j")
            await until(pilot, lambda: app.selected == "agent-3")
            await pilot.press("k")
            await until(pilot, lambda: app.selected == "agent-2")
            await pilot.press("slash")
            await until(pilot, lambda: type(app.screen).__name__ == "AskScreen")
            await pilot.press(*"agent-3", "enter")
            await until(pilot, lambda: app.view is not None and [r.name for r in app.view.agents] == ["agent-3"])

    asyncio.run(main())


def test_an_error_is_one_line_with_its_hint_and_the_app_goes_on(fleet_factory: Callable[..., Fleet]) -> None:
    f = fleet_factory(1)

    async def main() -> None:
        app = DashApp(Client(str(f.path)), poll_seconds=0.2)
        async with app.run_test(size=(160, 45)) as pilot:
            await until(pilot, lambda: app.view is not None and app.view.agents)
            await pilot.press("a")  # nothing is waiting on an approval: none shown, so nothing is sent
            await until(pilot, lambda: "no approval of agent-1 is shown" in message(app))
            await pilot.press("i")  # not running: the service's error, on one line with its hint
            line = await until(pilot, lambda: "interrupt agent-1: " in message(app) and "(" in message(app)
                               and message(app))
            assert "\n" not in line
            await pilot.press("x")
            await until(pilot, lambda: type(app.screen).__name__ == "ConfirmScreen")
            await pilot.press("y")
            await until(pilot, lambda: "stop agent-1: agent-1: not_running" in message(app))
            polls = app.polls
            await until(pilot, lambda: app.polls > polls)  # still polling
        assert app.return_code in (None, 0)

    asyncio.run(main())
    stops = [r for r in f.audit() if r.get("event") == "agent_stop"]
    assert [(r["surface"], r["holder"].split(":")[0]) for r in stops] == [("dash", "dash")]


def test_keys_typed_in_a_dialog_are_text_not_commands(fleet_factory: Callable[..., Fleet]) -> None:
    f = fleet_factory(2)

    async def main() -> None:
        app = DashApp(Client(str(f.path)), poll_seconds=0.2)
        async with app.run_test(size=(160, 45)) as pilot:
            await until(pilot, lambda: app.view is not None and len(app.view.agents) == 2)
            await pilot.press("s")
            await until(pilot, lambda: type(app.screen).__name__ == "AskScreen")
            await pilot.press(*"jaxq?/")
            assert app.screen.query_one("#answer", Input).value == "jaxq?/"
            assert (app.selected, type(app.screen).__name__) == ("agent-1", "AskScreen")
            await pilot.press("escape")
            await until(pilot, lambda: type(app.screen).__name__ == "Screen")
            assert app.is_running

    asyncio.run(main())
    assert not (f.state_dir / "audit.jsonl").exists()


def test_read_only_mode_turns_every_action_off(fleet_factory: Callable[..., Fleet]) -> None:
    f = fleet_factory(1)

    async def main() -> None:
        app = DashApp(Client(str(f.path)), read_only=True, poll_seconds=0.2)
        async with app.run_test(size=(160, 45)) as pilot:
            await until(pilot, lambda: app.view is not None and app.view.agents)
            await pilot.press("x", "a", "t")
            await pilot.pause(0.3)
            assert type(app.screen).__name__ == "Screen"
            assert "read-only" in message(app)
        assert not (f.state_dir / "audit.jsonl").exists() or all(
            r.get("event") not in ("agent_stop", "agent_approve", "watchdog_tick") for r in f.audit())

    asyncio.run(main())


def test_the_picker_ends_with_the_selected_agent(fleet_factory: Callable[..., Fleet]) -> None:
    f = fleet_factory(2)

    async def main() -> str | None:
        app = DashApp(Client(str(f.path)), picker=True, poll_seconds=0.2)
        async with app.run_test(size=(160, 45)) as pilot:
            await until(pilot, lambda: app.view is not None and len(app.view.agents) == 2)
            await pilot.press("j", "enter")
        return app.return_value

    assert asyncio.run(main()) == "agent-2"


def test_every_agents_column_header_is_on_screen_at_common_sizes(fleet_factory: Callable[..., Fleet]) -> None:
    """At 80x24 and 175x45 (a browser at 1400 px) with a long lease holder: the agents table's columns
    fit its width (long cells cut with an ellipsis), so no header is pushed off to the right."""
    f = fleet_factory(2)
    f.json("claim", "agent-1", "--holder", "a-person-with-a-rather-long-holder-name-for-a-lease", "--ttl", "600")

    async def main(size: tuple[int, int]) -> None:
        app = DashApp(Client(str(f.path)), poll_seconds=0.2)
        async with app.run_test(size=size) as pilot:
            await until(pilot, lambda: app.view is not None and len(app.view.agents) == 2)
            text = await until(pilot, lambda: "agent-2" in (t := screen_text(app)) and t)
            header = next(line for line in text.splitlines() if "AGENT" in line and "STATE" in line)
            for column in ("AGENT", "STATE", "ROLE", "LEASE", "ASSIGNMENT", "LAST TURN", "FOR"):
                assert column in header, text
            assert "a-person-with" in text, text
            assert "…" in text, text

    for size in ((80, 24), (175, 45)):
        asyncio.run(main(size))


def test_a_frame_drawn_before_the_table_is_idle_shows_whole_cells(fleet_factory: Callable[..., Fleet]) -> None:
    """Under load a frame can be drawn between adding the rows and the table's idle; DataTable's own
    auto widths are measured only then and the drawn lines stay cached (agents shown as `agent`,
    `stopp` for good). The dashboard sets the widths itself, so a row drawn at once is whole."""
    f = fleet_factory(2)

    async def main() -> None:
        app = DashApp(Client(str(f.path)), poll_seconds=60)
        # wide enough that the agents table never changes width (below 120 columns it moves the screen
        # under itself once laid out, and a frame drawn before that fits the narrower table)
        async with app.run_test(size=(160, 45)) as pilot:
            await until(pilot, lambda: app.view is not None and len(app.view.agents) == 2)
            table = app.query_one("#agents", DataTable)
            app._shown.pop("agents")
            table.clear(columns=True)
            app._widths.pop("agents")
            app.render_view()
            drawn = "".join(s.text for s in table.render_line(1))  # before the table's next idle
            assert "agent-1" in drawn, drawn
            assert "stopped" in drawn, drawn
            await pilot.pause(0.2)
            assert "agent-1" in "".join(s.text for s in table.render_line(1))

    asyncio.run(main())



def test_a_poll_landing_after_quit_is_dropped_not_raised(fleet_factory: Callable[..., Fleet]) -> None:
    """A poll runs on a thread of its own; its result can reach the app while `q` tears the screen down.
    Applying it then found no `#agents` table and ended the app with a traceback (seen in CI under load)."""
    from fleet.dash.app import Polled

    f = fleet_factory(1)
    app = DashApp(Client(str(f.path)), poll_seconds=60)
    late: list[Polled] = []

    async def main() -> None:
        async with app.run_test(size=(100, 30)) as pilot:
            await until(pilot, lambda: app.view is not None and len(app.view.agents) == 1)
            late.append(Polled(app.poller.poll(None)))
        assert not app.is_running

    asyncio.run(main())
    polls = app.polls
    app.on_polled(late[0])  # the screen is gone: dropped, no NoMatches
    assert app.polls == polls


def test_q_while_an_action_runs_says_so_and_quits_when_it_ends(fleet_factory: Callable[..., Fleet]) -> None:
    """An action is never cut halfway: the first q names the action it waits for and the app quits when
    that ends. The real tick runs; it is only held at its start until the test lets it go."""
    import threading

    f = fleet_factory(1)
    app = DashApp(Client(str(f.path)), poll_seconds=60)
    release = threading.Event()
    real_call = app.client.call

    def held_call(op: str, args: dict[str, Any]) -> dict[str, Any]:
        if op == "watchdog_tick":
            release.wait(30)
        return real_call(op, args)

    app.client.call = held_call  # type: ignore[method-assign]

    async def main() -> None:
        async with app.run_test(size=(120, 30)) as pilot:
            await until(pilot, lambda: app.view is not None and len(app.view.agents) == 1)
            await pilot.press("t")
            await until(pilot, lambda: "watchdog tick ..." in message(app))
            await pilot.press("q")
            await until(pilot, lambda: "quitting when watchdog tick ends" in message(app))
            await pilot.pause(0.3)
            assert app.is_running  # still up, waiting for the tick
            release.set()
            await until(pilot, lambda: not app.is_running or app._exit)

    asyncio.run(main())
    ticks = [r for r in f.audit() if r.get("event") == "watchdog_tick"]
    assert [r["surface"] for r in ticks] == ["dash"]  # the tick ran to its end
