"""Signal only the process fleet started: a pid together with its start time, acted on through a pidfd.

A pid alone is not an identity: after the process exits and its parent (the tmux server) reaps it,
the kernel can hand the same number to any new process. At launch fleet records the agent's pid, its
start time (`/proc/<pid>/stat` field 22, clock ticks since boot, which no later process with that
pid can share) and the boot id (so a journal from before a reboot never matches). To signal it,
`terminate` opens a pidfd for the pid, then checks the start time: if it matches, the pidfd is
proven to refer to the process fleet started (a pidfd keeps referring to one process even if the
number is reused later), and every signal goes through that pidfd.
"""

from __future__ import annotations

import os
import select
import signal
import time
from typing import Final, Literal, NamedTuple

#: How long `terminate` waits for the process to exit after SIGTERM, before SIGKILL.
TERM_GRACE: Final = 2.0

Outcome = Literal["gone", "exited", "terminated", "killed", "not_ours", "denied"]


class ProcessId(NamedTuple):
    """A process as fleet started it: pid, start time (clock ticks after boot) and boot id (empty
    when unknown, e.g. recorded by an older fleet: then the start time alone decides)."""

    pid: int
    start: int
    boot: str = ""


_boot: list[str] = []


def boot_id() -> str:
    """This boot's id (`/proc/sys/kernel/random/boot_id`), read once; empty if unavailable."""
    if not _boot:
        try:
            with open("/proc/sys/kernel/random/boot_id") as f:
                _boot.append(f.read().strip())
        except OSError:
            _boot.append("")
    return _boot[0]


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode("ascii", "replace")
    except OSError:
        return None
    # comm (field 2) may hold spaces and parentheses: split after its last ')'
    return raw.rsplit(")", 1)[1].split()


def identify(pid: int | None) -> ProcessId | None:
    """The identity of the process now running as `pid`, or None when there is none (or only a zombie)."""
    if not pid:
        return None
    fields = _stat_fields(pid)
    if fields is None or len(fields) < 20 or fields[0] == "Z":
        return None
    return ProcessId(pid, int(fields[19]), boot_id())


def _same(now: ProcessId | None, recorded: ProcessId) -> bool:
    return (now is not None and now.pid == recorded.pid and now.start == recorded.start
            and (not recorded.boot or recorded.boot == now.boot))


def is_running(proc: ProcessId) -> bool:
    """Whether the process fleet started is still running (not exited, not a zombie)."""
    return _same(identify(proc.pid), proc)


def _exited(pidfd: int, timeout: float) -> bool:
    """Whether the pidfd's process has exited, waiting up to `timeout` s (a pidfd polls readable on exit)."""
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    return bool(poller.poll(max(0, int(timeout * 1000))))


def terminate(proc: ProcessId, grace: float = TERM_GRACE) -> Outcome:
    """End the process fleet started, and nothing else: SIGTERM, then SIGKILL after `grace` seconds.

    Returns `gone` (no process has that pid), `not_ours` (the pid now belongs to another process:
    nothing was signalled), `exited` (it had already exited), `terminated`/`killed` (which signal
    ended it), or `denied` (the kernel refused: another user's process; nothing was signalled).
    """
    try:
        pidfd = os.pidfd_open(proc.pid)
    except ProcessLookupError:
        return "gone"
    except PermissionError:
        return "denied"
    except OSError:  # no pidfd support (Linux < 5.3)
        return _terminate_by_pid(proc, grace)
    try:
        # checked after opening: if the start time matches now, the pidfd refers to that process
        fields = _stat_fields(proc.pid)
        if fields is None or len(fields) < 20:
            return "gone"
        if int(fields[19]) != proc.start or (proc.boot and proc.boot != boot_id()):
            return "not_ours"
        if fields[0] == "Z" or _exited(pidfd, 0):
            return "exited"
        for sig, outcome in ((signal.SIGTERM, "terminated"), (signal.SIGKILL, "killed")):
            try:
                signal.pidfd_send_signal(pidfd, sig)
            except ProcessLookupError:
                return "exited"
            except PermissionError:
                return "denied"
            if _exited(pidfd, grace if sig == signal.SIGTERM else 5.0):
                return outcome  # type: ignore[return-value]
        return "killed"
    finally:
        os.close(pidfd)


def _terminate_by_pid(proc: ProcessId, grace: float) -> Outcome:
    """The same without a pidfd: the identity is checked right before each signal (a narrow race
    remains, which is why the pidfd path is preferred)."""
    if proc.boot and proc.boot != boot_id():
        return "not_ours"
    for sig, outcome in ((signal.SIGTERM, "terminated"), (signal.SIGKILL, "killed")):
        if not is_running(proc):
            return "exited" if sig == signal.SIGTERM else "terminated"
        try:
            os.kill(proc.pid, sig)
        except ProcessLookupError:
            return "exited"
        except PermissionError:
            return "denied"
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if not is_running(proc):
                return outcome  # type: ignore[return-value]
            time.sleep(0.02)
    return "killed"
