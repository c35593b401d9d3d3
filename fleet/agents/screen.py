"""What Codex 0.169 shows on screen, for the few things it gives no signal for.

Screen text is the least trusted source (DESIGN.md): used only for composer readiness, approval
menus and first-run screens. Constants only, so the pure state classifier can import them.
"""

from __future__ import annotations

from typing import Final

# Screen text, used only where Codex gives no signal: composer readiness, approval menus, first-run screens.
READY_MARKERS: Final = ("Ask Codex to do anything", "? for shortcuts")
EMPTY_COMPOSER: Final = "Ask Codex to do anything"
APPROVAL_MARKERS: Final = (
    "Would you like to run the following command",
    "Would you like to make the following edits",
    "Would you like to grant",
    "Press enter to confirm or esc to cancel",
    "Yes, proceed",
)
FIRST_RUN_MARKERS: Final = (
    "Do you trust the contents of this directory",
    "Hooks need review",
    "Update available",
    "Sign in with ChatGPT",
)
