"""The watchdog's systemd user units: the shipped templates, and rendering them for one fleet.

Naming: one pair per fleet, `fleet-watchdog-<fleet name>.service` and `.timer`, so two fleets on one
account (each with its own config, state dir and tmux server) never share or overwrite a unit. Fleet
names already match `^[a-z][a-z0-9-]{0,31}$`, which is safe in a unit name. (A template unit
`fleet-watchdog@<name>` was rejected: the instance would still need its own config path, that is,
a drop-in per fleet, for no gain.)

The templates live once, in the top-level `systemd/`; the package reaches them through the symlink
`fleet/watchdog/unitfiles` in a checkout or editable install, and a wheel stores them as real files
at the same package path. Rendering is pure: the command, config path, period and environment are
arguments; `fleet_command()` is the one helper that looks at the running interpreter.

What a rendered unit relies on: the tick never starts the fleet's tmux server (a server born inside
the unit would host agents under its limits and die with its control group), and it bounds its own
waits well below `TIMEOUT`.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Final

from fleet.errors import EnvironmentFault, InternalError, InvalidInput
from fleet.vocab import FLEET_NAME, STORE_SECRET_ENV

SERVICE_TEMPLATE: Final = "fleet-watchdog.service"
TIMER_TEMPLATE: Final = "fleet-watchdog.timer"
#: Every unit fleet writes carries this line; install and uninstall refuse to touch a file without it.
MARKER: Final = "Written by `fleet watchdog install`"
#: Fifteen minutes: far beyond a healthy tick (well under a second with nothing to do, seconds when it
#: sends), short enough that a hung one does not hold the timer for long.
TIMEOUT: Final = 900
#: Variables the tick needs to find what the installing shell found: `PATH` (tmux, codex, git and the
#: notify command; a user manager's own PATH is minimal), `TMUX_TMPDIR` (where the fleet's tmux socket
#: lives), and `FLEET_HOME` / `XDG_STATE_HOME` (where its state dir is, when fleet.toml does not say).
PASSTHROUGH_ENV: Final = ("PATH", "TMUX_TMPDIR", "FLEET_HOME", "XDG_STATE_HOME")

_PLAIN_ARG: Final = re.compile(r"[A-Za-z0-9_@+=:,./-]+")
_PLACEHOLDER: Final = re.compile(r"@[A-Z_]+@")
_ENV_FILE_ESCAPE: Final = re.compile(r'[\\"`$]')
_FLEET_NAME_RE: Final = re.compile(FLEET_NAME)


@dataclass(frozen=True)
class RenderedUnits:
    """The two unit files for one fleet: names as installed and their full text."""

    service_name: str
    timer_name: str
    service: str
    timer: str


def unit_names(fleet: str) -> tuple[str, str]:
    """The service and timer names installed for the fleet named `fleet`."""
    if not _FLEET_NAME_RE.fullmatch(fleet):
        raise InvalidInput(f"{fleet!r} is not a fleet name ({FLEET_NAME}).",
                           hint="Use the [fleet] name from fleet.toml.")
    return f"fleet-watchdog-{fleet}.service", f"fleet-watchdog-{fleet}.timer"


def template(name: str) -> str:
    """The text of a shipped template (`SERVICE_TEMPLATE` or `TIMER_TEMPLATE`)."""
    path = resources.files("fleet.watchdog").joinpath("unitfiles").joinpath(name)
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise EnvironmentFault(
            f"fleet's unit template {name} is missing ({exc.strerror or exc}).",
            hint="Reinstall fleet; the templates ship in the package as fleet/watchdog/unitfiles/.",
        ) from exc


def fleet_command() -> tuple[str, ...]:
    """The absolute command that runs this fleet installation, whatever `sys.argv[0]` was.

    The `fleet` script next to the interpreter when its shebang runs a Python from that same
    directory (a venv, or a prefix install), else `<python> -P -m fleet`. Paths are kept as given, not
    resolved: a venv's `python` is a symlink, and only the link finds the venv's packages.
    """
    python = Path(sys.executable or "")
    if not python.is_absolute():
        raise EnvironmentFault("Python did not report the path of its own interpreter.",
                               hint="Run fleet through an absolute interpreter path or its installed script.")
    script = python.parent / "fleet"
    try:
        with script.open("rb") as f:
            first = f.readline(4096).decode("utf-8", "replace")
    except OSError:
        first = ""
    interpreter = Path(first[2:].split()[0]) if first.startswith("#!") and first[2:].split() else None
    if (interpreter is not None and interpreter.parent == python.parent and interpreter.name.startswith("python")
            and os.access(script, os.X_OK)):
        return (str(script),)
    return (str(python), "-P", "-m", "fleet")  # -P: nothing imported from the unit's working directory


def passthrough_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The subset of `environ` the units carry (see `PASSTHROUGH_ENV`); empty values are dropped."""
    return _pick(environ, PASSTHROUGH_ENV)


