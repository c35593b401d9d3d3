"""What Codex 0.169 shows on screen, for the few things it gives no signal for.

Screen text is the least trusted source (DESIGN.md): used only for composer readiness, approval
menus and first-run screens. Constants only, so the pure state classifier can import them.
"""

from __future__ import annotations

import re
from typing import Final

# Screen text, used only where Codex gives no signal: composer readiness, approval menus, first-run screens.
READY_MARKERS: Final = ("Ask Codex to do anything", "? for shortcuts")
EMPTY_COMPOSER: Final = "Ask Codex to do anything"
#: The footer hint Codex 0.169 draws once its session is configured, which is after every first-run
#: screen. While it loads, the composer shows "? for shortcuts" alone for ~0.2 s, and a trust dialog
#: can still replace it (measured): the placeholder alone is not readiness.
SESSION_READY: Final = "for agents · ? for shortcuts"
APPROVAL_MARKERS: Final = (
    "Would you like to run the following command",
    "Would you like to make the following edits",
    "Would you like to grant",
    "Press enter to confirm or esc to cancel",
    "Yes, proceed",
)
FIRST_RUN_MARKERS: Final = (
    "Trust this folder?",
    "Do you trust the contents of this directory",
    "Hooks need review",
    "Update available",
    "Sign in with ChatGPT",
)
#: Codex's notice when a submitted prompt did not become a turn (e.g. "the selected permission profile
#: cannot be safely represented by the legacy app-server sandbox policy", seen intermittently for
#: workspace-write agents on 0.169). No hook fires and the rollout records nothing; Codex puts the
#: text back in the composer. The screen is the only signal.
TURN_START_FAILED: Final = "Failed to start turn"

#: A menu waiting for a choice, whatever its text: a selected numbered option, or Codex's key hints.
_MENU_OPTION: Final = re.compile(r"^\s*[›>] (\d+\. .*)$")
_MENU_HINTS: Final = ("enter continue", "Press enter to continue", "esc back")


def open_dialog(screen: str) -> str | None:
    """A short name for a menu on a screen shown before the first prompt (its first line and the
    option selected), or None. Before any prompt nothing else draws a numbered option line, so this
    also catches dialogs fleet has never seen. Not for later screens: the history echoes prompts."""
    lines = [ln.strip() for ln in screen.splitlines() if ln.strip()]
    option = next((m.group(1) for ln in screen.splitlines() if (m := _MENU_OPTION.match(ln))), None)
    if option is None and not any(h in ln for ln in lines for h in _MENU_HINTS):
        return None
    title = lines[0][:60] if lines else "a menu"
    return f"{title!r}" + (f" ({option.strip()[:40]})" if option else "")


#: The composer's first line starts with this (the history echoes prompts with it too, above it).
COMPOSER_PROMPT: Final = "›"
#: The footer's last line while the composer takes input (0.169-0.171).
FOOTER_HINT: Final = "? for shortcuts"
#: The most lines between the composer's first line and the footer's last: the composer's own blank
#: line and the status line (measured, 0.169-0.171), with room for a wrapped status line.
_FOOTER_LINES: Final = 4


def composer_text(screen: str) -> str | None:
    """The composer's first line, when the bottom of the screen is Codex's composer and its footer,
    else None (a dialog, a menu or a first-run screen replaces them). Anchored at the bottom: Codex
    draws the history, where prompts and answers quote anything (a dialog's text too), above the
    composer, never below it. An empty composer reads as `EMPTY_COMPOSER`."""
    lines = [ln.rstrip() for ln in screen.rstrip().splitlines()]
    if not lines or FOOTER_HINT not in lines[-1]:
        return None
    for line in reversed(lines[-1 - _FOOTER_LINES:-1]):
        if line.startswith(COMPOSER_PROMPT):
            return line.removeprefix(COMPOSER_PROMPT).strip()
    return None
