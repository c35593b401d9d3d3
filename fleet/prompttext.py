"""What prompt text fleet accepts: one rule for a send and for an assignment's task, and both caps.

A task is prompt text (fleet renders it into the assignment prompt and sends that), so it obeys the
send's rule and is refused up front, before anything is written, instead of failing at the send:
not blank, no control characters but newline, tab and carriage return (NUL, ESC, DEL...: a terminal
paste would act on them), and at most its cap. The caps differ because a task is one part of a
prompt: the prompt around it (scope, contract) must still fit under the send's cap.

A leaf (errors only), so `fleet.agents` (the send) and `fleet.work` (the prompt), one layer, both use it.
"""

from __future__ import annotations

from typing import Final, Literal

from fleet.errors import InvalidInput, TextTooLong

#: Largest prompt a send accepts. Codex takes far more; this bounds journal lines and paste time.
MAX_TEXT: Final = 32000
#: A task is instructions, not the material: point at files for anything longer.
MAX_TASK_CHARS: Final = 16_000
#: The control characters prompt text may hold.
ALLOWED_CONTROLS: Final = frozenset("\n\t\r")

Kind = Literal["text", "task"]

_LIMITS: Final[dict[Kind, int]] = {"text": MAX_TEXT, "task": MAX_TASK_CHARS}
_EMPTY: Final[dict[Kind, tuple[str, str]]] = {
    "text": ("The text to send is empty.", "Pass the prompt as TEXT, or `-` to read stdin."),
    "task": ("The task is empty.", "Give the task as an argument, or `-` to read it from stdin."),
}
_LONG_HINT: Final[dict[Kind, str]] = {
    "text": "Put long material in a file in the agent's cwd and send a prompt that points at it.",
    "task": "Put the details in a file in the agent's working directory and point the task at it.",
}


def forbidden(char: str) -> bool:
    """Whether `char` may not appear in prompt text: C0 controls but \\n \\t \\r, and DEL."""
    return (ord(char) < 32 and char not in ALLOWED_CONTROLS) or char == "\x7f"


def check_text(text: str, *, kind: Kind = "text") -> None:
    """Refuse prompt text that is blank (`invalid_input`), over its cap (`text_too_long`) or holds
    a forbidden control character (`invalid_input`, naming them)."""
    noun = "text" if kind == "text" else "task"
    if not text.strip():
        message, hint = _EMPTY[kind]
        raise InvalidInput(message, hint=hint)
    limit = _LIMITS[kind]
    if len(text) > limit:
        raise TextTooLong(f"The {noun} is {len(text)} characters; the limit is {limit}.", hint=_LONG_HINT[kind],
                          chars=len(text), limit=limit)
    bad = sorted({ord(c) for c in text if forbidden(c)})
    if bad:
        names = ", ".join("NUL" if c == 0 else hex(c) for c in bad[:5])
        raise InvalidInput(f"The {noun} contains control characters ({names}).",
                           hint="Remove them; only newlines, carriage returns and tabs are allowed.")
