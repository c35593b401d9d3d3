"""Hardened git for the commands that touch work trees: worktrees, branches, commits and merges.

`gitrun` runs only commands that never read a work tree. Worktrees and merges need more (`worktree`,
`status`, `add`, `commit`, `checkout`, `read-tree -u`, `merge-tree`, `update-ref`, ...), and those read
files an agent wrote and can run programs a repository's config names for them. This module runs them
with everything `gitrun` uses (its fresh environment, its command-line overrides: no hooks, no
fsmonitor, no pager, editor, signing program or protocol), and adds:
- **drivers neutralised by name**: before the first command in a directory, git lists the config
  names it would read there (`config --list --name-only`, includes followed), and every key that
  names a program for a driver is overridden on the command line, which beats every config file:
  `filter.<d>.clean/smudge/process` with an empty command (no filter runs: content is stored and
  checked out as it is), `diff.<d>.command/textconv` likewise, `merge.<d>.driver` with `false` (a
  file that would need that driver conflicts instead of being merged by a program);
- no signing, no upstream tracking, no guessed remotes, and submodules never entered (`status`
  compares a submodule's commit only, so no git process starts inside it).
What this guarantees: no program a repository or an agent named runs with fleet's rights, provided
the config does not change between the listing and the command (a second or so): the common git
dir of a repository fleet makes worktrees of is the user's, outside every agent's writable roots
(`up` and doctor refuse otherwise), and a worktree's git is told its admin dir in it (`git_dir`),
so no `.git` link an agent wrote leads git to a config of the agent's.
Identity comes from the caller (`identity_env`); fleet reads no user's global config.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Final, TypeVar

from . import gitrun

T = TypeVar("T")

#: Overrides on top of `gitrun.OVERRIDES` for the commands this module runs.
EXTRA_OVERRIDES: Final = (
    "commit.gpgSign=false", "tag.gpgSign=false", "branch.autoSetupMerge=false", "branch.autoSetupRebase=never",
    "worktree.guessRemote=false", "status.submoduleSummary=false", "diff.submodule=short", "core.quotePath=false",
    "advice.detachedHead=false", "merge.renormalize=false", "merge.conflictStyle=merge", "color.ui=never",
)
#: Config names that make git run a program for a driver a `.gitattributes` line selects, with the
#: value that disables it. An empty command means "no filter"; `false` makes a merge driver conflict.
_DRIVER_KEYS: Final = (
    (re.compile(r"^filter\.(.+)\.(clean|smudge|process)$", re.S), ""),
    (re.compile(r"^diff\.(.+)\.(command|textconv)$", re.S), ""),
    (re.compile(r"^merge\.(.+)\.driver$", re.S), "false"),
)


@dataclass(frozen=True)
class Result:
    """One git run: exit status and both outputs (decoded with surrogateescape, so any path survives)."""

    returncode: int
    stdout: str
    stderr: str


def identity_env(name: str, email: str) -> dict[str, str]:
    """Author and committer for `commit` and `commit-tree` (fleet reads no user's config for them)."""
    return {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email, "GIT_COMMITTER_NAME": name,
            "GIT_COMMITTER_EMAIL": email}


class Git:
    """git in one directory (a work tree or a repository). The driver listing is taken at the first
    command and reused: make a new `Git` for a later operation. Not thread-safe; cheap to make.
    With `git_dir`, git is told its repository (`--git-dir`, and `cwd` as `--work-tree` unless
    `bare`): no `.git` file in `cwd` is read, so an agent rewriting its link cannot redirect a call."""

    def __init__(self, cwd: str, git_dir: str | None = None, *, bare: bool = False) -> None:
        self.cwd = cwd
        self.git_dir = git_dir
        self.bare = bare
        self._overrides: list[str] | None = None

    def run(self, *args: str, check: bool = True, ok: tuple[int, ...] = (0,), stdin: bytes | None = None,
            env: dict[str, str] | None = None, timeout: float = gitrun.TIMEOUT) -> Result:
        """Run `git ARGS` in the directory. With `check`, an exit status outside `ok` raises
        `gitrun.GitError` carrying git's last words; so do a missing git and a timeout."""
        cmd = self.argv(args)
        full_env = gitrun.environment()
        if env:
            full_env.update(env)
        try:
            proc = subprocess.run(cmd, cwd=self.cwd, capture_output=True, timeout=timeout, env=full_env,
                                  input=stdin if stdin is not None else b"", check=False, close_fds=True)
        except FileNotFoundError:
            raise gitrun.GitError("git is not installed") from None
        except subprocess.TimeoutExpired:
            raise gitrun.GitError(f"git {args[0]} in {self.cwd} did not answer within {timeout:.0f} s") from None
        out = Result(proc.returncode, proc.stdout.decode("utf-8", "surrogateescape"),
                     proc.stderr.decode("utf-8", "replace"))
        if check and proc.returncode not in ok:
            raise gitrun.GitError(f"git {' '.join(args[:2])} failed in {self.cwd}: {out.stderr.strip()[-500:]}",
                                  proc.returncode)
        return out

    def run_bounded(self, args: tuple[str, ...], limit: int, timeout: float = gitrun.TIMEOUT) -> tuple[bytes, bool]:
        """stdout of `git ARGS` up to `limit` bytes, and whether there was more (git is then stopped).
        Raises `gitrun.GitError` when git fails or runs past `timeout`."""
        def take(stdout: IO[bytes]) -> tuple[bytes, bool]:
            data = stdout.read(limit + 1)
            return data, len(data) > limit  # the rest is not wanted: stop git rather than read it

        data, code = self.stream(args, take, timeout)
        if len(data) > limit:
            return data[:limit], True
        if code != 0:
            raise gitrun.GitError(f"git {' '.join(args[:2])} failed in {self.cwd} (exit {code})", code)
        return data, False

    def stream(self, args: tuple[str, ...], consume: Callable[[IO[bytes]], tuple[T, bool]],
               timeout: float = gitrun.TIMEOUT) -> tuple[T, int]:
        """Run `git ARGS` and hand its stdout to `consume`, which returns its result and whether git is
        to be stopped (the rest of its output is not wanted); returns that result and git's exit status
        (negative when git was stopped, or killed for running past `timeout`). Raises what `consume`
        raises (git is killed), and `FileNotFoundError` without git."""
        proc = subprocess.Popen(self.argv(args), cwd=self.cwd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                stdin=subprocess.DEVNULL, env=gitrun.environment(), close_fds=True)
        timer = threading.Timer(timeout, proc.kill)  # a hung git is killed; its exit status says so
        timer.start()
        stop = False
        try:
            assert proc.stdout is not None
            result, stop = consume(proc.stdout)
        except BaseException:
            proc.kill()
            raise
        finally:
            timer.cancel()
            if stop:
                proc.kill()
            proc.communicate()
        return result, proc.returncode

    def out(self, *args: str) -> str:
        """stdout of a command that must succeed."""
        return self.run(*args).stdout

    def argv(self, args: tuple[str, ...]) -> list[str]:
        if self._overrides is None:
            self._overrides = self._neutralisers()
        cmd = self._base()
        for item in self._overrides:
            cmd += ["-c", item]
        return cmd + list(args)

    def _base(self) -> list[str]:
        cmd = _base_argv()
        if self.git_dir is not None:
            cmd.append(f"--git-dir={self.git_dir}")
            if not self.bare:
                cmd.append(f"--work-tree={self.cwd}")
        return cmd

    def _neutralisers(self) -> list[str]:
        cmd = [*self._base(), "config", "--list", "--name-only", "-z"]
        try:
            proc = subprocess.run(cmd, cwd=self.cwd, capture_output=True, timeout=gitrun.TIMEOUT,
                                  env=gitrun.environment(), stdin=subprocess.DEVNULL, check=False, close_fds=True)
        except FileNotFoundError:
            raise gitrun.GitError("git is not installed") from None
        except subprocess.TimeoutExpired:
            raise gitrun.GitError(f"git config in {self.cwd} did not answer within {gitrun.TIMEOUT:.0f} s") from None
        if proc.returncode != 0:  # no repository here: git reads no repository config either
            return []
        names = proc.stdout.decode("utf-8", "surrogateescape").split("\0")
        found = [(name, value) for name in dict.fromkeys(names) if name
                 for pattern, value in _DRIVER_KEYS if pattern.match(name)]
        if any("=" in name for name, _ in found):  # `-c` splits at the first `=`: it cannot be overridden
            raise gitrun.GitError(f"the git config of {self.cwd} names a driver whose name holds '=': "
                                  "fleet cannot switch it off, so it runs no git there")
        return [f"{name}={value}" for name, value in found]


def _base_argv() -> list[str]:
    exe = shutil.which("git", path=gitrun.environment()["PATH"]) or "git"
    cmd = [exe, "--no-pager", "--no-replace-objects"]
    for item in (*gitrun.OVERRIDES, *EXTRA_OVERRIDES):
        cmd += ["-c", item]
    return cmd
