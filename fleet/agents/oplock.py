"""One operation at a time on an agent: the per-agent operation lock `agents/<name>/op.lock`.

Every mutating operation on an agent (start, stop, send, interrupt, and what the work and watchdog
layers add) holds it for its whole duration, whoever the holder. Leases decide *who* may drive an
agent; this lock makes the driving happen one operation at a time, which leases cannot do alone: a
lead's concurrent MCP calls share one holder, and so do all of a user's `cli:<user>` calls. Taken
before the lease guard and released after it, it also keeps a transient lease alive for as long as
any operation of its holder is running (the next operation starts only after the previous one has
ended its transient lease).

It is an flock on a descriptor opened for each acquisition: exclusive between processes and between
threads of one process, dropped by the kernel the instant a holder dies. A caller waits a bounded
time, then gets `agent_busy`, which says what is running and whether it waited. The file's content
(operation, holder, pid, since) is informational, for that error only.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from fleet.errors import AgentBusy, StateDirError
from fleet.fsutil import flock_within, open_lock_file

#: Default wait for a running operation: long enough to ride out a send's delivery (typically under
#: 1 s) or an interrupt, short enough that a caller learns quickly that a long `up` is in the way.
OP_WAIT: Final = 3.0
LOCK_NAME: Final = "op.lock"


def _describe(fd: int) -> dict[str, Any]:
    try:
        raw = os.pread(fd, 4096, 0)
        info = json.loads(raw) if raw else {}
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


@contextlib.contextmanager
def op_lock(agent_dir: Path, agent: str, *, operation: str, holder: str, wait: float = OP_WAIT) -> Iterator[float]:
    """Hold the agent's operation lock for the body; yields how long it waited (seconds).

    Raises `AgentBusy` (retryable) when another operation still holds it after `wait` seconds.
    `agent_dir` must exist.
    """
    path = agent_dir / LOCK_NAME
    try:
        fd = open_lock_file(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise StateDirError(f"{path} is a symlink.", hint="Remove it; fleet does not follow symlinks "
                                "inside its state dir.") from exc
        raise StateDirError(f"Cannot open {path}: {exc.strerror or exc}.",
                            hint="Check the state dir's permissions.") from exc
    try:
        started = time.monotonic()
        if not flock_within(fd, wait):
            raise _busy(agent, fd, wait)
        waited = time.monotonic() - started
        note = json.dumps({"operation": operation, "holder": holder, "pid": os.getpid(),
                           "since": round(time.time(), 3)}).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, note, 0)
        yield waited
    finally:
        os.close(fd)  # drops the flock


def _busy(agent: str, fd: int, wait: float) -> AgentBusy:
    info = _describe(fd)
    what = f"`{info['operation']}` by {info.get('holder')}" if info.get("operation") else "another operation"
    since = info.get("since")
    running = f", running for {max(0.0, time.time() - since):.0f} s" if isinstance(since, int | float) else ""
    waited = f"waited {wait:g} s for it" if wait > 0 else "did not wait"
    return AgentBusy(
        f"Agent {agent!r} is busy: {what} is running on it{running}; {waited}, and nothing was done.",
        hint="Operations on one agent run one at a time: retry when it has finished (`fleet status`).",
        agent=agent, waited=wait, busy_with=info or None,
    )
