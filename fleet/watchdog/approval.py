"""Which pending approvals a policy may answer without a person: pure, conservative, explicit.

A command reaches an approval dialog because it needs more than the agent's sandbox gives it, so an
automatic "allow" runs it unsandboxed. The read-only class is therefore a short allowlist of
programs that cannot change files, run other programs or hang, each with the options that would
break that promise refused (`READ_ONLY`, defined with the `[watchdog]` table in
`fleet.config.watchdog`). Anything unusual (shell syntax, a path as the program, an unknown
program, a refused option) is simply not read-only and falls to the policy's `otherwise`; a false
"not read-only" costs a person one click, a false "read-only" could cost their files.

Left out on purpose: `git` (repo config such as `core.fsmonitor`, `diff.external` or a pager runs
programs, and the agent can write `.git/config`), `sed`/`awk` (write and execute commands), `sort`
(`-o`, `--compress-program`), `uniq` (writes its second operand), `tee`, `xargs`, `env`, `tree`
(`-o`), `file` (`-C` writes), `date` (`-s`), pagers (they wait for a terminal).

The words judged are the shell's own (`fleet.shellwords`: a grammar bash, dash and zsh split
alike; anything else is not judged), taken from the whole command Codex sent. An exact `commands`
line is trusted only for programs in `NO_WORKSPACE_CODE` (the read-only list); `make test` and the
like run the agent's own files, `cp`/`rm` and the like write through paths the agent controls, and
both need `commands_running_workspace_code`. And an allow needs the hook's check that the
program found is not one the agent could have planted (`fleet.hooks.programs`).

What "read-only" does not mean: private. These commands can read anything the user can, as Codex's
own read-only sandbox can.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

from fleet.config.watchdog import NO_WORKSPACE_CODE, READ_ONLY, ApprovalPolicy, Refuse
from fleet.shellwords import split_command

Decision = Literal["allow", "deny", "ask"]

#: Shells whose `-c SCRIPT` form a model may write; the script is judged instead (one level only).
SHELLS: Final = frozenset({"bash", "sh", "zsh", "dash"})
#: A longer command line is never approved by rule (the hook journals at most this much of it).
MAX_COMMAND: Final = 4000

#: Says whether the program a command names resolves to something the agent cannot have planted
#: (None: fine; else why not). Given by the hook, which sees the environment Codex runs commands in.
ProgramCheck = Callable[[str], "str | None"]


@dataclass(frozen=True)
class Verdict:
    """The answer a policy gives one pending approval, with a sentence saying why."""

    decision: Decision
    reason: str


def command_argv(command: str) -> tuple[str, ...] | str:
    """The argv the shell runs for `command` (a `bash -c SCRIPT` wrapper judged by its script), or
    why fleet cannot be sure of it (`fleet.shellwords`)."""
    if len(command) > MAX_COMMAND:
        return f"it is longer than {MAX_COMMAND} characters"
    argv = split_command(command)
    if isinstance(argv, str):
        return argv
    if len(argv) == 3 and argv[0] in SHELLS and argv[1] in ("-c", "-lc"):
        return split_command(argv[2])
    return argv


def read_only_problem(command: str) -> str | None:
    """None when `command` is in the read-only class, else a short phrase saying why it is not."""
    argv = command_argv(command)
    if isinstance(argv, str):
        return argv
    program, args = argv[0], argv[1:]
    if "/" in program:
        return f"{program!r} is a path, not a plain program name"
    rule = READ_ONLY.get(program)
    if rule is None:
        return f"`{program}` is not on the read-only list"
    for arg in args:
        if "/dev/" in arg or "/proc/" in arg or arg == "-" or arg.endswith("=-"):
            return (f"`{arg}` names a device, a process's files or standard input, and reading one can "
                    "block or have effects")
        if arg.startswith("+"):  # `tail +f` is the old spelling of --follow: such forms are not judged
            return f"`{arg}` is an old-style option fleet does not judge"
        if _refused(arg, rule):
            return f"`{program} {arg}` can change files, run programs or never end"
    return None


def _refused(arg: str, rule: Refuse) -> bool:
    if arg in rule.words:
        return True
    if arg.startswith("--") and len(arg) > 2:
        name = arg.split("=", 1)[0]
        return any(opt.startswith(name) for opt in rule.long)
    if arg.startswith("-") and len(arg) > 1 and not rule.words:
        return any(letter in rule.short for letter in arg[1:])
    return False


def operands(command: str) -> list[str]:
    """The paths a read-only `command` may open: each argument that is not an option, and the value of
    a `--name=value` option (`--files0-from=F`). A superset is fine: each is only looked at."""
    argv = command_argv(command)
    if isinstance(argv, str):
        return []
    out = []
    for arg in argv[1:]:
        if not arg.startswith("-"):
            out.append(arg)
        elif arg.startswith("--") and "=" in arg:
            out.append(arg.split("=", 1)[1])
    return out


def judge(policy: ApprovalPolicy | None, tool: str, command: str, *,
          program_check: ProgramCheck | None = None, path_check: ProgramCheck | None = None) -> Verdict:
    """The policy's answer to a pending approval of `tool` (`Bash`, `apply_patch`) running `command`,
    the whole command as Codex sent it (never a shortened copy).

    Pure and total: any input gets a verdict. `ask` means "leave it to a person"; the watchdog then
    escalates it after `approval_timeout`. An allow also needs `program_check` to pass for the program
    the command runs; without one (the tick, which does not see the agent's environment) a command
    the policy would allow is left to a person. Given `path_check` (the hook, which sees the command's
    cwd), a read-only command also needs it to pass for each path it may read (`operands`): a name that
    is a FIFO or a device, or a symlink to one, would block or act though the words are harmless.
    """
    if policy is None:
        return Verdict("ask", "there is no [watchdog] approve policy, so a person decides")
    otherwise = policy.otherwise
    tail = "so a person decides" if otherwise == "ask" else "so the policy denies it"
    if tool != "Bash":
        return Verdict(otherwise, f"a {tool} call is never approved by policy, {tail}")
    shown = _short(command)
    argv = command_argv(command)
    if isinstance(argv, str):
        return Verdict(otherwise, f"`{shown}` cannot be judged: {argv}; {tail}")
    if argv in policy.workspace_commands:
        why = (f"`{shown}` is listed in approve.commands_running_workspace_code (the user accepted that it runs "
               "code from the agent's workspace)")
    elif argv in policy.commands and argv[0] in NO_WORKSPACE_CODE:
        why = f"`{shown}` is listed in approve.commands"
    elif argv in policy.commands:
        return Verdict(otherwise, f"`{shown}` is listed in approve.commands, but `{argv[0]}` may run code from the "
                                  "agent's workspace or write through its paths, and is not in "
                                  f"approve.commands_running_workspace_code; {tail}")
    elif "read-only" in policy.allow:
        problem = read_only_problem(command)
        if problem is not None:
            return Verdict(otherwise, f"`{shown}` is not read-only: {problem}; {tail}")
        if path_check is not None:
            for operand in operands(command):
                if (problem := path_check(operand)) is not None:  # a FIFO would hang it, a device do anything
                    return Verdict(otherwise, f"`{shown}` is read-only, but {problem}; {tail}")
        why = f"`{shown}` is read-only"
    else:
        return Verdict(otherwise, f"`{shown}` is not listed in approve.commands, {tail}")
    if program_check is None:
        return Verdict("ask", f"{why}, but fleet could not check which `{argv[0]}` would run, so a person decides")
    outer = split_command(command)
    for program in dict.fromkeys([*(outer[:1] if isinstance(outer, tuple) else ()), argv[0]]):
        problem = program_check(program)  # a `bash -c SCRIPT` wrapper: the shell's own lookup counts too
        if problem is not None:
            return Verdict(otherwise, f"{why}, but {problem}; {tail}")
    return Verdict("allow", why)


def policy_answer(verdict: Verdict) -> tuple[Literal["allow", "deny"], str] | None:
    """The answer a verdict gives a held approval, with the sentence recorded as its reason; None for
    `ask` (a person decides). The hook and the tick both answer with it."""
    if verdict.decision == "allow":
        return "allow", f"Approved by the [watchdog] approve policy: {verdict.reason}."
    if verdict.decision == "deny":
        return "deny", f"Denied by the [watchdog] approve policy: {verdict.reason}."
    return None


def _short(command: str, limit: int = 120) -> str:
    return command if len(command) <= limit else command[: limit - 3] + "..."
