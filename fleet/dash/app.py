"""`fleet dash`: the Textual cockpit over the registry.

One screen: a header (the fleet, counts by state, rate-limit headroom, the watchdog's last tick),
the agents table, the selected agent's screen, the assignments (open first), the approvals queue and
a log of watchdog actions and ledger events. Reads come from a `Poller` on a worker thread every
`POLL_SECONDS`; actions run on worker threads through `Client.call`, so a slow start or send never
freezes the screen. An action's error is one line (`code: message (hint)`) in the message bar; no
error stops the app. All text comes from `fleet.dash.model` already escaped and is drawn without
markup. `read_only` turns every action off (attach included). Enter ends the app with `attach_to`
set, and `fleet.dash.run` attaches: with `picker` the process becomes `tmux attach`, else it runs
tmux and starts the app again on the same agent when the user detaches.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Final

from rich.text import Text
from textual import events
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.coordinate import Coordinate
from textual.css.query import NoMatches
from textual.message import Message
from textual.widgets import DataTable, Footer, Static

from .client import Client, Poller, Snapshot, error_line
from .model import (
    AGENT_COLUMNS,
    APPROVAL_COLUMNS,
    ASSIGNMENT_COLUMNS,
    View,
    build_view,
    cell,
    clip,
    fit_widths,
    pane_text,
)
from .screens import AskScreen, ConfirmScreen, HelpScreen

#: How often the dashboard polls: a state change shows within about this long plus one read.
POLL_SECONDS: Final = 1.0
#: State -> colour in the agents table.
STATE_STYLE: Final = {"idle": "green", "working": "cyan", "waiting_approval": "bold yellow", "limited": "magenta",
                      "starting": "blue", "exited": "bold red", "stopped": "dim", "unreachable": "bold red"}
#: Actions that change something: off in read-only mode and while a dialog is open.
MUTATING: Final = frozenset({"approve", "deny", "send", "interrupt", "cancel", "start", "stop", "tick", "attach"})


class Polled(Message):
    """A poll's snapshot, posted from the poll's thread (`App.post_message` is thread-safe)."""

    def __init__(self, snap: Snapshot) -> None:
        super().__init__()
        self.snap = snap


class DashApp(App[str | None]):
    TITLE = "fleet dash"
    #: Textual's palette offers more than the keys do (saving a screenshot to the server's disk, for one):
    #: in a browser, read-only must mean read-only.
    ENABLE_COMMAND_PALETTE = False
    #: Below 120 columns the selected agent's screen goes under the agents table, which gets the
    #: whole width: at 80 columns, beside the screen, its headers alone would not fit.
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]  # noqa: RUF012 (App types it as an instance attribute)
    CSS = """
    #header { height: 1; background: $boost; padding: 0 1; }
    #top { height: 2fr; min-height: 6; }
    #top > *, #middle > * { height: 100%; }
    #agents { width: 3fr; border: round $primary; }
    #pane { width: 2fr; border: round $primary; overflow: hidden; }
    #middle { height: 1fr; min-height: 5; max-height: 14; }
    #assignments { width: 3fr; border: round $primary; }
    #approvals { width: 2fr; border: round $primary; }
    #log { height: 1fr; min-height: 4; max-height: 9; border: round $primary; overflow: hidden; }
    #message { height: 1; padding: 0 1; }
    .-narrow #top { layout: vertical; }
    .-narrow #top > * { width: 100%; height: 1fr; }
    .-narrow #agents { height: 3fr; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "down", "down", show=False), Binding("k", "up", "up", show=False),
        Binding("a", "approve", "approve"), Binding("d", "deny", "deny"), Binding("s", "send", "send"),
        Binding("i", "interrupt", "interrupt"), Binding("c", "cancel", "cancel"), Binding("u", "start", "start"),
        Binding("x", "stop", "stop"), Binding("t", "tick", "tick"),
        Binding("slash", "filter", "filter", key_display="/"),
        Binding("question_mark", "help", "keys", key_display="?"), Binding("q", "quit", "quit"),
    ]

    def __init__(self, client: Client, *, picker: bool = False, read_only: bool = False,
                 poll_seconds: float = POLL_SECONDS, selected: str | None = None, note: str | None = None) -> None:
        super().__init__()
        #: The agent Enter chose: the app ends and `fleet.dash.run` attaches (picker: execs tmux;
        #: else runs it and starts the dashboard again on the same agent, `note` saying where it was).
        self.attach_to: str | None = None
        self._note = note
        self.client = client
        self.poller = Poller(client)
        self.picker = picker
        self.read_only = read_only
        self.poll_seconds = poll_seconds
        self.selected: str | None = selected
        self.filter_text = ""
        self.view: View | None = None
        self.polls = 0  # completed polls, for tests and the bench
        self._status: dict[str, Any] = {"agents": []}
        self._assignments: list[dict[str, Any]] = []
        self._watchdog: dict[str, Any] | None = None
        self._events: list[dict[str, Any]] = []
        self._pane: tuple[str | None, str] = (None, "")
        self._shown: dict[str, Any] = {}
        self._columns: dict[str, tuple[str, ...]] = {}
        self._widths: dict[str, tuple[int, ...]] = {}
        self._polling = False
        self._poll_error = False
        self._quit_after_action = False
        self._actions: list[str] = []  # the labels of the actions in flight, oldest first

    # ---- layout --------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Static("fleet", id="header", markup=False)
        with Horizontal(id="top"):
            yield FitTable(id="agents", cursor_type="row", zebra_stripes=True)
            yield Static("", id="pane", markup=False)
        with Horizontal(id="middle"):
            yield FitTable(id="assignments", cursor_type="row")
            yield FitTable(id="approvals", cursor_type="row")
        yield Static("", id="log", markup=False)
        yield Static("? lists the keys" + ("  (read-only)" if self.read_only else ""), id="message", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        for table_id, columns, title in (("agents", AGENT_COLUMNS, "agents"),
                                         ("assignments", ASSIGNMENT_COLUMNS, "assignments (open first)"),
                                         ("approvals", APPROVAL_COLUMNS, "approvals waiting")):
            self._columns[table_id] = columns
            self.query_one(f"#{table_id}", DataTable).border_title = title
            self._table(table_id, [])  # the headers, before the first poll
        self.query_one("#pane", Static).border_title = "screen"
        self.query_one("#log", Static).border_title = "log: watchdog and ledger"
        if self.picker:
            self.query_one("#message", Static).update("pick an agent: enter attaches, q quits")
        elif self._note:
            self.say(self._note)
        self.query_one("#agents", DataTable).focus()
        self.poll()
        self.set_interval(self.poll_seconds, self.poll)

    # ---- polling -------------------------------------------------------------------------------
    def poll(self) -> None:
        """Start a poll on a thread of its own unless one is still running. A daemon thread, not a
        Textual worker: those run on the event loop's executor, which quitting waits for, and a read
        can take seconds (a `systemctl` that does not answer), so `q` would hang until it ended."""
        if self._polling:
            return
        self._polling = True
        threading.Thread(target=self._poll_in_thread, args=(self.selected,), name="fleet-dash-poll",
                         daemon=True).start()

    def _poll_in_thread(self, selected: str | None) -> None:
        try:
            snap = self.poller.poll(selected)
        except Exception as exc:  # the poller reports per read; this is a bug, shown, not fatal
            snap = Snapshot(status=self._status, events=[], cursor=self.poller.cursor, assignments=None,
                            watchdog=None, pane=None, pane_agent=None, errors=[error_line(exc)])
        self.post_message(Polled(snap))  # never blocks: a poll that ends as the app quits is dropped

    def on_polled(self, message: Polled) -> None:
        if self._exit or not self.is_running:  # quitting: the screen's widgets may be gone (a poll landing at `q`)
            return
        try:
            self._apply(message.snap)
        except NoMatches:  # the screen was torn down under the handler: the app is closing, not a bug to show
            if self.is_running and not self._exit:
                raise

    def _apply(self, snap: Snapshot) -> None:
        self._polling = False
        self.polls += 1
        self._status = snap.status
        if snap.assignments is not None:
            self._assignments = snap.assignments
        if snap.watchdog is not None:
            self._watchdog = snap.watchdog
        if snap.events:
            self._events = (self._events + snap.events)[-200:]
        if snap.pane_agent is not None and snap.pane is not None:
            self._pane = (snap.pane_agent, pane_text(snap.pane))
        if snap.errors:
            self.say(snap.errors[0], error=True)
        elif self._poll_error:
            self.say("reads work again")
        self._poll_error = bool(snap.errors)
        self.render_view()

    def render_view(self) -> None:
        view = build_view(self._status, self._assignments, self._watchdog, self._events, time.time(),
                          self.filter_text)
        self.view = view
        self._update("header", view.header, lambda: self.query_one("#header", Static).update(Text(view.header)))
        agents = [(r.name, r.cells(), STATE_STYLE.get(r.state, "")) for r in view.agents]
        self._table("agents", agents)
        self._table("assignments", [(r.id, r.cells(), "" if r.open else "dim") for r in view.assignments])
        self._table("approvals", [(r.agent, r.cells(), "bold yellow") for r in view.approvals])
        log = "\n".join(view.log[:5])
        self._update("log", log, lambda: self.query_one("#log", Static).update(Text(log)))
        if self.selected is None and view.agents:
            self.selected = view.agents[0].name
        agent, text = self._pane
        shown = text if agent == self.selected else ""
        pane = self.query_one("#pane", Static)
        self._update("pane", shown, lambda: pane.update(Text(shown)))
        pane.border_title = f"screen: {self.selected}" if self.selected else "screen"
        row = view.agent(self.selected)
        pane.border_subtitle = row.detail if row else ""

    def refit(self) -> None:
        """A table's size changed: fit its columns again (on the next render)."""
        if self.view is not None:
            self.render_view()

    def _update(self, key: str, value: Any, apply: Callable[[], None]) -> None:
        if self._shown.get(key) != value:
            self._shown[key] = value
            apply()

    def _table(self, table_id: str, rows: Sequence[tuple[str, tuple[str, ...], str]]) -> None:
        """Redraw a table only where its rows changed: the cells that differ when the rows and the
        column widths are the same (an age ticking), else all of it, keeping the cursor on the same key.

        The column widths are set here, fitted to the table's width (`fit_widths`), never left to
        DataTable's own auto width: that one is measured when the table is next idle, and a frame
        drawn before then stays cached at the headers' widths until something else redraws the rows
        (under load, for good: agents shown as `agent`, `stopp`)."""
        table = self.query_one(f"#{table_id}", DataTable)
        columns = self._columns[table_id]
        available = table.size.width - table.styles.scrollbar_size_vertical if table.size.width else 0
        widths = fit_widths(columns, [cells for _, cells, _ in rows], available)
        rows = [(key, tuple(clip(c, w) for c, w in zip(cells, widths, strict=True)), style)
                for key, cells, style in rows]
        before = self._shown.get(table_id)
        if before == rows and self._widths.get(table_id) == widths:
            return
        self._shown[table_id] = rows
        if (before is not None and self._widths.get(table_id) == widths
                and [r[0] for r in before] == [r[0] for r in rows]):
            for y, (old, new) in enumerate(zip(before, rows, strict=True)):
                for x, (was, now) in enumerate(zip(old[1], new[1], strict=True)):
                    if was != now or old[2] != new[2]:
                        table.update_cell_at(Coordinate(y, x), _styled(now, new[2], x))
            return
        keep = self._cursor_key(table) or (self.selected if table_id == "agents" else None)
        if self._widths.get(table_id) != widths:
            self._widths[table_id] = widths
            table.clear(columns=True)
            for label, width in zip(columns, widths, strict=True):
                table.add_column(label, width=width, key=label)
        else:
            table.clear()
        for key, cells, style in rows:
            table.add_row(*(_styled(c, style, i) for i, c in enumerate(cells)), key=key)
        keys = [key for key, _, _ in rows]
        if keep in keys:
            table.move_cursor(row=keys.index(keep), animate=False)

    @staticmethod
    def _cursor_key(table: DataTable[Any]) -> str | None:
        if table.row_count == 0:
            return None
        try:
            value = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        except Exception:  # the cursor is past the rows (they just shrank)
            return None
        return str(value) if value is not None else None

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        key = event.row_key.value
        if event.data_table.id == "agents" and key is not None and self.selected != key:
            self.selected = str(key)
            self.render_view()
            self.poll()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "agents":
            self.action_attach()

    # ---- messages ------------------------------------------------------------------------------
    def say(self, line: str, *, error: bool = False) -> None:
        """One line in the message bar (already escaped by whoever built it from agent text)."""
        self.query_one("#message", Static).update(Text(cell(line, 300), style="bold red" if error else ""))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in MUTATING or action in ("filter", "help", "down", "up"):
            if len(self.screen_stack) > 1:
                return False  # a dialog is open: its keys are its own
            if action in MUTATING and self.read_only:
                return False
        return True

    # ---- actions -------------------------------------------------------------------------------
    def _run(self, label: str, op: str, args: dict[str, Any], done: Callable[[dict[str, Any]], str]) -> None:
        """Run an operation on a worker thread; say what came of it; poll again."""
        self.say(f"{label} ...")
        self._actions.append(label)

        def work() -> None:
            try:
                result = self.client.call(op, args)
                line, failed = done(result), False
            except Exception as exc:
                line, failed = error_line(exc), True
            self.call_from_thread(self._after_action, label, f"{label}: {line}", failed)

        self.run_worker(work, thread=True, group="action", exit_on_error=False)

    def _after_action(self, label: str, line: str, failed: bool) -> None:
        self._actions.remove(label)
        self.say(line, error=failed)
        if self._quit_after_action and not self._actions:
            self.exit(self.return_value)
            return
        self.poller.want_status()
        self.poll()

    async def action_quit(self) -> None:
        """Quit. An action still running (a send, a tick) is never cut halfway: `q` then says which one
        it waits for, and the app quits when the last one ends."""
        if self._actions:
            self._quit_after_action = True
            self.say(f"quitting when {self._actions[0]} ends")
            return
        self.exit(self.return_value)

    def _agent(self) -> str | None:
        if self.selected is None:
            self.say("no agent selected", error=True)
        return self.selected

    def action_down(self) -> None:
        focused = self.focused
        if isinstance(focused, DataTable):
            focused.action_cursor_down()

    def action_up(self) -> None:
        focused = self.focused
        if isinstance(focused, DataTable):
            focused.action_cursor_up()

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_filter(self) -> None:
        def apply(text: str | None) -> None:
            if text is not None:
                self.filter_text = text
                self.render_view()
                self.say(f"filter: {text}" if text.strip() else "filter cleared")

        self.push_screen(AskScreen("Filter (words that must all appear in a row; empty shows all):",
                                   self.filter_text), apply)

    def _shown_request(self, agent: str) -> dict[str, str] | None:
        """The approval request the screen shows for `agent`: approve/deny answer that one, or are refused
        (`approval_changed`) when the agent waits on another by the time the key is pressed. None (said
        in the message bar) when the screen shows none: nobody answers a command they have not seen."""
        row = next((r for r in self.view.approvals if r.agent == agent), None) if self.view else None
        if row is None or not row.request:
            self.say(f"no approval of {agent} is shown: wait for it to appear in the approvals table", error=True)
            return None
        return {"request": row.request}

    def action_approve(self) -> None:
        if (agent := self._agent()) is not None and (shown := self._shown_request(agent)) is not None:
            self._run(f"approve {agent}", "agent_approve", {"agent": agent, **shown},
                      lambda r: f"{r['decision']} request {r['request']}")

    def action_deny(self) -> None:
        if (agent := self._agent()) is None or (shown := self._shown_request(agent)) is None:
            return  # the request on screen as the dialog opens, or none: nothing to deny

        def deny(message: str | None) -> None:
            if message is not None:
                self._run(f"deny {agent}", "agent_deny", {"agent": agent, "message": message, **shown},
                          lambda r: f"{r['decision']} request {r['request']}")

        self.push_screen(AskScreen(f"Deny {agent}'s pending command; message for the model (may be empty):"), deny)

    def action_send(self) -> None:
        if (agent := self._agent()) is None:
            return

        def send(text: str | None) -> None:
            if text:
                self._run(f"send {agent}", "agent_send", {"agent": agent, "text": text},
                          lambda r: f"delivered, turn {r['turn_id']}")

        self.push_screen(AskScreen(f"Prompt for {agent}:"), send)

    def action_interrupt(self) -> None:
        if (agent := self._agent()) is not None:
            self._run(f"interrupt {agent}", "agent_interrupt", {"agent": agent},
                      lambda r: f"interrupted turn {r.get('turn_id')}" if r["interrupted"]
                      else f"nothing to interrupt ({r.get('state')})")

    def action_cancel(self) -> None:
        assignment = self._selected_assignment()
        if assignment is None:
            self.say("no assignment selected: select an agent with an open one, or a row of the assignments table",
                     error=True)
            return

        def cancel(yes: bool | None) -> None:  # a turn still working on it is stopped too (`--interrupt`)
            if yes:
                self._run(f"cancel {assignment}", "assignment_cancel", {"assignment": assignment, "interrupt": True},
                          lambda r: (("cancelled, its turn interrupted" if r.get("interrupted") else "cancelled")
                                     if r["cancelled"] else f"not cancelled: it is {r['state']}"))

        self.push_screen(ConfirmScreen(f"Cancel assignment {assignment} (and interrupt its turn if it runs)?"), cancel)

    def _selected_assignment(self) -> str | None:
        table = self.query_one("#assignments", DataTable)
        if self.focused is table:
            return self._cursor_key(table)
        row = self.view.agent(self.selected) if self.view else None
        return row.assignment_id if row else None

    def action_start(self) -> None:
        if (agent := self._agent()) is not None:
            self._run(f"start {agent}", "agent_start", {"agents": [agent]}, _start_stop_line)

    def action_stop(self) -> None:
        if (agent := self._agent()) is None:
            return

        def stop(yes: bool | None) -> None:
            if yes:
                self._run(f"stop {agent}", "agent_stop", {"agents": [agent]}, _start_stop_line)

        self.push_screen(ConfirmScreen(f"Stop agent {agent}?"), stop)

    def action_tick(self) -> None:
        self.poller.want_watchdog()
        self._run("watchdog tick", "watchdog_tick", {},
                  lambda r: r["skipped"] if r.get("skipped") else f"{len(r['actions'])} action(s)")

    def action_attach(self) -> None:
        if (agent := self._agent()) is None:
            return
        if self.is_web:
            self.say(f"attach needs a terminal: run `fleet attach {agent}` there", error=True)
            return
        if not self.picker:  # an agent without a session is said here, not after leaving the dashboard
            try:
                self.client.attach_argv(agent)
            except Exception as exc:
                self.say(error_line(exc), error=True)
                return
        # Not `App.suspend`: a resumed app sometimes stayed blank, or left a thread that kept the
        # process from exiting. `fleet.dash.run` attaches between two runs of the app instead.
        self.attach_to = agent
        self.exit(agent)


class FitTable(DataTable[Text]):
    """A DataTable whose app fits its columns again when its size changes."""

    def on_resize(self, event: events.Resize) -> None:
        refit = getattr(self.app, "refit", None)
        if refit is not None:
            self.call_after_refresh(refit)


def _styled(text: str, style: str, column: int) -> Text:
    """A cell as plain text (never markup); the row's style on its first two columns (name, state)."""
    return Text(text, style=style if column < 2 else "")


def _start_stop_line(result: dict[str, Any]) -> str:
    """`up`/`down`'s per-agent results on one line, as the CLI words them."""
    parts = []
    for a in result.get("agents") or []:
        err = a.get("error")
        parts.append(f"{a.get('agent')}: {a.get('result')}: {err.get('code')}: {err.get('message')}" if err
                     else f"{a.get('agent')}: {a.get('result')}, {a.get('state')}")
    return "; ".join(parts) or ("ok" if result.get("ok") else "failed")