def secret_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The subset of `environ` the units' environment file carries: what the tick needs to reach the
    shared store when the installing shell had it (`STORE_SECRET_ENV`: `$FLEET_STORE_URL`,
    `$PGPASSWORD`), never in the unit file (0644 by convention, shown by `systemctl cat`), but in a
    0600 `EnvironmentFile=` beside it (`render_env_file`). Empty values are dropped."""
    return _pick(environ, STORE_SECRET_ENV)


def _pick(environ: Mapping[str, str], keys: Iterable[str]) -> dict[str, str]:
    """`environ`'s non-empty values of `keys`."""
    return {key: environ[key] for key in keys if environ.get(key)}


def env_file_name(fleet: str) -> str:
    """The environment file installed beside the units of the fleet named `fleet`."""
    return unit_names(fleet)[0].removesuffix(".service") + ".env"


def render_env_file(secrets: Mapping[str, str]) -> str:
    """An `EnvironmentFile=` text: one `KEY="value"` line each, where systemd reads `\\`, `"`, `` ` ``
    and `$` escaped by a backslash as themselves and substitutes nothing. A value with a control
    character is refused without showing it (it is a secret)."""
    lines = [f"# {MARKER}: the shared store's credentials for the tick; `fleet watchdog uninstall` removes it."]
    for key, value in secrets.items():
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise InvalidInput(f"${key} contains a control character, which an environment file cannot carry.",
                               hint=f"Set ${key} without newlines or tabs (percent-encode them in a URL), "
                                    "then install again.")
        escaped = _ENV_FILE_ESCAPE.sub(lambda m: '\\' + m.group(), value)
        lines.append(f'{key}="{escaped}"')
    return "\n".join(lines) + "\n"


def exec_arg(arg: str) -> str:
    """One argument quoted for an `ExecStart=` line: specifiers (`%`) and variables (`$`) escaped."""
    _no_controls(arg)
    escaped = arg.replace("%", "%%").replace("$", "$$")
    if _PLAIN_ARG.fullmatch(arg):
        return escaped
    return '"' + escaped.replace("\\", "\\\\").replace('"', '\\"') + '"'


def env_assignment(key: str, value: str) -> str:
    """One `Environment=` line's value, quoted (`$` has no meaning there; `%` is a specifier)."""
    _no_controls(value)
    text = f"{key}={value}".replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    return f'"{text}"'


def render_units(
    *,
    fleet: str,
    config: Path,
    every: float,
    command: Sequence[str],
    env: Mapping[str, str] | None = None,
    env_file: Path | None = None,
    templates: Mapping[str, str] | None = None,
) -> RenderedUnits:
    """Fill the templates for one fleet. `config` must be absolute; `every` is whole seconds (>= 1);
    `command` is the fleet executable (see `fleet_command`); `env` the variables to set (see
    `passthrough_env`); `env_file` an environment file to read (see `secret_env`); `templates`
    overrides the shipped ones (tests)."""
    service_name, timer_name = unit_names(fleet)
    if not config.is_absolute():
        raise InvalidInput(f"The config path {config} is not absolute.", hint="Pass the resolved fleet.toml path.")
    if not command or not Path(command[0]).is_absolute():
        raise InvalidInput(f"The fleet command {list(command)!r} does not start with an absolute path.",
                           hint="Use fleet.watchdog.units.fleet_command().")
    period = f"{max(1, round(every))}s"
    argv = [*command, "--config", str(config), "watchdog", "tick"]
    env_lines = "".join(f"Environment={env_assignment(k, v)}\n" for k, v in (env or {}).items())
    if env_file is not None:
        _no_controls(str(env_file))
        env_lines += f"EnvironmentFile={str(env_file).replace('%', '%%')}\n"
    values = {
        "@FLEET@": fleet,
        "@SERVICE@": service_name,
        "@EVERY@": period,
        "@TIMEOUT@": f"{TIMEOUT}s",
        "@EXEC_START@": " ".join(exec_arg(a) for a in argv),
    }
    texts = templates or {SERVICE_TEMPLATE: template(SERVICE_TEMPLATE), TIMER_TEMPLATE: template(TIMER_TEMPLATE)}
    service_tpl = texts[SERVICE_TEMPLATE].replace("@ENVIRONMENT@\n", "@ENVIRONMENT@")
    unknown = set(_PLACEHOLDER.findall(service_tpl + texts[TIMER_TEMPLATE])) - {*values, "@ENVIRONMENT@"}
    if unknown:
        raise InternalError(f"The unit templates use placeholders fleet does not fill: {sorted(unknown)}.",
                            hint="The templates and fleet/watchdog/units.py are out of step; reinstall fleet.")
    values["@ENVIRONMENT@"] = env_lines
    # One pass each, so a value that happens to contain `@...@` (a path) is never substituted again.
    service = _PLACEHOLDER.sub(lambda m: values[m.group()], service_tpl)
    timer = _PLACEHOLDER.sub(lambda m: values[m.group()], texts[TIMER_TEMPLATE])
    return RenderedUnits(service_name, timer_name, service, timer)


def _no_controls(text: str) -> None:
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise InvalidInput(f"{text!r} contains a control character, which a unit file cannot carry.",
                           hint="Rename the path (or unset the variable) so it has no newlines or tabs.")
