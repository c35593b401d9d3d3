"""Check commands (`--check`): run in the agent's own sandbox, with an environment built on purpose.

A check is code of the agent's choosing: `pytest` runs the agent's conftest, `make` its Makefile.
So fleet runs it the way Codex runs the agent's own shell commands, never as itself:
- inside `Sandbox.argv` (Codex's `codex sandbox ... --`, built by `fleet.agents.codex.sandbox_argv`
  from the agent's sandbox mode, Codex home and `-c` overrides), so it can write what the agent can
  write and reach the network only if the agent can;
- with `Sandbox.env` as its whole environment: `check_env` keeps a short allowlist of fleet's
  variables (`CHECK_ENV_NAMES`, `LC_*`) and the agent's configured `env`, and drops every name that
  looks like a credential or belongs to fleet or tmux (`denied`). The agent's own Codex
  `shell_environment_policy` then applies on top, as it does for the agent's shell.
- If the sandbox cannot be set up (no Codex binary, Codex refusing to start it), the check did not
  run (`CheckResult.ran` is false) and it fails: there is no unsandboxed fallback.

Measured on Codex 0.169: `codex sandbox` hands the command its own environment (the default policy
inherits everything and excludes nothing), adding `CODEX_SANDBOX_NETWORK_DISABLED=1` when the network
is off and its helper dir in front of `PATH`; the home's `shell_environment_policy` applies, a
`.codex/config.toml` in the cwd does not. It runs bubblewrap (new user, pid and network namespaces,
`--die-with-parent`) plus seccomp, so killing its process group ends everything inside. Its `-C`
needs a permission profile, so the command's cwd is the process's.

Whether the command really started inside the sandbox is known exactly: the first thing the shell
inside does is write one byte to a pipe only fleet reads (its stdin), then replace it with /dev/null
before the check runs.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

#: Output kept per check: the end, where the summary line of a test run is.
OUTPUT_TAIL_CHARS: Final = 4000
#: After SIGTERM, how long a timed-out check's process group gets before SIGKILL.
KILL_GRACE: Final = 2.0
#: Taken from fleet's environment by name: Codex's own "core" shell set plus the locale, which
#: test runners need to print UTF-8. Nothing here names a secret.
CHECK_ENV_NAMES: Final = frozenset({"HOME", "LOGNAME", "PATH", "SHELL", "USER", "USERNAME", "TMPDIR", "TEMP",
                                    "TMP", "LANG", "LANGUAGE", "TZ"})
#: Never given to a check, whoever set them: fleet's control variables, tmux (its server takes
#: commands), agent sockets (ssh, gpg) and the usual cloud credential families.
DENIED_PREFIXES: Final = ("FLEET_", "TMUX", "SSH_", "GPG_", "AWS_", "AZURE_", "GOOGLE_", "GCLOUD_", "OPENAI_",
                          "ANTHROPIC_", "CODEX_", "DBUS_", "XDG_RUNTIME_DIR")
#: Nor any name containing one of these words (case-insensitive): Codex's own default excludes
#: (`*KEY*`, `*SECRET*`, `*TOKEN*`) and their relatives.
_DENIED_WORDS: Final = re.compile(r"KEY|SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL|COOKIE|SESSION|PRIVATE", re.IGNORECASE)
#: What a verdict on work done in `danger-full-access` is worth, said with it (`show`, `assignment_get`).
FULL_ACCESS_NOTE: Final = ("the agent ran in danger-full-access: it could write anything fleet reads (its journal, "
                           "its report, the files and the checks compared here), so this verdict is worth no more "
                           "than the agent's own word")
#: The shell fleet starts inside the sandbox, with a pipe only fleet reads as its stdin (dash takes
#: no fd above 9): it proves it runs (one byte into that pipe), puts /dev/null in its place so the
#: check cannot touch it, then runs the check as `/bin/sh -c CMD`.
_STARTER: Final = "printf 1 >&0 && exec </dev/null && exec /bin/sh -c \"$1\""
#: Empty directories Codex 0.169's bubblewrap sandbox creates in the cwd as mount points for the
#: paths it protects, and removes when it exits cleanly; a sandbox killed at the timeout leaves them
#: behind (measured), and an empty `.git` would make the agent's cwd look like a repository.
SANDBOX_MOUNT_POINTS: Final = (".git", ".codex", ".agents", ".aws")


def stricter(mode: str, other: str) -> str:
    """The stricter of two sandbox modes; an unknown `other` (not recorded) leaves `mode`. Pure."""
    order = ("read-only", "workspace-write", "danger-full-access")
    if other not in order:
        return mode
    return other if mode not in order or order.index(other) < order.index(mode) else mode


def denied(name: str) -> bool:
    """True for a variable name a check never gets (see `DENIED_PREFIXES`, `_DENIED_WORDS`). Pure."""
    upper = name.upper()
    return upper.startswith(DENIED_PREFIXES) or _DENIED_WORDS.search(name) is not None


def check_env(environ: Mapping[str, str], agent_env: Mapping[str, str] | None = None) -> dict[str, str]:
    """A check's environment: the allowlisted part of `environ` (fleet's), then the agent's own
    configured `agent_env` on top, minus every `denied` name and anything `execve` cannot carry
    (an empty name, `=` in a name, NUL anywhere). Pure."""
    picked = {k: v for k, v in environ.items() if k in CHECK_ENV_NAMES or k.startswith("LC_")}
    picked.update(agent_env or {})
    return {k: v for k, v in picked.items()
            if k and "=" not in k and "\0" not in k and "\0" not in v and not denied(k)}


@dataclass(frozen=True)
class Sandbox:
    """How to run a check for one agent. `argv` goes before `/bin/sh -c ...` (and ends with `--`);
    `env` is the whole environment of that process (nothing of fleet's is added); `mode` is the
    sandbox mode it enforces, recorded with each result."""

    argv: tuple[str, ...]
    env: Mapping[str, str]
    mode: str
    #: The directories the sandbox lets the check write besides its cwd (`/tmp`, `$TMPDIR`, extra
    #: roots): Codex makes its mount points in each, and fleet removes any it leaves behind.
    roots: tuple[str, ...] = ()


@dataclass(frozen=True)
class CheckResult:
    """One check command's outcome. `exit_status` is None when it was killed for the timeout;
    a negative value is the signal that ended it. `ran` is false when the command never started
    (the sandbox could not be set up); such a check never passes. `sandbox` is the mode it ran
    under (None for results recorded before fleet ran checks sandboxed)."""

    cmd: str
    exit_status: int | None
    timed_out: bool
    duration: float
    output_tail: str
    ran: bool = True
    sandbox: str | None = None

    @property
    def passed(self) -> bool:
        return self.ran and self.exit_status == 0 and not self.timed_out

    def to_dict(self) -> dict[str, Any]:
        return {"cmd": self.cmd, "exit_status": self.exit_status, "timed_out": self.timed_out,
                "duration": round(self.duration, 3), "passed": self.passed, "output_tail": self.output_tail,
                "ran": self.ran, "sandbox": self.sandbox}


def not_run(cmds: Sequence[str], why: str, mode: str | None) -> list[CheckResult]:
    """Results for checks that could not be started at all (`why` says what stopped them)."""
    return [CheckResult(cmd=c, exit_status=None, timed_out=False, duration=0.0, ran=False, sandbox=mode,
                        output_tail=f"fleet did not run this check: {why}") for c in cmds]


def run_checks(cmds: Sequence[str], cwd: str | os.PathLike[str], timeout: float, sandbox: Sandbox) -> list[CheckResult]:
    """Run each command in `sandbox` with `/bin/sh -c` in `cwd`, one after another, stdin from
    /dev/null, stdout and stderr together into a temp file (no pipe to fill), in its own process
    group. Past `timeout` seconds the group gets SIGTERM, then SIGKILL after `KILL_GRACE`; whatever
    the outcome, the group is killed at the end (Codex's sandbox dies with its parent, taking every
    process inside with it), so a check leaves no process behind."""
    return [run_check(cmd, cwd, timeout, sandbox) for cmd in cmds]


def run_check(cmd: str, cwd: str | os.PathLike[str], timeout: float, sandbox: Sandbox) -> CheckResult:
    roots = dict.fromkeys([os.fspath(cwd), *sandbox.roots])
    absent = [os.path.join(root, name) for root in roots for name in SANDBOX_MOUNT_POINTS
              if not os.path.lexists(os.path.join(root, name))]
    try:
        return _run_check(cmd, cwd, timeout, sandbox)
    finally:
        _remove_mount_points(absent)


def _remove_mount_points(paths: Sequence[str]) -> None:
    """Remove the sandbox's mount points that were not there before the check, if they are still
    empty directories (rmdir refuses anything else: a check that wrote into one keeps its files)."""
    for path in paths:
        with contextlib.suppress(OSError):
            if os.path.isdir(path) and not os.path.islink(path):
                os.rmdir(path)


def _run_check(cmd: str, cwd: str | os.PathLike[str], timeout: float, sandbox: Sandbox) -> CheckResult:
    started_r, started_w = os.pipe()
    try:
        fcntl.fcntl(started_r, fcntl.F_SETFL, os.O_NONBLOCK)
        argv = [*sandbox.argv, "/bin/sh", "-c", _STARTER, "fleet-check", cmd]
        with tempfile.TemporaryFile() as out:
            began = time.monotonic()
            try:
                proc = subprocess.Popen(argv, cwd=os.fspath(cwd), stdin=started_w, stdout=out,
                                        stderr=subprocess.STDOUT, start_new_session=True, env=dict(sandbox.env))
            except OSError as exc:  # no such cwd, no sandbox program: the check fails, verification goes on
                [result] = not_run([cmd], f"the sandbox could not be started: {exc.strerror or exc}", sandbox.mode)
                return result
            os.close(started_w)
            started_w = -1
            timed_out = _wait(proc, timeout)
            duration = time.monotonic() - began
            _killpg(proc.pid, signal.SIGKILL)  # stragglers the command left in its group
            size = out.seek(0, os.SEEK_END)
            out.seek(max(0, size - OUTPUT_TAIL_CHARS * 4))
            tail = out.read().decode("utf-8", errors="replace")[-OUTPUT_TAIL_CHARS:]
        ran = _read_marker(started_r)
    finally:
        os.close(started_r)
        if started_w >= 0:
            os.close(started_w)
    if not ran and not timed_out:
        tail = ("fleet did not run this check: the agent's sandbox did not start "
                f"(exit status {proc.returncode}).\n{tail}")[-OUTPUT_TAIL_CHARS:]
    return CheckResult(cmd=cmd, exit_status=None if timed_out else proc.returncode, timed_out=timed_out,
                       duration=duration, output_tail=tail, ran=ran, sandbox=sandbox.mode)


def _wait(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    """Wait for `proc`; past `timeout`, end its group (TERM, then KILL). True if it timed out."""
    try:
        proc.wait(timeout=timeout)
        return False
    except subprocess.TimeoutExpired:
        _killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=KILL_GRACE)
        except subprocess.TimeoutExpired:
            _killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        return True


def _read_marker(fd: int) -> bool:
    try:
        return os.read(fd, 1) == b"1"
    except BlockingIOError:  # someone still holds the write end and wrote nothing
        return False


def _killpg(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
