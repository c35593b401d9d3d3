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
#: Codex's notice when a submitted prompt did not become a turn (e.g. "the selected permission profile
#: cannot be safely represented by the legacy app-server sandbox policy", seen intermittently for
#: workspace-write agents on 0.169). No hook fires and the rollout records nothing; Codex puts the
#: text back in the composer. The screen is the only signal.
TURN_START_FAILED: Final = "Failed to start turn"
