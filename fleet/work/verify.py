"""Verification: what an agent really changed, the checks' results, and the verdict on its report.

Order of use (the service's job): `before = snapshot(cwd)` when the assignment is sent (stored as
the ledger's baseline with `to_json`); when the report is in, `after = snapshot(cwd, since=before)`
and `changed = changed_files(before, after)` (both: `compare_with_baseline`), then `run_checks(...)`
(after the snapshot, so files the checks themselves write are not blamed on the agent), then the
pure `verdict(...)`.

What a snapshot sees, and how `.git` is compared: `fleet.work.snapshot` (every file under the cwd,
whatever ignore rules say; git only through `fleet.work.gitrun`). A comparison that could not see
everything (its `notes`) never ends `verified`: the verdict rejects it as `unverifiable`.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from .checks import CheckResult
from .report import Report
from .scope import Role, allows, relative_to
from .snapshot import Snapshot, SnapshotError, changed_files, snapshot

Verdict = Literal["verified", "rejected"]
ReasonCode = Literal["no_report", "status", "outside_scope", "read_only", "check_failed", "unreported", "unchanged",
                     "unverifiable", "sandbox_failed"]

#: Paths named per reason; the rest are counted.
MAX_NAMED: Final = 20


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



@dataclass(frozen=True)
class Comparison:
    """The cwd now against its send-time baseline: both snapshots, the changed paths, and the state
    the new snapshot saw of each (what a commit of them must hold)."""

    cwd: str
    before: Snapshot
    after: Snapshot
    changed: list[str]
    states: dict[str, str | None]

    @property
    def notes(self) -> tuple[str, ...]:
        """What either snapshot could not see."""
        return (*self.before.notes, *self.after.notes)


def compare_with_baseline(baseline: Mapping[str, Any]) -> Comparison:
    """Snapshot the baseline's cwd again (`since` its stored snapshot) and compare. Raises
    `SnapshotError`, or `ValueError`/`KeyError`/`TypeError` for a malformed baseline, or `OSError`."""
    before = Snapshot.from_json(baseline["snapshot"])
    cwd = str(baseline["cwd"])
    after = snapshot(cwd, since=before)
    changed = changed_files(before, after)
    return Comparison(cwd, before, after, changed, {p: after.files.get(p) for p in changed})


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
        if not check.ran:
            reasons.append(Reason("sandbox_failed", f"the check `{check.cmd}` could not run in the agent's sandbox, "
                                  "and fleet never runs a check outside it"))
        elif not check.passed:
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


__all__ = ["CheckResult", "Comparison", "Reason", "ReasonCode", "Snapshot", "SnapshotError", "Verdict",
           "Verification", "changed_files", "compare_with_baseline", "snapshot", "verdict"]
