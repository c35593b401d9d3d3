"""The raw-log copier tmux runs per agent: bounded, rotating, unbuffered, refusing symlinks.

Each case runs the real program on a real pipe, once as fleet runs it (it execs the POSIX shell
loop) and once with PATH emptied, which leaves it its Python loop.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import wait_until

from fleet.agents import rawlog

PROGRAM = Path(rawlog.__file__)
MODES = [pytest.param({}, id="shell"), pytest.param({"PATH": "/nonexistent"}, id="python")]


def start(path: Path, limit: int, env_over: dict[str, str]) -> subprocess.Popen[bytes]:
    env = {**os.environ, **env_over}
    return subprocess.Popen([sys.executable, "-S", str(PROGRAM), str(path), str(limit)],
                            stdin=subprocess.PIPE, env=env)


@pytest.mark.parametrize("env_over", MODES)
def test_output_is_kept_within_two_files_of_the_bound_and_nothing_is_lost(
        tmp_path: Path, env_over: dict[str, str]) -> None:
    log = tmp_path / "raw.log"
    data = bytes(i % 251 for i in range(25_000))
    proc = start(log, 4096, env_over)
    assert proc.stdin is not None
    for i in range(0, len(data), 777):
        proc.stdin.write(data[i:i + 777])
        proc.stdin.flush()
    proc.stdin.close()
    assert proc.wait(timeout=30) == 0
    rotated, current = (tmp_path / "raw.log.1").read_bytes(), log.read_bytes()
    assert len(rotated) <= 4096
    assert len(current) <= 4096
    assert data.endswith(rotated + current)
    assert len(rotated + current) > 4096  # it rotated rather than stopping at the bound
    assert stat_mode(log) == 0o600


@pytest.mark.parametrize("env_over", MODES)
def test_each_chunk_reaches_the_log_while_the_pane_is_still_open(tmp_path: Path, env_over: dict[str, str]) -> None:
    log = tmp_path / "raw.log"
    proc = start(log, 1 << 20, env_over)
    assert proc.stdin is not None
    try:
        proc.stdin.write(b"first line\r\n")
        proc.stdin.flush()
        wait_until(lambda: log.exists() and log.read_bytes() == b"first line\r\n", timeout=10)
        proc.stdin.write(b"second\r\n")
        proc.stdin.flush()
        wait_until(lambda: log.read_bytes().endswith(b"second\r\n"), timeout=10)
        assert proc.poll() is None
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)


@pytest.mark.parametrize("env_over", MODES)
def test_a_symlink_in_place_of_the_log_is_not_followed(tmp_path: Path, env_over: dict[str, str]) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep me")
    log = tmp_path / "raw.log"
    log.symlink_to(victim)
    proc = start(log, 4096, env_over)
    assert proc.stdin is not None
    try:
        proc.stdin.write(b"x" * 100)
        proc.stdin.close()
    except BrokenPipeError:
        pass  # it refused before reading
    assert proc.wait(timeout=10) != 0
    assert victim.read_bytes() == b"keep me"


def test_the_shell_loop_replaces_the_interpreter(tmp_path: Path) -> None:
    """What fleet keeps alive per agent must not be a Python interpreter (bench/bench_rawlog.py)."""
    proc = start(tmp_path / "raw.log", 4096, {})
    try:
        python = os.path.realpath(sys.executable)
        shell = wait_until(lambda: (exe := os.readlink(f"/proc/{proc.pid}/exe")) != python and exe, timeout=10)
        assert "python" not in os.path.basename(shell)
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=10)


def stat_mode(path: Path) -> int:
    return path.stat().st_mode & 0o777
