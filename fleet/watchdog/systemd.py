"""Install, uninstall and inspect the watchdog's systemd user units for one fleet.

The unit files go to `$XDG_CONFIG_HOME/systemd/user/` (default `~/.config/systemd/user/`), written
atomically and only when their content changed, so `install` is idempotent. When a user manager
answers (`systemctl --user`), install runs `daemon-reload` and `enable --now` on the timer, and
uninstall runs `disable --now` first. When none answers (no login session, no lingering, a
container), the files are still written or removed, the result says so plainly, and `commands` lists
what to run once a manager is there (`loginctl enable-linger` included). Results are TypedDicts a CLI
or MCP adapter renders as they are.

When the installing shell has the shared store's credentials (`$FLEET_STORE_URL`, `$PGPASSWORD`),
they go to `fleet-watchdog-<fleet>.env` beside the units (0600), which the service reads with
`EnvironmentFile=`: without them the tick would keep its own embedded store while the fleet uses the
database. Installing without them removes that file.

Files without fleet's marker line are never overwritten or removed (`UnitConflict`). Every
`systemctl` call goes through a `Systemctl` runner (default: the real one, 10 s timeout), which
tests replace only to simulate a user manager that this container cannot run.
"""

from __future__ import annotations

import getpass
import os
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final, Literal, Protocol, TypedDict

from fleet.errors import EnvironmentFault
from fleet.fsutil import write_atomic

from .units import (
    MARKER,
    RenderedUnits,
    env_file_name,
    fleet_command,
    passthrough_env,
    render_env_file,
    render_units,
    secret_env,
    unit_names,
)

#: A user manager answers `systemctl --user` in milliseconds; ten seconds means it is wedged.
SYSTEMCTL_TIMEOUT: Final = 10.0
#: The timer and service properties `status` reads (`systemctl --user show -p ...`).
TIMER_PROPERTIES: Final = ("ActiveState", "SubState", "UnitFileState", "LastTriggerUSec", "NextElapseUSecRealtime",
                           "Result")
SERVICE_PROPERTIES: Final = ("ActiveState", "SubState", "Result", "ExecMainStatus", "ExecMainStartTimestamp",
                             "ExecMainExitTimestamp")

InstallOutcome = Literal["enabled", "unavailable", "failed"]
UninstallOutcome = Literal["disabled", "unavailable", "failed"]


class UnitConflict(EnvironmentFault):
    """A unit file with fleet's name exists but was not written by fleet."""

    code = "unit_conflict"


class CommandRun(TypedDict):
    """One `systemctl` call made: the full command, its exit status and its output (trimmed)."""

    command: list[str]
    returncode: int
    output: str


class InstallResult(TypedDict):
    fleet: str
    unit_dir: str
    service: str
    timer: str
    written: list[str]
    manager: InstallOutcome
    message: str
    commands: list[str]
    ran: list[CommandRun]


class UninstallResult(TypedDict):
    fleet: str
    unit_dir: str
    removed: list[str]
    manager: UninstallOutcome
    message: str
    commands: list[str]
    ran: list[CommandRun]


class StatusResult(TypedDict):
    fleet: str
    unit_dir: str
    installed: bool
    files: list[str]
    manager: Literal["available", "unavailable"]
    timer: dict[str, str]
    service: dict[str, str]
    message: str


class Systemctl(Protocol):
    """Runs `systemctl --user ARGS`; returns (exit status, output). 127 means systemctl is missing."""

    def __call__(self, args: Sequence[str]) -> tuple[int, str]: ...


def run_systemctl(args: Sequence[str]) -> tuple[int, str]:
    """The real runner: `systemctl --user ARGS` with stdin closed and a timeout."""
    try:
        proc = subprocess.run(["systemctl", "--user", *args], capture_output=True, text=True, check=False,
                              stdin=subprocess.DEVNULL, timeout=SYSTEMCTL_TIMEOUT)
    except FileNotFoundError:
        return 127, "systemctl is not installed"
    except subprocess.TimeoutExpired:
        return 124, f"systemctl --user did not answer within {SYSTEMCTL_TIMEOUT:g}s"
    return proc.returncode, (proc.stdout + proc.stderr).strip()


