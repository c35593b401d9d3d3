"""Prompt text rules, pure: what a send accepts and how texts are compared with what Codex recorded."""

from __future__ import annotations

from typing import Final

from fleet.errors import InvalidInput, TextTooLong

#: Largest prompt a send accepts. Codex takes far more; this bounds journal lines and paste time.
MAX_TEXT: Final = 32000
#: How long a send waits for Codex to record the prompt before reporting `not_delivered` (the
#: runtime's default, and what the assign path passes).
DELIVERY_TIMEOUT: Final = 10.0


def normalize(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").strip()


def check_text(text: str) -> None:
    if not text.strip():
        raise InvalidInput("The text to send is empty.", hint="Pass the prompt as TEXT, or `-` to read stdin.")
    if len(text) > MAX_TEXT:
        raise TextTooLong(
            f"The text is {len(text)} characters; the limit is {MAX_TEXT}.",
            hint="Put long material in a file in the agent's cwd and send a prompt that points at it.",
            chars=len(text), limit=MAX_TEXT,
        )
    bad = sorted({hex(ord(c)) for c in text if (ord(c) < 32 and c not in "\n\t\r") or c == "\x7f"})
    if bad:
        raise InvalidInput(f"The text contains control characters ({', '.join(bad[:5])}).",
                           hint="Remove them; only newlines, carriage returns and tabs are allowed.")
