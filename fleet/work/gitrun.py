"""Hardened git: the one way fleet runs `git` in a directory an agent can write.

A repository's own configuration can name programs that git runs on its own: `core.fsmonitor` runs on
any index read (even `diff-index --cached`), filters (`filter.<name>.clean/smudge/process`, chosen by
`.gitattributes`) and `core.untrackedCache` on work-tree reads, hooks (`core.hooksPath`), diff
drivers (`diff.external`, `diff.<name>.textconv/command`), pagers (`core.pager`, `pager.<cmd>`),
editors, `core.sshCommand`, `core.gitProxy`, credential helpers, `gpg.program`, remote helpers and
lazy fetches of a partial clone. An agent (or a command a person approved for it) can write all of
that into `.git/config`, a file it `include`s, `.gitattributes`, a `.git` file pointing at a
repository of its own (`gitdir:`), and fleet's environment may carry `GIT_DIR`, `GIT_CONFIG_*`,
`GIT_EXEC_PATH` and the like. None of it may run with fleet's rights.

How this module makes sure, in layers:
1. **Only commands that never read the work tree** (`ALLOWED`): they read refs, the index and the
   object store. No filter, textconv, attribute or untracked cache is consulted by them, so
   filter drivers with names fleet cannot know in advance never come into play. Any other command
   is refused (`ValueError`): it is a programming error, not something to neutralise at run time.
2. **Every program-naming key git reads for them is overridden on the command line** (`OVERRIDES`,
   which beats any config file, includes too): `core.fsmonitor=false`, `core.hooksPath=/dev/null`, ...
3. **A fresh environment**, not fleet's: `PATH`, `HOME` and locale only, plus `GIT_CONFIG_NOSYSTEM`,
   `GIT_CONFIG_GLOBAL=/dev/null`, `GIT_ATTR_NOSYSTEM`, no optional locks (git writes nothing into the
   repository), no replace objects, no protocols (no fetch, so no ssh, proxy, credential or remote
   helper can start), no terminal prompt, no pager.
What remains: git itself parses files the agent wrote (config, index, refs, objects). A git bug in
that parsing is outside what fleet can defend against; a repository git refuses (corrupt index,
another owner: `safe.directory` counts only in the user's own config, which this git does not read)
makes the caller fail or fall back to a plain walk, never guess. A `.git` file (`gitdir:`) is
followed with all of the above in force; the snapshot refuses a git dir that moved since the baseline.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from typing import Final

#: Subcommands fleet runs in an agent's directory; each reads refs, the index or objects only.
ALLOWED: Final = frozenset({"rev-parse", "symbolic-ref", "diff-index", "diff-tree", "ls-tree", "merge-base"})
#: Options that would make an allowed command touch the work tree or run a diff program.
FORBIDDEN_OPTIONS: Final = ("--ext-diff", "--textconv", "-p", "-u", "--patch", "--stat", "--work-tree")
#: Command-line config, which wins over every config file (and what they include). Each names a
#: program, or makes git write or reach out; a multi-valued list is reset by its empty value.
OVERRIDES: Final = (
    "core.fsmonitor=false", "core.hooksPath=/dev/null", "core.untrackedCache=false", "core.pager=cat",
    "core.editor=false", "sequence.editor=false", "core.sshCommand=false", "core.askPass=false",
    "credential.helper=", "diff.external=", "gpg.program=false", "gpg.ssh.program=false",
    "gpg.x509.program=false", "log.showSignature=false", "protocol.allow=never", "gc.auto=0",
    "maintenance.auto=false", "submodule.recurse=false", "core.gitProxy=",
)
#: Environment that git gets: nothing of fleet's own `GIT_*` (GIT_DIR, GIT_WORK_TREE, GIT_INDEX_FILE,
#: GIT_OBJECT_DIRECTORY, GIT_CONFIG_COUNT/KEY/VALUE, GIT_CONFIG_PARAMETERS, GIT_EXEC_PATH, ...).
FIXED_ENV: Final = {
    "LC_ALL": "C", "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_ATTR_NOSYSTEM": "1",
    "GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0", "GIT_NO_REPLACE_OBJECTS": "1",
    "GIT_ALLOW_PROTOCOL": "fleet-none", "GIT_PROTOCOL_FROM_USER": "0", "GIT_NO_LAZY_FETCH": "1",
    "GIT_PAGER": "cat", "PAGER": "cat", "GIT_EDITOR": "false", "GIT_ASKPASS": "false", "SSH_ASKPASS": "false",
    "GIT_SSH_COMMAND": "false",
}
#: git must answer quickly; a hung git (a lock, a network filesystem) fails instead of blocking.
TIMEOUT: Final = 60.0


class GitError(RuntimeError):
    """git is missing, timed out or refused; `returncode` is None when it did not run to the end."""

    def __init__(self, message: str, returncode: int | None = None) -> None:
        super().__init__(message)
        self.returncode = returncode


def environment() -> dict[str, str]:
    """The whole environment a hardened git runs with (see the module docstring)."""
    env = {k: os.environ[k] for k in ("PATH", "HOME") if k in os.environ}
    env.setdefault("PATH", os.defpath)
    env.update(FIXED_ENV)
    return env


def argv(args: Sequence[str], git_dir: str | None = None) -> list[str]:
    """The full argv for `git ARGS`: the fixed options, every override and, when given, the
    repository (`--git-dir`, so a later call cannot be redirected by a `.git` file swapped meanwhile).
    Raises `ValueError` for a subcommand or option outside what this module allows."""
    if not args or args[0] not in ALLOWED:
        raise ValueError(f"fleet does not run `git {args[0] if args else ''}` in an agent's directory")
    bad = [a for a in args[1:] if a in FORBIDDEN_OPTIONS or a.startswith(("--ext-diff", "--textconv", "--output"))]
    if bad:
        raise ValueError(f"fleet does not run git with {', '.join(bad)} in an agent's directory")
    exe = shutil.which("git", path=environment()["PATH"]) or "git"
    cmd = [exe, "--no-pager", "--no-replace-objects"]
    for item in OVERRIDES:
        cmd += ["-c", item]
    if git_dir is not None:
        cmd.append(f"--git-dir={git_dir}")
    cmd.append(args[0])
    if args[0] in ("diff-index", "diff-tree"):
        cmd += ["--no-ext-diff", "--no-textconv"]
    return cmd + list(args[1:])


def run(cwd: str, *args: str, git_dir: str | None = None, check: bool = True) -> str | None:
    """Run one allowed git command in `cwd`; its stdout (decoded with surrogateescape, so any path
    survives), or None when it failed and `check` is false. Raises `GitError` when git is missing,
    did not answer within `TIMEOUT`, or (with `check`) failed."""
    cmd = argv(args, git_dir)
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, timeout=TIMEOUT, env=environment(),
                              stdin=subprocess.DEVNULL, check=False, close_fds=True)
    except FileNotFoundError:
        raise GitError("git is not installed") from None
    except subprocess.TimeoutExpired:
        raise GitError(f"git {args[0]} in {cwd} did not answer within {TIMEOUT:.0f} s") from None
    if proc.returncode != 0:
        if check:
            err = proc.stderr.decode(errors="replace").strip()[-500:]
            raise GitError(f"git {' '.join(args[:2])} failed in {cwd}: {err}", proc.returncode)
        return None
    return proc.stdout.decode("utf-8", errors="surrogateescape")
