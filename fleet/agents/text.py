"""Prompt text, pure: how texts are compared with what Codex recorded, and how long a send waits.
What a send accepts is `fleet.prompttext.check_text`, the rule a task obeys too."""

from __future__ import annotations

from typing import Final

#: How long a send waits for Codex to record the prompt before reporting `not_delivered` (the
#: runtime's default, and what the assign path passes).
DELIVERY_TIMEOUT: Final = 10.0


def normalize(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").strip()
