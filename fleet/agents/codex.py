"""Everything fleet knows about Codex's flags, files and binaries (Codex CLI 0.169 to 0.171, see
`codexversion`; a fact noted "0.169" was measured on that release, and the suite checks it on both).

fleet never edits a Codex config file. What the supervisor needs in an agent's Codex goes in as `-c`
overrides on the command line: trust for exactly the agent's cwd (`project_trust`), the `notify`
program, the hooks that feed the agent's journal, trust for exactly those hooks, and no model-switch
nudge. Codex keeps hooks per
config layer, so the user's own hooks (in `$CODEX_HOME/hooks.json` or `config.toml`) stay in their
layer with their own trust: fleet grants nothing to them, and Codex asks for their review as usual.
The user's own `notify`, which our override replaces, is chained.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shlex
import shutil
import stat
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final, cast

from fleet.config import AgentSpec, Sandbox
from fleet.errors import CodexMissing
from fleet.vocab import STORE_SECRET_ENV

from .codexversion import PINNED
from .rollout import RolloutFacts, facts

#: Hook events wired to the journal; each becomes a `-c hooks.<Event>=[...]` override.
HOOK_EVENTS: Final = ("SessionStart", "UserPromptSubmit", "Stop", "PreToolUse", "PostToolUse", "PermissionRequest")
#: Hooks must answer fast; Codex waits for them before the turn goes on.
HOOK_TIMEOUT: Final = 10
#: Where Codex 0.169 files hooks given as `-c` overrides, in their trust keys
#: (`<source>:<snake_case event>:<group>:<handler>`), as its "Trust all" writes them.
SESSION_FLAGS_SOURCE: Final = "/<session-flags>/config.toml"
#: Events whose hooks take a `matcher`, which then enters the trust hash.
_MATCHER_EVENTS: Final = frozenset({"PreToolUse", "PermissionRequest", "PostToolUse", "SessionStart",
                                    "SubagentStart", "SubagentStop"})
#: Events whose handlers time out after 1 s by default instead of 600 s.
_SHORT_EVENTS: Final = frozenset({"SessionEnd", "Interrupt"})
#: How much of a rollout's end `read_rollout` reads: a turn's end record is the last thing written.
ROLLOUT_TAIL: Final = 256 * 1024
#: The PermissionRequest hook holds the call for `approval_timeout` (fleet.hooks.hold); Codex's
#: own timeout for it is this much longer, so the hook records that it let go before Codex kills it.
APPROVAL_MARGIN: Final = 5
#: Without a [watchdog] approval_timeout, the hook holds an approval this long (the policy default).
DEFAULT_APPROVAL_HOLD: Final = 900.0
#: What tmux puts in a pane's environment to say which server and pane it runs in: never an agent's.
SERVER_ENV: Final = ("TMUX", "TMUX_PANE")
#: The footer's status line: the model and the cwd, as Codex 0.169 draws it by default. From 0.171 the
#: default adds the thread's title, taken from the first prompt, and keeps it on screen for the whole
#: session: prompt text (a lead's task) would then be read as a dialog (`screen`). Both releases know
#: these item ids (`tui.status_line`).
STATUS_LINE: Final = ("model-with-reasoning", "current-dir")
#: Raw terminal log bound per file (one rotation kept: at most twice this on disk).
RAWLOG_MAX: Final = 4 * 1024 * 1024
_NATIVE: Final = {
    "x86_64": ("codex-linux-x64", "x86_64-unknown-linux-musl"),
    "aarch64": ("codex-linux-arm64", "aarch64-unknown-linux-musl"),
}
_HERE: Final = Path(__file__).resolve().parent
#: The hook and notify receiver Codex runs (`fleet.hooks.receiver`): named by path, never imported.
RECEIVER: Final = _HERE.parent / "hooks" / "receiver.py"


def resolve_binary(codex: str) -> Path:
    """The native Codex binary for a configured command or path.

    The npm package's `bin/codex` is a Node launcher that stays alive next to every Codex (+44 MB);
    when it is what we find, launch the platform binary it would have started instead.
    """
    found = shutil.which(codex) if os.sep not in codex else (codex if os.access(codex, os.X_OK) else None)
    if not found:
        raise CodexMissing(
            f"The Codex CLI ({codex!r}) was not found or is not executable.",
            hint=f"Install it (`npm install -g @openai/codex@{PINNED}`) "
            "or set `codex = \"/path/to/codex\"` in fleet.toml.",
        )
    real = Path(found).resolve()
    if real.suffix != ".js":
        return real
    names = _NATIVE.get(platform.machine())
    if names:
        pkg, triple = names
        root = real.parent.parent  # .../@openai/codex
        for base in (root / "node_modules" / "@openai", root.parent):
            candidate = base / pkg / "vendor" / triple / "bin" / "codex"
            if os.access(candidate, os.X_OK):
                return candidate
    return real


def _toml(value: Any) -> str:
    """A TOML inline value for `-c key=value` (JSON arrays/numbers/booleans are valid TOML here)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_str(str(k))} = {_toml(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return _toml_str(value) if isinstance(value, str) else json.dumps(value)


def _toml_str(text: str) -> str:
    """A TOML basic string. Not `json.dumps`: its surrogate-pair escapes of characters beyond U+FFFF
    are invalid TOML, and it leaves DEL raw, which TOML forbids."""
    out = []
    for ch in text:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F or 0xD800 <= ord(ch) <= 0xDFFF:
            out.append(f"\\u{ord(ch) if not 0xD800 <= ord(ch) <= 0xDFFF else 0xFFFD:04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def user_config(home: Path) -> dict[str, Any]:
    """The home's parsed `config.toml`; empty when missing or unreadable (fleet never writes it)."""
    try:
        return tomllib.loads((home / "config.toml").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return {}


def receiver_argv(mode: str, agent_dir: Path, home: Path | None = None) -> list[str]:
    """The receiver's command line; a hook's names the agent's Codex home, whose `sessions/` is the
    only place it reads a rollout from (whatever path a payload names)."""
    return [sys.executable, "-S", str(RECEIVER), mode, str(agent_dir), *(["--home", str(home)] if home else [])]


def own_rollout(home: Path, transcript: str) -> bool:
    """Whether `transcript` lies under the Codex home's `sessions/` (symlinks resolved): the only
    rollouts fleet reads for that agent."""
    return "\0" not in transcript and os.path.realpath(transcript).startswith(
        os.path.join(os.path.realpath(home), "sessions") + os.sep)


def snake_event(event: str) -> str:
    """`UserPromptSubmit` -> `user_prompt_submit`, as Codex names events in trust keys and hashes."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", event).lower()


def hook_trust_hash(event: str, handler: dict[str, Any], matcher: str | None = None) -> str:
    """The `trusted_hash` Codex 0.169 expects for one command handler: sha256 of the compact,
    key-sorted JSON of the event, the matcher (where the event takes one) and the normalized
    handler (timeout defaulted, at least 1 s; `async` false unless set)."""
    timeout = handler.get("timeout", 1 if event in _SHORT_EVENTS else 600)
    entry: dict[str, Any] = {"type": "command", "command": handler["command"], "timeout": max(1, int(timeout)),
                             "async": bool(handler.get("async", False))}
    if handler.get("statusMessage") is not None:
        entry["statusMessage"] = handler["statusMessage"]
    obj: dict[str, Any] = {"event_name": snake_event(event), "hooks": [entry]}
    if matcher is not None and event in _MATCHER_EVENTS:
        obj["matcher"] = matcher
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    import hashlib  # noqa: PLC0415 (~5 ms, needed only when launching)

    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _table(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def untrusted_hooks(home: Path) -> list[str]:
    """Trust keys of the command hooks configured in a Codex home (`hooks.json`, inline `[hooks]` in
    `config.toml`) that its `[hooks.state]` does not trust with a matching hash: the handlers Codex
    0.169 would hold for review at start. Hooks elsewhere (a repository's `.codex/`) are Codex's
    to ask about; an unreadable file counts as having none."""
    user = user_config(home)
    hooks: dict[str, Any] = _table(user.get("hooks"))
    state = _table(hooks.get("state"))
    try:
        raw = json.loads((home / "hooks.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        raw = None
    from_json = _table(raw.get("hooks")) if isinstance(raw, dict) else {}
    inline = {k: v for k, v in hooks.items() if k != "state"}
    out = []
    for source, events in ((home / "hooks.json", from_json), (home / "config.toml", inline)):
        for event, groups in events.items():
            for i, group in enumerate(groups if isinstance(groups, list) else []):
                handlers = group.get("hooks") if isinstance(group, dict) else None
                for j, handler in enumerate(handlers if isinstance(handlers, list) else []):
                    key = f"{source}:{snake_event(str(event))}:{i}:{j}"
                    entry = state.get(key)
                    granted = entry.get("trusted_hash") if isinstance(entry, dict) else None
                    if not isinstance(handler, dict) or handler.get("type") != "command" or "command" not in handler:
                        trusted = granted is not None  # not a shape whose hash fleet knows: Codex decides
                    else:
                        trusted = granted == hook_trust_hash(str(event), handler, group.get("matcher"))
                    if not trusted:
                        out.append(key)
    return out


def git_root(cwd: Path) -> Path | None:
    """The nearest directory at or above `cwd` holding `.git` (a directory, or a worktree's file)."""
    for directory in (cwd, *cwd.parents):
        if os.path.lexists(directory / ".git"):
            return directory
    return None


def project_trust(spec: AgentSpec, user: dict[str, Any] | None = None) -> str | None:
    """The `-c` override that trusts exactly the agent's cwd, or None when the user's own Codex config
    marks the cwd or its git root untrusted (fleet never overturns that; Codex then shows its
    "Open restricted" dialog, which fleet does not answer).

    Codex 0.169 asks "Trust this folder?" for a git repository or a folder with `.codex/`, and keys
    trust by path: an entry for the cwd itself is enough, also in a git subdirectory (measured; its
    own "Trust and continue" writes the repository root instead, which fleet does not). The key must
    be one inline table: Codex splits a `-c` key on every dot, so `projects."/a/b".trust_level=` names
    a key with quotes in it and trusts nothing. An inline table merges with the home's `[projects]`.
    """
    user = user_config(spec.home) if user is None else user
    entries = _table(user.get("projects"))
    cwd = spec.cwd.absolute()
    # a repo agent's cwd is its worktree: the user's mark on the repository counts as well
    keys = dict.fromkeys(str(p) for p in (cwd, spec.cwd.resolve(), git_root(cwd), spec.repo) if p is not None)
    if any(_table(entries.get(k)).get("trust_level") == "untrusted" for k in keys):
        return None
    cwds = dict.fromkeys(str(p) for p in (cwd, spec.cwd.resolve()))  # a symlinked cwd: both names
    return "projects=" + _toml({path: {"trust_level": "trusted"} for path in cwds})


def launch_argv(spec: AgentSpec, agent_dir: Path, extra: Sequence[str] = (), *, resume: str | None = None,
                approval_hold: float = DEFAULT_APPROVAL_HOLD) -> list[str]:
    """The full argv that starts this agent's interactive Codex TUI with fleet's signal wiring.

    `extra`: more `-c` values (e.g. a lead's MCP server, `fleet.agents.lead`), after fleet's own
    and before the agent's `args`, so the user's arguments still have the last word. With `resume`
    (a session id), `codex resume <id>` of that session, its history kept. `approval_hold`: how long
    fleet's PermissionRequest hook holds an approval for an answer."""
    user = user_config(spec.home)
    notify = receiver_argv("notify", agent_dir)
    user_notify = user.get("notify")
    if isinstance(user_notify, list) and user_notify and all(isinstance(a, str) for a in user_notify):
        notify += ["--chain", *user_notify]
    trust = project_trust(spec, user)
    overrides = [
        *([trust] if trust else []),
        f"notify={_toml(notify)}",
        "notice.hide_rate_limit_model_nudge=true",  # a modal "switch model?" would hide the composer
        f"tui.status_line={_toml(list(STATUS_LINE))}",
    ]
    hook_cmd = shlex.join(receiver_argv("hook", agent_dir, spec.home))
    hook_trust: dict[str, Any] = {}
    hold = max(1, round(approval_hold))
    for event in HOOK_EVENTS:
        handler = {"type": "command", "command": hook_cmd, "timeout": HOOK_TIMEOUT}
        if event == "PermissionRequest":
            handler = {"type": "command", "command": f"{hook_cmd} --hold {hold}", "timeout": hold + APPROVAL_MARGIN}
        overrides.append(f"hooks.{event}={_toml([{'hooks': [handler]}])}")
        key = f"{SESSION_FLAGS_SOURCE}:{snake_event(event)}:0:0"
        hook_trust[key] = {"trusted_hash": hook_trust_hash(event, handler)}
    # One inline table: Codex reads a dotted `-c hooks.state."<key>".trusted_hash=` wrongly (the key
    # holds dots), and this form merges with the home's own `[hooks.state]` (measured on 0.169).
    overrides.append(f"hooks.state={_toml(hook_trust)}")
    argv = [str(resolve_binary(spec.codex)), *(["resume"] if resume else []), "--no-daemon", "-C", str(spec.cwd),
            "-s", spec.sandbox]
    if spec.model:
        argv += ["-m", spec.model]
    for item in [*overrides, *extra]:
        argv += ["-c", item]
    return [*argv, *spec.args, *([resume] if resume else [])]


def launch_command(spec: AgentSpec, agent_dir: Path, extra: Sequence[str] = (), *, resume: str | None = None,
                   approval_hold: float = DEFAULT_APPROVAL_HOLD) -> str:
    """One shell string for tmux: `exec` so the pane's pid is Codex itself. tmux gives every pane
    `TMUX` and `TMUX_PANE` (the server's socket and the pane); `env -u` drops them, so neither Codex
    nor any command it runs is told where the fleet's server is (`SERVER_ENV`). It drops the shared
    store's credentials too (`STORE_SECRET_ENV`, inherited from whoever started the tmux server), except
    for a lead, whose fleet server needs them and whose shell commands do not get them
    (`fleet.agents.lead`). What `[agents.x] env` names explicitly is set after the drops."""
    dropped = SERVER_ENV if spec.role == "lead" else (*SERVER_ENV, *STORE_SECRET_ENV)
    env = {"CODEX_HOME": str(spec.home), **{k: v for k, v in spec.env.items() if k not in SERVER_ENV}}
    assigns = [f"{k}={v}" for k, v in env.items()]
    unset = [arg for var in dropped for arg in ("-u", var)]
    return "exec env " + shlex.join([*unset, *assigns, *launch_argv(spec, agent_dir, extra, resume=resume,
                                                            approval_hold=approval_hold)])


def rawlog_command(path: Path) -> str:
    return shlex.join([sys.executable, "-S", str(_HERE / "rawlog.py"), str(path), str(RAWLOG_MAX)])


_ROLLOUT_MARKERS: Final = (b'"task_complete"', b'"turn_aborted"', b'"token_count"', b'"token_usage_record"',
                            b'"task_started"')
_rollout_memo: dict[str, tuple[tuple[int, int, int], RolloutFacts]] = {}


def read_rollout(transcript: Path, max_bytes: int = ROLLOUT_TAIL) -> RolloutFacts:
    """Turn ends and the latest rate limits from the end of a rollout file.

    Cheap on purpose (it runs on every status while a turn is open): only the last `max_bytes` are
    read, only lines naming one of the three record types are parsed, and an unchanged file (same
    inode, size and mtime) is answered from memory. A missing or unreadable file has no facts.
    """
    try:
        fd = os.open(transcript, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return RolloutFacts(ends={}, rate_limits=None)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # a FIFO would block every status
            return RolloutFacts(ends={}, rate_limits=None)
        key = str(transcript)
        sig = (st.st_ino, st.st_size, st.st_mtime_ns)
        memo = _rollout_memo.get(key)
        if memo is not None and memo[0] == sig:
            return memo[1]
        start = max(0, st.st_size - max_bytes)
        raw = os.pread(fd, st.st_size - start, start)
    finally:
        os.close(fd)
    lines = raw.split(b"\n")[1 if start else 0:]
    records = []
    for line in lines:
        if any(m in line for m in _ROLLOUT_MARKERS):
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict):
                records.append(rec)
    found = facts(records)
    if len(_rollout_memo) > 256:
        _rollout_memo.clear()
    _rollout_memo[key] = (sig, found)
    return found


#: Flags that turn Codex's sandbox off whatever `-s` says.
BYPASS_FLAGS: Final = frozenset({"--dangerously-bypass-approvals-and-sandbox", "--yolo"})
#: The sandbox modes `-s`/`--sandbox` takes.
SANDBOX_MODES: Final = ("read-only", "workspace-write", "danger-full-access")
#: Options of the agent's `args` that `codex sandbox` takes too, and that shape its sandbox or its
#: shell environment (network access, writable roots, `shell_environment_policy`, profiles).
_SANDBOX_OPTIONS: Final = frozenset({"-c", "--config", "--enable", "--disable", "-p", "--profile"})


def effective_sandbox(spec: AgentSpec) -> Sandbox:
    """The sandbox mode this agent's Codex really runs under: `danger-full-access` when its `args`
    bypass the sandbox, else the last `-s`/`--sandbox` in its `args` (Codex takes the flag over any
    config), else its configured `sandbox`."""
    if any(a in BYPASS_FLAGS for a in spec.args):
        return "danger-full-access"
    flags = flag_values(spec.args, "--sandbox", "-s")
    return cast(Sandbox, flags[-1]) if flags and flags[-1] in SANDBOX_MODES else spec.sandbox


def flag_values(args: Sequence[str], long: str, short: str | None = None) -> list[str]:
    """Every value given to a flag: `--flag V`, `--flag=V`, `-s V`, `-sV`."""
    out: list[str] = []
    it = iter(range(len(args)))
    for i in it:
        arg = args[i]
        if arg == "--":
            break
        if arg == long or (short is not None and arg == short):
            if i + 1 < len(args):
                out.append(args[i + 1])
                next(it, None)
        elif arg.startswith(long + "="):
            out.append(arg[len(long) + 1:])
        elif short is not None and arg.startswith(short) and not arg.startswith("--") and len(arg) > len(short):
            out.append(arg[len(short):].removeprefix("="))
    return out




def sandbox_argv(spec: AgentSpec, mode: str | None = None) -> list[str]:
    """`codex sandbox [OPTIONS] --`: the prefix that runs a command under this agent's own Codex
    sandbox (Codex 0.169; `codex sandbox` takes no mode flag, so the mode goes in as the last `-c`,
    which wins over the home's config and the agent's own `-c` values). The agent's `-c`,
    `--enable`/`--disable` and `--profile` arguments are passed on, each as one `--name=value`
    token (a value can never end the options early), so network access and writable roots are the
    agent's. The process must run in the agent's cwd (its writable root) with `CODEX_HOME` set to
    the agent's home. `mode` replaces the agent's effective mode (a stricter one, say). Raises
    `CodexMissing` when there is no Codex binary."""
    long = {"-c": "--config", "-p": "--profile"}
    argv = [str(resolve_binary(spec.codex)), "sandbox"]
    args = list(spec.args)
    i = 0
    while i < len(args):
        arg = args[i]
        name, eq, _ = arg.partition("=")
        if arg in _SANDBOX_OPTIONS and i + 1 < len(args):
            argv.append(f"{long.get(arg, arg)}={args[i + 1]}")
            i += 2
            continue
        if eq and name.startswith("--") and name in _SANDBOX_OPTIONS:
            argv.append(arg)
        elif arg.startswith(("-c", "-p")) and len(arg) > 2 and not arg.startswith("--"):
            argv.append(f"{long[arg[:2]]}={arg[2:]}")
        i += 1
    return [*argv, f"--config=sandbox_mode={json.dumps(mode or effective_sandbox(spec))}", "--"]