def unit_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where user units go: `$XDG_CONFIG_HOME/systemd/user`, else `~/.config/systemd/user`."""
    env = os.environ if environ is None else environ
    xdg = env.get("XDG_CONFIG_HOME", "")
    root = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".config"
    return root / "systemd" / "user"


def install(
    *,
    fleet: str,
    config: Path,
    every: float,
    systemctl: Systemctl = run_systemctl,
    command: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> InstallResult:
    """Write (or refresh) the fleet's units and enable the timer when a user manager answers.

    Idempotent: unchanged files are not rewritten (`written` lists the ones that were), and
    `enable --now` on an enabled timer changes nothing. Raises `UnitConflict` before writing
    anything if a unit of the same name was not written by fleet.
    """
    env = os.environ if environ is None else environ
    directory = unit_dir(env)
    secrets = secret_env(env)
    env_file = directory / env_file_name(fleet)
    units = render_units(fleet=fleet, config=config.resolve(), every=every, command=command or fleet_command(),
                         env=passthrough_env(env), env_file=env_file if secrets else None)
    targets = {directory / units.service_name: units.service, directory / units.timer_name: units.timer}
    if secrets:
        targets[env_file] = render_env_file(secrets)
    for path in dict.fromkeys([*targets, env_file]):  # the env file once, whether written or not
        _ours_or_absent(path)
    written = []
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        for path, text in targets.items():
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                write_atomic(path, text.encode("utf-8"))  # 0600, as the environment file must be
                written.append(str(path))
        if not secrets and env_file.exists():  # installed before with credentials the shell no longer has
            env_file.unlink()
    except OSError as exc:
        raise EnvironmentFault(f"Cannot write the watchdog units in {directory}: {exc.strerror or exc}.",
                               hint="Check that directory's permissions, or set $XDG_CONFIG_HOME.") from exc
    base: InstallResult = {
        "fleet": fleet, "unit_dir": str(directory), "service": str(directory / units.service_name),
        "timer": str(directory / units.timer_name), "written": written, "manager": "enabled", "message": "",
        "commands": [], "ran": [],
    }
    wrote = f"Wrote {len(written)} unit file(s) to {directory}" if written else f"The units in {directory} are current"
    steps = [["daemon-reload"], ["enable", "--now", units.timer_name]]
    answered, why, probe = _probe(systemctl)
    base["ran"].append(probe)
    if not answered:
        base["manager"] = "unavailable"
        base["commands"] = _todo(steps, probe["returncode"], units, config, every)
        base["message"] = f"{wrote}, but no systemd user manager answered ({why}), so the timer is not enabled. " + (
            "Run the commands below as this user, or run the watchdog in the foreground instead."
        )
        return base
    for i, step in enumerate(steps):
        run = _run(systemctl, step)
        base["ran"].append(run)
        if run["returncode"] != 0:
            base["manager"] = "failed"
            base["commands"] = [_shown(s) for s in steps[i:]]
            base["message"] = f"{wrote}, but `{_shown(step)}` failed: {run['output'] or 'no output'}."
            return base
    base["message"] = f"{wrote}; the user manager runs {units.timer_name} every {round(every)}s."
    return base


def uninstall(
    *, fleet: str, systemctl: Systemctl = run_systemctl, environ: Mapping[str, str] | None = None,
) -> UninstallResult:
    """Disable the timer (when a user manager answers) and remove the fleet's unit files.

    Idempotent: with nothing installed it removes nothing and says so. Also removes the
    `timers.target.wants` link that `enable` made, so no manager finds a dangling timer later.
    """
    env = os.environ if environ is None else environ
    service_name, timer_name = unit_names(fleet)
    directory = unit_dir(env)
    files = [directory / service_name, directory / timer_name, directory / env_file_name(fleet)]
    for path in files:
        _ours_or_absent(path)
    wants = directory / "timers.target.wants" / timer_name
    result: UninstallResult = {"fleet": fleet, "unit_dir": str(directory), "removed": [], "manager": "disabled",
                               "message": "", "commands": [], "ran": []}
    answered, why, probe = _probe(systemctl)
    result["ran"].append(probe)
    if answered:
        run = _run(systemctl, ["disable", "--now", timer_name])
        result["ran"].append(run)
        if run["returncode"] != 0 and any(p.exists() for p in files):
            result["manager"] = "failed"
            result["commands"] = [f"systemctl --user disable --now {timer_name}"]
            result["message"] = (f"`systemctl --user disable --now {timer_name}` failed: "
                                 f"{run['output'] or 'no output'}; the unit files were left in place.")
            return result
    try:
        for path in [*files, wants]:
            if path.is_symlink() or path.exists():
                path.unlink()
                result["removed"].append(str(path))
    except OSError as exc:
        raise EnvironmentFault(f"Cannot remove the watchdog units in {directory}: {exc.strerror or exc}.",
                               hint="Check that directory's permissions.") from exc
    gone = f"Removed {len(result['removed'])} file(s) from {directory}" if result["removed"] else (
        f"No watchdog units for fleet {fleet} were installed in {directory}")
    if answered:
        result["ran"].append(_run(systemctl, ["daemon-reload"]))
        result["message"] = f"{gone}; the timer is disabled and stopped."
    else:
        result["manager"] = "unavailable"
        if result["removed"]:
            result["commands"] = [f"systemctl --user stop {timer_name}", "systemctl --user daemon-reload"]
        result["message"] = f"{gone}. No systemd user manager answered ({why})" + (
            "; if one is running elsewhere for this user, run the commands below so it forgets the timer."
            if result["removed"] else ".")
    return result


def status(
    *, fleet: str, systemctl: Systemctl = run_systemctl, environ: Mapping[str, str] | None = None,
) -> StatusResult:
    """What is installed for the fleet, and the timer's and service's state from the user manager."""
    env = os.environ if environ is None else environ
    service_name, timer_name = unit_names(fleet)
    directory = unit_dir(env)
    files = [str(p) for p in (directory / service_name, directory / timer_name) if _is_ours(p)]
    result: StatusResult = {"fleet": fleet, "unit_dir": str(directory), "installed": len(files) == 2,
                            "files": files, "manager": "unavailable", "timer": {}, "service": {}, "message": ""}
    installed = "installed" if result["installed"] else ("partly installed" if files else "not installed")
    answered, why, _ = _probe(systemctl)
    if not answered:
        result["message"] = (f"The watchdog units for fleet {fleet} are {installed}; no systemd user manager "
                             f"answered ({why}).")
        return result
    result["manager"] = "available"
    result["timer"] = _show(systemctl, timer_name, TIMER_PROPERTIES)
    result["service"] = _show(systemctl, service_name, SERVICE_PROPERTIES)
    t, s = result["timer"], result["service"]
    state = (f"{t.get('ActiveState', 'unknown')} ({t.get('SubState', 'unknown')}), "
             f"{t.get('UnitFileState') or 'not enabled'}")
    result["message"] = (f"The watchdog units for fleet {fleet} are {installed}; {timer_name} is {state}; "
                         f"last tick {t.get('LastTriggerUSec') or 'never'} ended {s.get('Result') or 'unknown'}, next "
                         f"{t.get('NextElapseUSecRealtime') or 'not scheduled'}.")
    return result


def _is_ours(path: Path) -> bool:
    try:
        return path.is_file() and not path.is_symlink() and MARKER in path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False


def _ours_or_absent(path: Path) -> None:
    if (path.exists() or path.is_symlink()) and not _is_ours(path):
        raise UnitConflict(
            f"{path} exists and was not written by fleet (no marker line {MARKER!r}).",
            hint="Move it aside or rename your unit; fleet never overwrites or removes units it did not write.",
            path=str(path),
        )


def _probe(systemctl: Systemctl) -> tuple[bool, str, CommandRun]:
    run = _run(systemctl, ["show", "--property=Version"])
    lines = run["output"].splitlines()
    return run["returncode"] == 0, (lines[-1] if lines else f"exit status {run['returncode']}"), run


def _run(systemctl: Systemctl, args: Sequence[str]) -> CommandRun:
    code, output = systemctl(args)
    return {"command": ["systemctl", "--user", *args], "returncode": code, "output": output[-2000:]}


def _show(systemctl: Systemctl, unit: str, props: Sequence[str]) -> dict[str, str]:
    code, output = systemctl(["show", unit, *(f"--property={p}" for p in props)])
    if code != 0:
        return {}
    pairs = (line.split("=", 1) for line in output.splitlines() if "=" in line)
    return {k: v for k, v in pairs if k in props}


def _shown(args: Sequence[str]) -> str:
    return shlex.join(["systemctl", "--user", *args])


def _todo(steps: list[list[str]], probe_status: int, units: RenderedUnits, config: Path, every: float) -> list[str]:
    if probe_status == 127:  # no systemd at all: the foreground loop is the only way
        return [shlex.join([*fleet_command(), "--config", str(config.resolve()), "watchdog", "run",
                            "--every", f"{round(every)}s"])]
    return [shlex.join(["loginctl", "enable-linger", getpass.getuser()]), *(_shown(s) for s in steps)]
