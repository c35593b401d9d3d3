"""The `[watchdog]` table of fleet.toml: validated once, resolved into a frozen `Policy`.

```toml
[watchdog]
every = "60s"          # timer period (and the base of the crash-restart backoff)
idle_after = "10m"     # idle on an open assignment with no report this long -> ask for one
report_grace = "5m"    # after any watchdog step, wait this long before the next
stall_after = "30m"    # a turn with no progress signal at all this long counts as stalled
ladder = ["remind", "notify", "interrupt", "restart"]
lead = "mila"          # optional: escalations also go to this agent as a prompt (when it is idle)
notify_command = ["notify-send", "fleet"]   # optional: gets each escalation as JSON on stdin
max_restarts = 3
approval_timeout = "15m"
limit_retry = "1h"     # a usage limit with no reset time: try again after this long
on_limit = "wait"      # or "reassign": move a parked agent's open assignment to an agent on another account
approve = { allow = ["read-only"], commands_running_workspace_code = ["make test"], otherwise = "ask" }
```

Every key is optional; a missing table means the defaults. `POLICY_SCHEMA` is the JSON Schema fragment
the config schema embeds under `watchdog`; `parse_policy` validates against it as well, so a caller
holding only the raw table gets the same errors. Errors are `ConfigError`s naming the file (when
given) and the key path (`$.watchdog.ladder[1]`). Pure: no I/O, no clock.

The table's words are defined here too: what `allow = ["read-only"]` admits (`READ_ONLY`: the
programs and the options that take each off the list) and which programs an exact `commands` line
may name (`NO_WORKSPACE_CODE`). `fleet.watchdog.approval` judges commands against them.

Durations use the grammar and limits of `fleet/durations.py` (whole numbers with units d, h, m, s
in that order, 1 s to 30 d).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Final, Literal, NoReturn, cast

from fleet.durations import parse_duration
from fleet.errors import ConfigError, InvalidInput
from fleet.schemacheck import compile_check
from fleet.shellwords import split_command
from fleet.vocab import AGENT_NAME, AGENT_NAME_RULE

Rung = Literal["remind", "notify", "interrupt", "restart"]
#: The rungs in the order the issue gives them; `ladder` is any subset of these in any order.
RUNGS: Final[tuple[Rung, ...]] = ("remind", "notify", "interrupt", "restart")
ApprovalClass = Literal["read-only"]
#: What the watchdog does with an open assignment whose agent is parked at its usage limit.
OnLimit = Literal["wait", "reassign"]
ON_LIMIT: Final[tuple[OnLimit, ...]] = ("wait", "reassign")
Otherwise = Literal["deny", "ask"]

#: A tick every minute is frequent enough for report requests measured in minutes and cheap enough
#: to run forever.
DEFAULT_EVERY: Final = 60.0
DEFAULT_IDLE_AFTER: Final = 600.0
DEFAULT_REPORT_GRACE: Final = 300.0
DEFAULT_STALL_AFTER: Final = 1800.0
DEFAULT_MAX_RESTARTS: Final = 3
DEFAULT_APPROVAL_TIMEOUT: Final = 900.0
DEFAULT_LIMIT_RETRY: Final = 3600.0
#: More restarts than this in one crash streak is a crash loop; the policy should say stop sooner.
MAX_RESTARTS_LIMIT: Final = 100
#: Exact commands the approval policy may allow; a longer list is a sandbox setting, not a policy.
MAX_APPROVED_COMMANDS: Final = 64

#: Only the type and a length bound here: the grammar and its messages are `fleet.durations`.
_DURATION: Final[dict[str, Any]] = {"type": "string", "minLength": 1, "maxLength": 32}
_DURATION_KEYS: Final = ("every", "idle_after", "report_grace", "stall_after", "approval_timeout", "limit_retry")

_COMMAND_LINES: Final[dict[str, Any]] = {
    "type": "array",
    "items": {"type": "string", "minLength": 1, "maxLength": 1024},
    "maxItems": MAX_APPROVED_COMMANDS,
    "uniqueItems": True,
}

POLICY_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        **dict.fromkeys(_DURATION_KEYS, _DURATION),
        "ladder": {"type": "array", "items": {"enum": list(RUNGS)}, "uniqueItems": True, "maxItems": len(RUNGS)},
        "lead": {"type": "string", "pattern": AGENT_NAME},
        "notify_command": {
            "type": "array",
            "items": {"type": "string", "minLength": 1, "maxLength": 4096},
            "minItems": 1,
            "maxItems": 64,
        },
        "max_restarts": {"type": "integer", "minimum": 0, "maximum": MAX_RESTARTS_LIMIT},
        "on_limit": {"enum": list(ON_LIMIT)},
        "approve": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "allow": {"type": "array", "items": {"enum": ["read-only"]}, "uniqueItems": True},
                "commands": _COMMAND_LINES,
                "commands_running_workspace_code": _COMMAND_LINES,
                "otherwise": {"enum": ["deny", "ask"]},
            },
        },
    },
}


@dataclass(frozen=True)
class Refuse:
    """Options that take a program off the read-only list for this call."""

    long: tuple[str, ...] = ()  # refused --options; their prefixes too (getopt_long accepts abbreviations)
    short: str = ""  # refused one-letter options, alone or inside a cluster (`-fn5`)
    words: tuple[str, ...] = ()  # refused whole arguments (find's actions)


#: The read-only programs. Each must be a plain name (no path) and is looked up on the agent's PATH.
READ_ONLY: Final[dict[str, Refuse]] = {
    "basename": Refuse(),
    "cat": Refuse(),
    "cmp": Refuse(),
    "df": Refuse(),
    # -l/--paginate pipes the output through `pr`, another program.
    "diff": Refuse(long=("--paginate",), short="l"),
    "dirname": Refuse(),
    "du": Refuse(),
    "echo": Refuse(),
    "find": Refuse(words=("-exec", "-execdir", "-ok", "-okdir", "-delete", "-fprint", "-fprint0",
                           "-fprintf", "-fls")),
    # -D read/--devices=read reads the FIFOs and devices a recursive search meets (it skips them by default).
    "grep": Refuse(long=("--devices",), short="D"),
    "head": Refuse(),
    "id": Refuse(),
    "ls": Refuse(),
    "pwd": Refuse(),
    "realpath": Refuse(),
    # --pre and --hostname-bin run programs; -z/--search-zip runs decompressors found on PATH.
    "rg": Refuse(long=("--pre", "--pre-glob", "--hostname-bin", "--search-zip"), short="z"),
    "stat": Refuse(),
    # --follow/-f/-F never end, holding the turn (and the approval) forever.
    "tail": Refuse(long=("--follow", "--retry"), short="fF"),
    "uname": Refuse(),
    "wc": Refuse(),
    "which": Refuse(),
    "whoami": Refuse(),
}
#: Programs an exact `commands` entry may name without `commands_running_workspace_code`: they read no
#: code or configuration from the directory they run in, and write nothing. Everything else may run
#: what the agent wrote (make, pytest, npm, cargo, python, tox, git, `./x.sh`, ...; fleet cannot list
#: every program that does) or write through paths the agent controls (`cp`, `mv`, `rm`, `mkdir`,
#: `touch`, `ln`, `chmod`: a symlink it planted sends the write anywhere, and a check before the
#: command runs races with the agent's own processes), so only these are trusted without the user
#: saying so.
NO_WORKSPACE_CODE: Final = frozenset(READ_ONLY)


@dataclass(frozen=True)
class ApprovalPolicy:
    """What the watchdog (and fleet's PermissionRequest hook) may answer without a person.

    `allow` names command classes (only `read-only`: `READ_ONLY`, judged by `fleet.watchdog.approval`);
    `commands` are exact command lines (compared as argv after the shell's splitting, never as
    prefixes) of programs that run no code from the agent's workspace; `workspace_commands`
    (`commands_running_workspace_code` in fleet.toml) are exact command lines the user accepts even
    though they run what the agent may have written (its Makefile, conftest.py, package.json);
    anything else gets `otherwise`: `ask` leaves it to a person (and the watchdog escalates it after
    `approval_timeout`), `deny` rejects it at once. Patches are never allowed by policy.
    """

    allow: frozenset[ApprovalClass] = frozenset()
    commands: tuple[tuple[str, ...], ...] = ()
    otherwise: Otherwise = "ask"
    workspace_commands: tuple[tuple[str, ...], ...] = ()


@dataclass(frozen=True)
class Policy:
    """The watchdog's settings, all durations in seconds. Build with `parse_policy`; `Policy()` is
    the defaults."""

    every: float = DEFAULT_EVERY
    idle_after: float = DEFAULT_IDLE_AFTER
    report_grace: float = DEFAULT_REPORT_GRACE
    stall_after: float = DEFAULT_STALL_AFTER
    ladder: tuple[Rung, ...] = RUNGS
    lead: str | None = None
    notify_command: tuple[str, ...] = ()
    max_restarts: int = DEFAULT_MAX_RESTARTS
    approval_timeout: float = DEFAULT_APPROVAL_TIMEOUT
    limit_retry: float = DEFAULT_LIMIT_RETRY
    approve: ApprovalPolicy | None = field(default=None)
    #: `wait` resumes a parked agent after its reset; `reassign` moves its open assignment to an idle
    #: agent on another account with headroom (`fleet.work.failover`), and waits when there is none.
    on_limit: OnLimit = "wait"


@cache
def _validator() -> Any:
    from jsonschema import Draft202012Validator  # noqa: PLC0415 (heavy: only to judge or explain what the fast check refused)

    Draft202012Validator.check_schema(POLICY_SCHEMA)
    return Draft202012Validator(POLICY_SCHEMA)


@cache
def _precheck() -> Any:
    """A valid table passes this without importing jsonschema (see `fleet.schemacheck`)."""
    return compile_check(POLICY_SCHEMA)


def _errors(raw: Mapping[str, Any]) -> list[Any]:
    from jsonschema.exceptions import relevance  # noqa: PLC0415 (heavy: only to judge or explain what the fast check refused)

    return sorted(_validator().iter_errors(dict(raw)), key=relevance, reverse=True)


def parse_policy(
    table: Mapping[str, Any] | None,
    *,
    source: str = "fleet.toml",
    agents: Collection[str] | None = None,
    where: str = "$.watchdog",
) -> Policy:
    """Validate the raw `[watchdog]` table (parsed TOML; None when absent) and resolve it.

    `agents`, when given, are the configured agent names: `lead` must be one of them. Raises
    `ConfigError` with `path` (the `source`) and `key` (the JSON path) in its data.
    """
    raw: Mapping[str, Any] = table if table is not None else {}
    if not isinstance(raw, Mapping):
        _fail(source, where, "must be a table")
    errors = [] if _precheck()(dict(raw)) else _errors(raw)
    if errors:
        err = errors[0]
        key = where + err.json_path[1:]
        leaf = err.path[-1] if err.path else None
        if err.validator == "additionalProperties":
            message = f"unknown key ({err.message})"
        elif leaf in _DURATION_KEYS and err.validator == "type":
            message = f"{err.instance!r} is not a duration: write a string with a unit, like \"60s\" or \"10m\""
        elif err.validator == "pattern" and leaf == "lead":
            message = f"{err.instance!r} is not an agent name ({AGENT_NAME_RULE})"
        elif leaf == "on_limit":
            message = f"{err.instance!r} is not one of {', '.join(repr(v) for v in ON_LIMIT)}"
        elif err.validator == "uniqueItems":
            message = f"lists a value twice ({err.instance!r})"
        else:
            message = err.message
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        _fail(source, key, message + more)
    durations = {key: _duration(raw[key], source, f"{where}.{key}") for key in _DURATION_KEYS if key in raw}
    lead = raw.get("lead")
    if lead is not None and agents is not None and lead not in agents:
        known = ", ".join(sorted(agents)) or "none"
        _fail(source, f"{where}.lead", f"{lead!r} is not a configured agent (configured: {known})")
    approve = _approval(raw["approve"], source, f"{where}.approve") if "approve" in raw else None
    return Policy(
        **durations,
        ladder=tuple(cast(list[Rung], raw.get("ladder", list(RUNGS)))),
        lead=lead,
        notify_command=tuple(raw.get("notify_command", ())),
        max_restarts=int(raw.get("max_restarts", DEFAULT_MAX_RESTARTS)),
        approve=approve,
        on_limit=cast(OnLimit, raw.get("on_limit", "wait")),
    )


def _approval(tbl: Mapping[str, Any], source: str, where: str) -> ApprovalPolicy:
    lists: dict[str, list[tuple[str, ...]]] = {}
    for name in ("commands", "commands_running_workspace_code"):
        lists[name] = []
        for i, line in enumerate(tbl.get(name, ())):
            key = f"{where}.{name}[{i}]"
            if not line.strip(" "):
                _fail(source, key, "is blank")
            argv = split_command(line)
            if isinstance(argv, str):
                _fail(source, key, f"{line!r} is not one plain command: {argv}; list one program and its "
                                   "arguments (plain words or simple quotes)")
            if name == "commands" and argv[0] not in NO_WORKSPACE_CODE:
                _fail(source, key, f"`{argv[0]}` may run code or read configuration from the agent's working "
                                   f"directory (its Makefile, conftest.py, package.json, scripts) or write through "
                                   f"paths the agent controls (a symlink it planted sends a cp or rm anywhere), so "
                                   f"approving {line!r} lets the agent's files steer it outside its sandbox; if you "
                                   "accept that, list it under commands_running_workspace_code instead")
            lists[name].append(argv)
    return ApprovalPolicy(
        allow=frozenset(cast(list[ApprovalClass], tbl.get("allow", []))),
        commands=tuple(lists["commands"]),
        otherwise=cast(Otherwise, tbl.get("otherwise", "ask")),
        workspace_commands=tuple(lists["commands_running_workspace_code"]),
    )


def _duration(text: str, source: str, key: str) -> float:
    """`fleet.durations`' grammar and limits, with its reason in a config error naming `key`."""
    try:
        return parse_duration(text, what=key)
    except InvalidInput as exc:
        _fail(source, key, f"{text!r} is not a valid duration: {exc.data.get('why', exc.message)}")


def _fail(source: str, key: str, message: str) -> NoReturn:
    raise ConfigError(
        f"{source}: {key}: {message}.",
        hint="See the [watchdog] reference in the README.",
        path=source,
        key=key,
    )
