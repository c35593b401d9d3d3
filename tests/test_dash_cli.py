"""`fleet dash` and `fleet attach` without an agent, as a person starts them: the real `fleet` process
in a terminal (a tmux pane on a private server of the test's own), the cockpit drawn, `q` ends it
with status 0. No Codex: the agents stay stopped. The keys themselves are tests/test_dash_app.py's."""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import Fleet


@pytest.fixture
def terminal(fleet_factory: Callable[..., Fleet]) -> Iterator[tuple[Fleet, Callable[..., Any]]]:
    f = fleet_factory(2)
    socket = f"dash-{f.name}"  # under the test's private TMUX_TMPDIR, like the fleet's own server

    def tmux(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["tmux", "-L", socket, *args], capture_output=True, text=True, check=False)

    yield f, tmux
    tmux("kill-server")


def screen_until(tmux: Callable[..., subprocess.CompletedProcess[str]], text: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        screen = tmux("capture-pane", "-p", "-t", "=dash:").stdout
        if text in screen:
            return screen
        time.sleep(0.1)
    raise AssertionError(f"{text!r} never appeared; the screen:\n{screen}")


@pytest.mark.parametrize("command", [("dash",), ("attach",)], ids=["dash", "attach-picker"])
@pytest.mark.parametrize("size", [(80, 24), (160, 45)], ids=["80x24", "160x45"])
def test_the_cockpit_starts_in_a_terminal_and_q_quits_it(terminal: tuple[Fleet, Callable[..., Any]],
                                                         command: tuple[str, ...], size: tuple[int, int]) -> None:
    """Every agent's row shows in the smallest common terminal too."""
    f, tmux = terminal
    fleet = shlex.join([sys.executable, "-P", "-m", "fleet", "--config", str(f.path), *command])
    width, height = (str(n) for n in size)
    assert tmux("new-session", "-d", "-s", "dash", "-x", width, "-y", height,
                f"{fleet}; echo EXIT=$?; sleep 60").returncode == 0
    tmux("resize-window", "-t", "=dash:", "-x", width, "-y", height)
    screen = screen_until(tmux, "agent-2")
    assert "agent-1" in screen
    assert "stopped" in screen
    tmux("send-keys", "-t", "=dash:", "q")
    screen_until(tmux, "EXIT=0")
