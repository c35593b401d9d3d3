"""`composer_text`: the composer is read at the bottom of the screen only, where Codex draws it under
the history; text the history quotes (a prompt, an answer) never reads as the composer or a dialog."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fleet.agents.screen import EMPTY_COMPOSER, composer_text

FOOTER = ["", "  mock-model default · /w/agent-1", "  ← for agents · ? for shortcuts          ⚠ 1 warning · f2 to view"]


def screen(*history: str, composer: str = f"› {EMPTY_COMPOSER}") -> str:
    return "\n".join([">_ OpenAI Codex (v0.171.0)", "", *history, "", composer, *FOOTER, "", " "])


def test_an_empty_composer_at_the_bottom_reads_empty_whatever_the_history_quotes() -> None:
    assert composer_text(screen("› Trust this folder?", "• › 1. Yes, continue")) == EMPTY_COMPOSER
    assert composer_text(screen(composer="› fix the bug")) == "fix the bug"


def test_a_dialog_in_place_of_the_composer_is_no_composer() -> None:
    trust = "\n".join(["> You are in /w/agent-1", "", "  Do you trust the contents of this directory?", "",
                       "› 1. Yes, continue", "  2. No, quit", "", "  Press enter to continue"])
    assert composer_text(trust) is None
    assert composer_text("") is None
    # the footer hint quoted in the history, not at the bottom: no composer
    quoted = f"› {EMPTY_COMPOSER}\n  ? for shortcuts\n\n  Would you like to run the following command?"
    assert composer_text(quoted) is None


@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=60), max_size=30))
def test_history_text_never_changes_what_the_composer_reads(history: list[str]) -> None:
    assert composer_text(screen(*history)) == EMPTY_COMPOSER
