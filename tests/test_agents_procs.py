"""Only the process fleet started is ever signalled: pid plus start time, acted on through a pidfd."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import wait_until

from fleet.agents.procs import ProcessId, identify, is_running, terminate

IGNORE_TERM = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); " \
              "time.sleep(60)"


def test_an_identity_is_the_pid_with_its_start_time() -> None:
    with subprocess.Popen(["sleep", "60"]) as proc:
        ident = identify(proc.pid)
        assert ident is not None
        assert ident.pid == proc.pid
        assert is_running(ident)
        proc.kill()
        proc.wait()
    assert not is_running(ident)


def test_a_reused_pid_is_never_signalled() -> None:
    with subprocess.Popen(["sleep", "60"]) as proc:
        ident = identify(proc.pid)
        assert ident is not None
        impostor = ProcessId(proc.pid, ident.start - 1)  # what a recorded identity looks like after reuse
        assert terminate(impostor) == "not_ours"
        assert proc.poll() is None
        assert terminate(ident) == "terminated"
        assert proc.wait(10) == -signal.SIGTERM


def test_a_process_that_ignores_sigterm_is_killed() -> None:
    with subprocess.Popen([sys.executable, "-c", IGNORE_TERM], stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        proc.stdout.readline()
        ident = identify(proc.pid)
        assert ident is not None
        assert terminate(ident, grace=0.2) == "killed"
        assert proc.wait(10) == -signal.SIGKILL


def test_an_exited_process_is_reported_and_not_signalled() -> None:
    with subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL) as proc:
        ident = identify(proc.pid)
        assert ident is not None
        assert proc.stdin is not None
        proc.stdin.close()
        wait_until(lambda: Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z")
        assert terminate(ident) == "exited"  # a zombie: exited, its parent has not reaped it yet
        assert proc.wait(10) == 0
    assert terminate(ident) in ("gone", "not_ours")  # reaped: the pid is free (or already reused)


def test_a_signal_the_kernel_refuses_is_reported_denied(monkeypatch: pytest.MonkeyPatch) -> None:
    """Simulated: as root no process refuses our signals, so the kernel's EPERM is injected."""
    def refuse(pidfd: int, sig: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(signal, "pidfd_send_signal", refuse)
    with subprocess.Popen(["sleep", "60"]) as proc:
        ident = identify(proc.pid)
        assert ident is not None
        assert terminate(ident) == "denied"
        assert proc.poll() is None
        proc.kill()


def test_an_identity_from_another_boot_never_matches() -> None:
    with subprocess.Popen(["sleep", "60"]) as proc:
        ident = identify(proc.pid)
        assert ident is not None
        assert ident.boot
        assert terminate(ProcessId(ident.pid, ident.start, "another-boot")) == "not_ours"
        assert proc.poll() is None
        assert is_running(ProcessId(ident.pid, ident.start))  # no boot recorded: the start time decides
        proc.kill()
