"""Everything fleet knows about Codex's flags, files and binaries (Codex CLI 0.169).

fleet never edits a Codex config file. What the supervisor needs in an agent's Codex goes in as `-c`
overrides on the command line: trust for the agent's cwd, the `notify` program and the hooks that
feed the agent's journal. Where such an override would shadow the user's own `notify` or inline
`[hooks]` from `$CODEX_HOME/config.toml`, those are carried along (the user's notify is chained, the
user's hooks run before ours), so the user's setup keeps working inside the fleet.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import shutil
import sys
import tomllib
from pathlib import Path
from typing import Any, Final

from fleet.config import AgentSpec
from fleet.errors import CodexMissing

#: Hook events wired to the journal; each becomes a `-c hooks.<Event>=[...]` override.
HOOK_EVENTS: Final = ("SessionStart", "UserPromptSubmit", "Stop", "PreToolUse", "PostToolUse")
#: Hooks must answer fast; Codex waits for them before the turn goes on.
HOOK_TIMEOUT: Final = 10
#: Raw terminal log bound per file (one rotation kept: at most twice this on disk).
RAWLOG_MAX: Final = 4 * 1024 * 1024
_NATIVE: Final = {
    "x86_64": ("codex-linux-x64", "x86_64-unknown-linux-musl"),
    "aarch64": ("codex-linux-arm64", "aarch64-unknown-linux-musl"),
}
_HERE: Final = Path(__file__).resolve().parent


def resolve_binary(codex: str) -> Path:
    """The native Codex binary for a configured command or path.

    The npm package's `bin/codex` is a Node launcher that stays alive next to every Codex (+44 MB);
    when it is what we find, launch the platform binary it would have started instead.
    """
    found = shutil.which(codex) if os.sep not in codex else (codex if os.access(codex, os.X_OK) else None)
    if not found:
        raise CodexMissing(
            f"The Codex CLI ({codex!r}) was not found or is not executable.",
            hint="Install it (`npm install -g @openai/codex@0.169.0`) "
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
    """A TOML inline value for `-c key=value` (JSON strings/arrays/numbers are valid TOML here)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(value)


def _user_config(home: Path) -> dict[str, Any]:
    try:
        return tomllib.loads((home / "config.toml").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return {}


def receiver_argv(mode: str, agent_dir: Path) -> list[str]:
    return [sys.executable, "-S", str(_HERE / "hookrecv.py"), mode, str(agent_dir)]


def launch_argv(spec: AgentSpec, agent_dir: Path) -> list[str]:
    """The full argv that starts this agent's interactive Codex TUI with fleet's signal wiring."""
    user = _user_config(spec.home)
    notify = receiver_argv("notify", agent_dir)
    user_notify = user.get("notify")
    if isinstance(user_notify, list) and user_notify and all(isinstance(a, str) for a in user_notify):
        notify += ["--chain", *user_notify]
    overrides = [
        f"projects.{json.dumps(str(spec.cwd))}.trust_level=\"trusted\"",
        f"notify={_toml(notify)}",
    ]
    user_hooks = user.get("hooks") if isinstance(user.get("hooks"), dict) else {}
    hook_cmd = shlex.join(receiver_argv("hook", agent_dir))
    for event in HOOK_EVENTS:
        ours = {"hooks": [{"type": "command", "command": hook_cmd, "timeout": HOOK_TIMEOUT}]}
        theirs = user_hooks.get(event) if isinstance(user_hooks, dict) else None
        groups = [*theirs, ours] if isinstance(theirs, list) else [ours]
        overrides.append(f"hooks.{event}={_toml(groups)}")
    argv = [str(resolve_binary(spec.codex)), "--no-daemon", "--dangerously-bypass-hook-trust",
            "-C", str(spec.cwd), "-s", spec.sandbox]
    if spec.model:
        argv += ["-m", spec.model]
    for item in overrides:
        argv += ["-c", item]
    return [*argv, *spec.args]


def launch_command(spec: AgentSpec, agent_dir: Path) -> str:
    """One shell string for tmux: `exec` so the pane's pid is Codex itself."""
    env = {"CODEX_HOME": str(spec.home), **spec.env}
    assigns = [f"{k}={v}" for k, v in env.items()]
    return "exec env " + shlex.join([*assigns, *launch_argv(spec, agent_dir)])


def rawlog_command(path: Path) -> str:
    return shlex.join([sys.executable, "-S", str(_HERE / "rawlog.py"), str(path), str(RAWLOG_MAX)])


def find_aborted_turns(transcript: Path, max_bytes: int = 256 * 1024) -> set[str]:
    """Turn ids that Codex's rollout file records as aborted (interrupted), from its tail."""
    from fleet.fsutil import read_jsonl_tail

    aborted = set()
    for rec in read_jsonl_tail(transcript, max_bytes):
        payload = rec.get("payload")
        if rec.get("type") == "event_msg" and isinstance(payload, dict) and payload.get("type") == "turn_aborted":
            aborted.add(str(payload.get("turn_id")))
    return aborted
