"""Verification: what an agent really changed, the checks' results, and the verdict on its report.

Order of use (the service's job): `before = snapshot(cwd)` when the assignment is sent (stored as
the ledger's baseline with `to_json`); when the report is in, `after = snapshot(cwd, since=before)`,
`changed = changed_files(before, after)`, then `run_checks(...)` (after the snapshot, so files the
checks themselves write are not blamed on the agent), then the pure `verdict(...)`.

What a snapshot sees, and how `.git` is compared: `fleet.work.snapshot` (every file under the cwd,
whatever ignore rules say; git only through `fleet.work.gitrun`). A comparison that could not see
everything (its `notes`) never ends `verified`: the verdict rejects it as `unverifiable`.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from .report import Report
from .scope import Role, allows, relative_to
from .snapshot import Snapshot, SnapshotError, changed_files, snapshot

Verdict = Literal["verified", "rejected"]
ReasonCode = Literal["no_report", "status", "outside_scope", "read_only", "check_failed", "unreported", "unchanged",
                     "unverifiable"]

#: Output kept per check: the end, where the summary line of a test run is.
OUTPUT_TAIL_CHARS: Final = 4000
#: After SIGTERM, how long a timed-out check's process group gets before SIGKILL.
KILL_GRACE: Final = 2.0
#: Paths named per reason; the rest are counted.
MAX_NAMED: Final = 20
@dataclass(frozen=True)
class CheckResult:
    """One check command's outcome. `exit_status` is None when it was killed for the timeout;
    a negative value is the signal that ended it."""

    cmd: str
    exit_status: int | None
    timed_out: bool
    duration: float
    output_tail: str

    @property
    def passed(self) -> bool:
        return self.exit_status == 0 and not self.timed_out

    def to_dict(self) -> dict[str, Any]:
        return {"cmd": self.cmd, "exit_status": self.exit_status, "timed_out": self.timed_out,
                "duration": round(self.duration, 3), "passed": self.passed, "output_tail": self.output_tail}


@dataclass(frozen=True)
class Reason:
    code: ReasonCode
    message: str
    paths: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "paths": list(self.paths)}


@dataclass(frozen=True)
class Verification:
    verdict: Verdict
    reasons: tuple[Reason, ...]
    changed: tuple[str, ...]
    checks: tuple[CheckResult, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "reasons": [r.to_dict() for r in self.reasons],
                "changed": list(self.changed), "checks": [c.to_dict() for c in self.checks],
                "notes": list(self.notes)}


# -- checks ----------------------------------------------------------------------------------------

def run_checks(cmds: Sequence[str], cwd: str | os.PathLike[str], timeout: float,
               env: Mapping[str, str] | None = None) -> list[CheckResult]:
    """Run each command with `/bin/sh -c` in `cwd`, one after another, stdin from /dev/null,
    stdout and stderr together into a temp file (no pipe to fill), in its own process group.
    Past `timeout` seconds the group gets SIGTERM, then SIGKILL after `KILL_GRACE`; whatever the
    outcome, the group is killed at the end so a check leaves no process behind."""
    return [run_check(cmd, cwd, timeout, env) for cmd in cmds]


def run_check(cmd: str, cwd: str | os.PathLike[str], timeout: float,
              env: Mapping[str, str] | None = None) -> CheckResult:
    with tempfile.TemporaryFile() as out:
        started = time.monotonic()
        try:
            proc = subprocess.Popen(["/bin/sh", "-c", cmd], cwd=os.fspath(cwd), stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True,
                                    env=dict(env) if env is not None else None)
        except OSError as exc:  # no such cwd, no /bin/sh: the check fails, verification goes on
            return CheckResult(cmd=cmd, exit_status=127, timed_out=False, duration=0.0,
                               output_tail=f"fleet could not start the check: {exc.strerror or exc}")
        timed_out = False
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            _killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=KILL_GRACE)
            except subprocess.TimeoutExpired:
                _killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        duration = time.monotonic() - started
        _killpg(proc.pid, signal.SIGKILL)  # stragglers the command left in its group
        size = out.seek(0, os.SEEK_END)
        out.seek(max(0, size - OUTPUT_TAIL_CHARS * 4))
        tail = out.read().decode("utf-8", errors="replace")[-OUTPUT_TAIL_CHARS:]
    return CheckResult(cmd=cmd, exit_status=None if timed_out else proc.returncode, timed_out=timed_out,
                       duration=duration, output_tail=tail)


def _killpg(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


# -- the verdict -----------------------------------------------------------------------------------

def verdict(report: Report | None, changed: Iterable[str], write_paths: Sequence[str], role: Role,
            checks: Sequence[CheckResult] = (), notes: Iterable[str] = (), *, cwd: str | None = None) -> Verification:
    """`verified` only when the report's status is done, nothing changed outside `write_paths`
    (anything at all for a non-worker), every check passed, and the report's `changed` list agrees
    with what changed (a reported `dir/` covers changes beneath it; `./x` is `x`; an absolute path
    inside `cwd` is taken relative to it), and `notes` is empty; else `rejected` with every reason,
    each naming its paths. `notes` are what the snapshots could not see (a budget, an unreadable
    path): any one of them makes the comparison `unverifiable`, since a change may hide there. Pure."""
    actual = sorted(set(changed))
    notes = tuple(notes)
    reasons: list[Reason] = []
    if notes:
        reasons.append(Reason("unverifiable", "fleet could not see every change, so it cannot verify the work: "
                              + "; ".join(notes)))
    if report is None:
        reasons.append(Reason("no_report", "there is no valid fleet-report"))
    elif report.status != "done":
        reasons.append(Reason("status", f"the report's status is {report.status}, not done"))
    if role != "worker" or not write_paths:
        if actual:
            who = "an explorer" if role != "worker" else "this assignment"
            reasons.append(Reason("read_only", f"{who} may not change files, but {_named(actual)} changed",
                                  tuple(actual)))
    else:
        outside = [p for p in actual if not allows(write_paths, p)]
        if outside:
            reasons.append(Reason("outside_scope", f"{_named(outside)} changed outside the write paths "
                                  f"({', '.join(write_paths)})", tuple(outside)))
    for check in checks:
        if not check.passed:
            status = check.exit_status if check.exit_status is not None else 0
            how = f"timed out after {check.duration:.0f} s" if check.timed_out else (
                f"was killed by signal {-status}" if status < 0 else f"exited with status {status}")
            reasons.append(Reason("check_failed", f"the check `{check.cmd}` {how}"))
    if report is not None:
        claimed = [_normal(p, cwd) for p in report.changed]
        unreported = [p for p in actual if not any(_covers(c, p) for c in claimed)]
        unchanged = [c for c in claimed if not any(_covers(c, p) for p in actual)]
        if unreported:
            reasons.append(Reason("unreported", f"{_named(unreported)} changed but the report does not list it",
                                  tuple(unreported)))
        if unchanged:
            reasons.append(Reason("unchanged", f"the report lists {_named(unchanged)} but it did not change",
                                  tuple(unchanged)))
    return Verification(verdict="rejected" if reasons else "verified", reasons=tuple(reasons),
                        changed=tuple(actual), checks=tuple(checks), notes=tuple(notes))


def _normal(path: str, cwd: str | None) -> str:
    """A reported path in the form `changed_files` uses: relative, no `./`, `dir/` kept for a dir."""
    trailing = path.endswith("/")
    norm = posixpath.normpath(path)
    if cwd is not None and posixpath.isabs(norm):
        rel = relative_to(cwd, norm)
        norm = rel if rel is not None else norm
    if norm == ".":
        return "./"
    return norm + "/" if trailing else norm


def _covers(claim: str, path: str) -> bool:
    if claim == "./":
        return True
    return path.startswith(claim) if claim.endswith("/") else path == claim


def _named(paths: Sequence[str]) -> str:
    shown = ", ".join(paths[:MAX_NAMED])
    return shown + (f" and {len(paths) - MAX_NAMED} more" if len(paths) > MAX_NAMED else "")


__all__ = ["CheckResult", "Reason", "ReasonCode", "Snapshot", "SnapshotError", "Verdict", "Verification",
           "changed_files", "run_check", "run_checks", "snapshot", "verdict"]
