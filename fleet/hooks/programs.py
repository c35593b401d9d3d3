"""Which program a command would really run: refuse one the agent could have planted or shadowed.

An approved command runs outside the sandbox as `bash -lc CMD` (or `-c`, or another shell the model
picks), in the environment Codex gives its shell. `cat` in that command is whatever the shell finds
first: a function from a profile file a login shell reads, or the first `cat` on `PATH`. If the agent
could write any of those places, an allowlisted name proves nothing. So, before a policy allows, the
hook checks, in its own environment (Codex's, which the shell inherits; measured on 0.169 the shell's
`PATH` was Codex's own helper directory followed by the login profile's, so both the hook's `PATH`
and the one `bash -lc` builds, asked in `/`, are checked):

- no `BASH_ENV`, `ENV` or `ZDOTDIR` (files the shells run before any command);
- `HOME` (profile files: `.profile`, `.bash_profile`, `.zshenv`, ...) is absolute and not inside a
  place the agent may write;
- every `PATH` entry is absolute and not inside such a place, and the program found first resolves
  (through symlinks) to a file outside them too.

"A place the agent may write": the command's working directory, the assignment's cwd, the
temporary directories (`/tmp`, `/var/tmp`, `/dev/shm`, `$TMPDIR`) that Codex's workspace-write
sandbox opens, and every root any sandboxed agent of the fleet may write (its cwd, `writable_roots`,
`--add-dir`: `fleet.agents.writable.fleet_roots`, handed to the hook with the policy), since another
agent may have planted the program. fleet does not see the PATH a login shell's profile builds (it
checks its own), nor what an earlier approved (unsandboxed) command wrote elsewhere: see the
README's threat model.
"""

from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import Iterable, Mapping
from typing import Final

#: The temporary directories Codex's workspace-write sandbox makes writable besides the cwd.
TEMP_ROOTS: Final = ("/tmp", "/var/tmp", "/dev/shm")
#: How long the login shell may take to say which PATH it builds; past it, a person decides.
LOGIN_PATH_TIMEOUT: Final = 3.0
#: Marks where the login shell's answer starts, whatever its profile printed before it.
LOGIN_MARK: Final = "fleet-login-path"
#: Files a shell runs before the command when these are set.
_STARTUP_VARS: Final = ("BASH_ENV", "ENV", "ZDOTDIR")


def agent_roots(cwds: Iterable[str | None], env: Mapping[str, str], *, known: bool = False) -> tuple[str, ...]:
    """The places (real paths) an agent running in `cwds` may write, as far as fleet can tell.
    `known`: `cwds` already hold every sandboxed agent's writable roots as fleet read them from their
    settings (`/tmp` and `$TMPDIR` unless an agent excludes them), so `/tmp` and `$TMPDIR` are not
    added blindly; `/var/tmp` and `/dev/shm` always are."""
    out: list[str] = []
    temps = [r for r in TEMP_ROOTS if r != "/tmp"] if known else [*TEMP_ROOTS, env.get("TMPDIR")]
    for path in [*cwds, *temps]:
        if isinstance(path, str) and path.startswith("/"):
            real = os.path.realpath(path)
            if real not in out:
                out.append(real)
    return tuple(out)


def program_problem(program: str, env: Mapping[str, str], roots: Iterable[str]) -> str | None:
    """None when `program` (a plain name) resolves, in `env`, to nothing the agent could have put
    there; else a phrase saying what could be the agent's. Fails closed: no PATH, no HOME, a program
    not found, a relative PATH entry are all problems."""
    roots = tuple(roots)
    for var in _STARTUP_VARS:
        if env.get(var):
            return f"${var} is set, so the shell runs a file before the command"
    home = env.get("HOME", "")
    if not home.startswith("/"):
        return "HOME is not an absolute path, so fleet cannot tell which profile files a login shell reads"
    if inside_any(os.path.realpath(home), roots):
        return (f"HOME ({home}) is a directory the agent may write, and a login shell runs its profile files "
                "(which can redefine any command)")
    problem = _path_problem(program, env.get("PATH", ""), roots)
    if problem is not None:
        return problem
    login = login_path(env)  # Codex runs `bash -lc CMD`: the login profile may rebuild PATH
    if login is None:
        return ("fleet could not read the PATH a login shell builds (`bash -lc`), so it cannot tell which "
                "program would run")
    return _path_problem(program, login, roots, " (the one a login shell builds)")


def login_path(env: Mapping[str, str]) -> str | None:
    """The PATH `bash -lc` ends up with in `env` (the user's login profile runs; never in the agent's
    directory: it starts in `/`), or None when the shell fails, is missing or takes too long. Asked
    once per environment in a process: a wrapped command (`bash -c 'cat x'`) checks two programs."""
    key = tuple(sorted(env.items()))
    if key not in _LOGIN_PATHS:
        _LOGIN_PATHS.clear()  # one hook process judges one environment; keep no more than that
        _LOGIN_PATHS[key] = _ask_login_path(env)
    return _LOGIN_PATHS[key]


_LOGIN_PATHS: dict[tuple[tuple[str, str], ...], str | None] = {}


def _ask_login_path(env: Mapping[str, str]) -> str | None:
    import subprocess

    try:
        proc = subprocess.run(["/bin/bash", "-lc", 'printf "\\0%s\\0%s" "$0" "$PATH"', LOGIN_MARK],
                              env=dict(env), cwd="/", stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=LOGIN_PATH_TIMEOUT, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return None
    marked = proc.stdout.decode("utf-8", errors="surrogateescape").rpartition(f"\0{LOGIN_MARK}\0")
    return marked[2] if marked[1] else None


def _path_problem(program: str, path: str, roots: tuple[str, ...], which: str = "") -> str | None:
    """None when `program` is found on `path` outside `roots`, with no entry an agent could write."""
    if not path:
        return f"PATH{which} is empty, so fleet cannot tell which program would run"
    found: str | None = None
    for entry in path.split(":"):
        if not entry.startswith("/"):
            return (f"PATH{which} holds the relative entry {entry or '(empty)'!r}, which resolves in the "
                    "command's directory")
        if inside_any(os.path.realpath(entry), roots):
            return f"PATH{which} holds {entry}, a directory the agent may write, where it could plant `{program}`"
        candidate = posixpath.join(entry, program)
        if found is None and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            found = candidate
    if found is None:
        return f"`{program}` is not found on PATH{which}"
    real = os.path.realpath(found)
    if inside_any(real, roots):
        return f"`{program}` resolves to {real}, a file the agent may write"
    return None


def inside_any(path: str, roots: Iterable[str]) -> bool:
    """`path` is one of `roots` or below one (real, absolute paths, compared as strings)."""
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


def operand_problem(operand: str, cwd: str) -> str | None:
    """None when `operand` (a path a read-only command may read, relative to `cwd`) is missing, a regular
    file or a directory, symlinks followed; else why not: a FIFO would hang the command (and the turn),
    a device may do anything when read. Looked at now: a process of the agent's could still swap it
    before the command runs, which only the sandbox, not this check, can stop."""
    try:
        st = os.stat(os.path.join(cwd, operand))
    except (OSError, ValueError):  # missing or unreadable: the command fails on its own
        return None
    if stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode):
        return None
    return f"`{operand}` is a FIFO, device or socket, which reading can block or act on"
