"""The fleet's private tmux server: the only module that runs tmux or imports libtmux.

One server per fleet (`tmux -L fleet-<name>`), never the user's default server. Targets are always
exact (`=name:`), so a session named `mila` can never resolve to `mila-2`. Hot read paths (listing
panes, capturing a screen) shell out once to tmux; creating sessions goes through libtmux, imported
lazily so that read-only commands start fast.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Final

from fleet.errors import EnvironmentFault, TmuxMissing

from .state import PaneFacts

#: A tmux call that takes longer than this is treated as a hung server, not waited on forever.
TMUX_TIMEOUT: Final = 10.0
#: Written to the server's config file: remain-on-exit must be on before the first command exits.
SERVER_CONF: Final = "set -g remain-on-exit on\nset -g history-limit 10000\nset -g mouse off\n"
_FIELDS: Final = (
    "#{session_name}\t#{pane_id}\t#{pane_pid}\t#{pane_dead}\t#{pane_dead_status}\t#{pane_dead_signal}\t#{window_activity}"
)


def tmux_binary() -> str:
    path = shutil.which("tmux")
    if path is None:
        raise TmuxMissing(
            "tmux is not installed or not on PATH.",
            hint="Install tmux 3.2 or newer (Debian/Ubuntu: apt-get install tmux).",
        )
    return path


class TmuxServer:
    """A handle on the fleet's tmux server; cheap to create, starts the server on first session."""

    def __init__(self, socket_name: str, config_file: Path) -> None:
        self.socket_name = socket_name
        self.config_file = config_file
        self._bin = tmux_binary()

    def _argv(self, *args: str) -> list[str]:
        return [self._bin, "-L", self.socket_name, "-f", str(self.config_file), *args]

    def run(self, *args: str, check: bool = True, input_text: str | None = None) -> str:
        """Run one tmux command on this server; stderr becomes an EnvironmentFault when `check`."""
        env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}
        try:
            proc = subprocess.run(
                self._argv(*args), capture_output=True, text=True, timeout=TMUX_TIMEOUT,
                input=input_text, env=env, check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise EnvironmentFault(
                f"tmux did not answer within {TMUX_TIMEOUT:.0f} s ({args[0]}).",
                hint=f"The fleet's tmux server may be hung: `tmux -L {self.socket_name} kill-server` resets it.",
            ) from exc
        if check and proc.returncode != 0:
            raise EnvironmentFault(
                f"tmux {args[0]} failed: {proc.stderr.strip() or 'exit ' + str(proc.returncode)}.",
                hint="Run `fleet doctor` to check the tmux setup.",
            )
        return proc.stdout

    def panes(self) -> dict[str, PaneFacts]:
        """Every session's first pane, keyed by session name; empty when the server is not running."""
        facts = self._list_panes()
        if any(p.dead and p.dead_status is None and p.dead_signal is None for p in facts.values()):
            # tmux 3.3a can miss the SIGCHLD of a killed pane and leave its process a zombie with no
            # exit facts; a short job's exit makes the server run its reaping loop again.
            self.run("run-shell", "true", check=False)
            facts = self._list_panes()
        return facts

    def _list_panes(self) -> dict[str, PaneFacts]:
        out = self.run("list-panes", "-a", "-F", _FIELDS, check=False)
        facts: dict[str, PaneFacts] = {}
        for line in out.splitlines():
            parts = line.split("\t")
            if len(parts) != 7 or parts[0] in facts:
                continue
            name, pane_id, pid, dead, status, sig, activity = parts
            facts[name] = PaneFacts(
                session=name,
                pane_id=pane_id,
                pid=int(pid) if pid.isdigit() else None,
                dead=dead == "1",
                dead_status=int(status) if status.lstrip("-").isdigit() else None,
                dead_signal=int(sig) if sig.isdigit() else None,
                activity=int(activity) if activity.isdigit() else None,
            )
        return facts

    def new_session(
        self, name: str, command: str, cwd: Path, env: dict[str, str], width: int = 200, height: int = 50
    ) -> None:
        """Start `command` (one shell string) in a new detached session named exactly `name`."""
        import libtmux

        self.config_file.parent.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(SERVER_CONF)
        server = libtmux.Server(socket_name=self.socket_name, config_file=str(self.config_file))
        # The server (if this call starts it) inherits our environment; keep the user's TMUX out of it.
        server.new_session(
            session_name=name, window_command=command, start_directory=str(cwd),
            x=width, y=height, environment=env, attach=False,
        )

    def has_session(self, name: str) -> bool:
        return name in self.panes()

    def kill_session(self, name: str) -> None:
        self.run("kill-session", "-t", f"={name}", check=False)

    def send_keys(self, name: str, *keys: str) -> None:
        """Send tmux key names (`Enter`, `Escape`, `C-c`), never literal text."""
        self.run("send-keys", "-t", f"={name}:", *keys)

    def paste(self, name: str, text: str) -> None:
        """Bracketed-paste `text` into the pane via a named buffer loaded from a private temp file.

        A file, not `set-buffer`, because tmux commands are limited to ~16 KB.
        """
        buffer = f"fleet-{uuid.uuid4().hex[:12]}"
        fd, tmp = tempfile.mkstemp(prefix="fleet-send-")
        try:
            os.write(fd, text.encode())
            os.close(fd)
            self.run("load-buffer", "-b", buffer, tmp)
            self.run("paste-buffer", "-p", "-d", "-b", buffer, "-t", f"={name}:")
        finally:
            os.unlink(tmp)

    def capture(self, name: str, lines: int | None = None) -> str:
        """The pane's text: the visible screen, or the last `lines` lines including scrollback."""
        args = ["capture-pane", "-p", "-J", "-t", f"={name}:"]
        if lines is not None:
            args[2:2] = ["-S", f"-{lines}"]
        return self.run(*args, check=False)

    def pipe_to(self, name: str, shell_command: str) -> None:
        """Copy the pane's output to `shell_command`'s stdin (tmux pipe-pane)."""
        self.run("pipe-pane", "-o", "-t", f"={name}:", shell_command)

    def attach_argv(self, name: str, read_only: bool) -> list[str]:
        argv = self._argv("attach-session", "-t", f"={name}")
        if read_only:
            argv.append("-r")
        return argv

    def kill_server_if_empty(self) -> None:
        if not self.panes():
            self.run("kill-server", check=False)
