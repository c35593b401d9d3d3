"""The dashboard's small modal screens: the key list (`?`), a one-line question, a yes/no confirm."""

from __future__ import annotations

from typing import ClassVar, Final

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

#: The keys as `?` lists them (the footer shows the same bindings).
KEYS: Final = (
    ("j / k, up / down", "select an agent (tab moves to the assignments table)"),
    ("enter", "attach to the selected agent's tmux session; detach (C-b d) to come back"),
    ("a", "approve the selected agent's pending approval"),
    ("d", "deny it, with a message the model reads"),
    ("s", "send the selected agent a prompt"),
    ("i", "interrupt its running turn"),
    ("c", "cancel the selected assignment, interrupting its turn (asks to confirm)"),
    ("u", "start the selected agent"),
    ("x", "stop the selected agent (asks to confirm)"),
    ("t", "run one watchdog tick now"),
    ("/", "filter the tables (empty: show all)"),
    ("?", "this list"),
    ("q", "quit (an action still running ends first)"),
)

_CSS: Final = """
ModalScreen { align: center middle; }
ModalScreen > Vertical { width: 80; height: auto; border: thick $accent; background: $surface; padding: 1 2; }
"""


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = _CSS
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,question_mark,enter", "dismiss", "close")]

    def compose(self) -> ComposeResult:
        width = max(len(k) for k, _ in KEYS)
        text = "\n".join(f"{k.ljust(width)}  {what}" for k, what in KEYS)
        with Vertical():
            yield Static("fleet dash: keys", markup=False)
            yield Static(text, markup=False, id="keys")


class AskScreen(ModalScreen[str | None]):
    """One line of text, or None on escape."""

    DEFAULT_CSS = _CSS
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "cancel")]

    def __init__(self, question: str, value: str = "") -> None:
        super().__init__()
        self.question = question
        self.value = value

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.question, markup=False)
            yield Input(value=self.value, id="answer")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ConfirmScreen(ModalScreen[bool]):
    DEFAULT_CSS = _CSS
    BINDINGS: ClassVar[list[BindingType]] = [Binding("y", "answer(True)", "yes"),
                                              Binding("n,escape", "answer(False)", "no")]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(f"{self.question} [y/N]", markup=False)

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
