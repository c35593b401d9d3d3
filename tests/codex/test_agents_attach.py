"""`fleet attach --read-only` really cannot type: a terminal on a pty, keys typed, the composer checked."""

from __future__ import annotations

import fcntl
import os
import struct
import subprocess
import sys
import termios
import threading
from collections.abc import Callable

from conftest import Fleet, wait_until
from mockmodel import MockServer

TYPED = "typed-by-a-person"


def attach_and_type(f: Fleet, read_only: bool, keys: bytes) -> None:
    """Run `fleet attach` on a pty as a person would, type `keys`, then detach with C-b d (which a
    read-only client may still do); returns once the client has gone, so every key was handled.

    The keys go in one write, so tmux's paste detection is turned off for the test: otherwise it
    takes a fast burst for pasted text and C-b d for two characters."""
    f.tmux("set-option", "-g", "assume-paste-time", "0")
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
    argv = [sys.executable, "-m", "fleet", "--config", str(f.path), "attach", "agent-1"]
    proc = subprocess.Popen([*argv, "--read-only"] if read_only else argv, stdin=slave, stdout=slave,
                            stderr=slave, env={**os.environ, "TERM": "xterm-256color"}, start_new_session=True)
    os.close(slave)
    drained = threading.Thread(target=_drain, args=(master,), daemon=True)
    drained.start()
    try:
        wait_until(lambda: f.tmux("list-clients", "-F", "#{client_readonly}").stdout.strip() ==
                   ("1" if read_only else "0"), 20)
        os.write(master, keys + b"\x02d")
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)


def _drain(fd: int) -> None:
    """Read the client's screen output so the pty never fills up and blocks it."""
    try:
        while os.read(fd, 65536):
            pass
    except OSError:
        return


def composer(f: Fleet) -> str:
    return f.tmux("capture-pane", "-p", "-t", "=agent-1:").stdout


def settled(screen: str) -> str:
    """The screen once Codex has drawn its idle composer again, else "" (keep waiting)."""
    return screen if "Ask Codex to do anything" in screen else ""


def test_a_read_only_attach_cannot_type_into_the_agent(fleet_factory: Callable[..., Fleet],
                                                       mock_model: MockServer) -> None:
    f = fleet_factory(1, model=mock_model)
    f.json("up")
    attach_and_type(f, read_only=True, keys=f"{TYPED}\r".encode())
    # the client's attach and detach resize the window, and Codex repaints: read a settled screen
    screen = wait_until(lambda: settled(composer(f)), 10)
    assert TYPED not in screen
    assert mock_model.model.user_prompts() == []
    assert f.status("agent-1")["state"] == "idle"
    # the control: the same keys through a normal attach do reach the composer
    attach_and_type(f, read_only=False, keys=TYPED.encode())
    wait_until(lambda: TYPED in composer(f), 10)
