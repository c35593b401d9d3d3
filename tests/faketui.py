"""A stand-in for Codex's TUI, for tests that need a pane showing Codex's idle composer and nothing else.

It draws the composer and its footer once and then reads and drops every keystroke, with the
terminal's echo off as Codex's raw mode has it (an echo would put the typed text under the footer,
where Codex never draws anything). It records nothing and runs no hook: a send to it is never
delivered, which is the one condition it simulates."""

from __future__ import annotations

import sys
from pathlib import Path

FAKE_TUI = """
import sys, termios
fd = sys.stdin.fileno()
attrs = termios.tcgetattr(fd)
attrs[3] &= ~termios.ECHO
termios.tcsetattr(fd, termios.TCSANOW, attrs)
print("\\u203a Ask Codex to do anything\\n\\n  mock-model default \\u00b7 /w\\n"
      "  \\u2190 for agents \\u00b7 ? for shortcuts", flush=True)
for line in sys.stdin:
    pass
"""


def fake_codex(directory: Path) -> str:
    """Write the stand-in as an executable `fake-codex` in `directory`; its path."""
    fake = directory / "fake-codex"
    fake.write_text(f"#!{sys.executable}\n{FAKE_TUI}")
    fake.chmod(0o755)
    return str(fake)
