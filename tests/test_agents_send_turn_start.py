"""A prompt Codex fails to start a turn for (no hook, no rollout; "■ Failed to start turn: ..." on
screen, the text back in the composer) is reported at once with Codex's reason, typed again once,
and never left in the composer.

Seen with the real Codex 0.169 (about one send in ninety to a freshly started workspace-write agent:
"the selected permission profile cannot be safely represented by the legacy app-server sandbox
policy"), but not on demand, so the agent here is a small stand-in TUI that behaves the way Codex
did on screen: bracketed paste, Enter answered by the notice with the text restored, Ctrl-C clearing
a composer that holds text.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

from conftest import Fleet

REASON = ("the selected permission profile cannot be safely represented by the legacy app-server sandbox "
          "policy; select a named or legacy-compatible permission profile")

FAKE = r'''
import os, sys, termios, tty
log = open(sys.argv[0] + ".enters", "a")
composer, notices = "", []
def draw():
    out = ["\x1b[2J\x1b[H  >_ Stand-in Codex", ""]
    out += [f"\u25a0 Failed to start turn: {n}" for n in notices]
    out += ["", "\u203a " + (composer.replace("\n", " / ") or "Ask Codex to do anything"),
            "  \u2190 for agents \u00b7 ? for shortcuts"]
    sys.stdout.write("\r\n".join(out)); sys.stdout.flush()
tty.setraw(0)
sys.stdout.write("\x1b[?2004h"); draw()
buf = b""
while True:
    data = os.read(0, 4096)
    if not data:
        break
    buf += data
    while buf:
        if buf.startswith(b"\x1b[200~"):
            end = buf.find(b"\x1b[201~")
            if end < 0:
                break
            composer += buf[6:end].decode().replace("\r", "\n")
            buf = buf[end + 6:]
        elif buf[:1] == b"\r":
            buf = buf[1:]
            log.write("enter\n"); log.flush()
            if composer:
                notices.append(REASON)  # the text stays in the composer, as Codex restores it
        elif buf[:1] == b"\x03":
            buf = buf[1:]
            if not composer:
                sys.exit(0)
            composer = ""
        elif buf[:1] == b"\x1b" and len(buf) < 6 and b"\x1b[200~".startswith(buf):
            break
        else:
            buf = buf[1:]
        draw()
'''


def fake_codex(tmp_path: Path) -> Path:
    path = tmp_path / "codex-standin"
    path.write_text(f"#!{sys.executable}\nREASON = {REASON!r}\n{FAKE}")
    path.chmod(0o755)
    return path


def test_a_turn_codex_failed_to_start_is_reported_retried_once_and_cleared(
        tmp_path: Path, fleet_factory: Callable[..., Fleet]) -> None:
    codex = fake_codex(tmp_path)
    fleet = fleet_factory(1, codex=str(codex))
    agent = fleet.agents[0]
    assert fleet.cli("up").returncode == 0

    proc = fleet.cli("send", agent, "Summarise README.md.\nThen report.", "--json")

    assert proc.returncode != 0
    error = json.loads(proc.stdout)["error"]
    assert error["code"] == "not_delivered"
    assert error["reason"] == REASON
    assert error["attempts"] == 2
    assert error["composer_cleared"] is True
    failed = [e for e in fleet.journal(agent) if e["event"] == "turn_start_failed"]
    assert [e["attempt"] for e in failed] == [1, 2]
    assert all(e["reason"] == REASON and e["cleared"] for e in failed)
    assert (tmp_path / "codex-standin.enters").read_text().count("enter") == 2
    # nothing is left in the composer for a later Enter to send unasked, and the agent still runs
    screen = fleet.json("tail", agent)
    assert any("Ask Codex to do anything" in line for line in screen["lines"])
    assert not screen["dead"]
    assert fleet.status(agent)["state"] == "idle"
