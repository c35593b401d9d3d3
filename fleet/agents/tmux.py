"""The fleet's private tmux server: the only module that runs tmux or imports libtmux.

One server per fleet (named `fleet-<name>-<hash>`: `fleet.config.tmux_socket`), never the user's
default server, on a socket in fleet's private state dir unless `$TMUX_TMPDIR` says otherwise
(`socket_path`). Targets are always exact (`=name:`), so a session named `mila` can never resolve to
`mila-2`. Hot read paths (listing panes, capturing a screen) shell out once to tmux; creating
sessions goes through libtmux, imported lazily so that read-only commands start fast. The server
exits by itself when its last session ends.

Failures are typed here, once: no server running is "no sessions"; a session that vanished is
`agent_not_running`; anything else (hung server, unusable socket, libtmux errors) is
`tmux_unavailable`, so a broken tmux never reads as "every agent stopped".
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Final

from fleet.errors import AgentBusy, AgentNotRunning, TmuxMissing, TmuxUnavailable
from fleet.fsutil import FILE_MODE, make_private_dirs, write_atomic

from .state import PaneFacts

#: Unix socket paths are limited to 108 bytes (`sun_path`); a few are kept for tmux's own use.
MAX_SOCKET_PATH: Final = 100
#: A tmux call that takes longer than this is treated as a hung server, not waited on forever.
TMUX_TIMEOUT: Final = 10.0
#: Written to the server's config file: remain-on-exit must be on before the first command exits.
#: `set-clipboard off`: an agent's output (OSC 52) never reaches the clipboard of a person attached;
#: passthrough (`allow-passthrough`) is off by default in tmux 3.3 and stays so.
SERVER_CONF: Final = ("set -g remain-on-exit on\nset -g history-limit 10000\nset -g mouse off\n"
                      "set -s set-clipboard off\n")
#: What tmux says when there is no server to talk to (none started, or it just exited).
_NO_SERVER: Final = ("no server running on", "server exited unexpectedly", "lost server")
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


def socket_path(socket_name: str, state_dir: Path) -> Path:
    """Where the fleet's tmux server listens.

    With `$TMUX_TMPDIR` set: `$TMUX_TMPDIR/tmux-<uid>/<socket_name>`, exactly where `tmux -L
    <socket_name>` looks, so plain tmux commands find it. Otherwise `<state_dir>/tmux.sock`, in fleet's
    private (0700) state dir rather than tmux's default `/tmp/tmux-<uid>/`: every workspace-write
    agent can write `/tmp`, and so could delete or replace the socket there. A path too long for a
    unix socket raises `tmux_unavailable` with a hint.
    """
    base = os.environ.get("TMUX_TMPDIR")
    path = Path(base) / f"tmux-{os.getuid()}" / socket_name if base else state_dir / "tmux.sock"
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:
        raise TmuxUnavailable(
            f"The fleet's tmux socket path {path} is longer than a unix socket allows ({MAX_SOCKET_PATH} bytes).",
            hint="Set TMUX_TMPDIR to a short private directory outside every agent's writable roots "
            "(e.g. $XDG_RUNTIME_DIR), or use a shorter state_dir.",
        )
    return path


class TmuxServer:
    """A handle on the fleet's tmux server; cheap to create, starts the server on first session.
    `socket` is the server's socket path (`socket_path`); without it, tmux's own `-L` location."""

    def __init__(self, socket_name: str, config_file: Path, socket: Path | None = None) -> None:
        self.socket_name = socket_name
        self.config_file = config_file
        self.socket = socket
        self._bin = tmux_binary()

    @property
    def where(self) -> str:
        """How a person names this server on a tmux command line (`-S PATH` or `-L NAME`)."""
        return f"-S {self.socket}" if self.socket is not None else f"-L {self.socket_name}"

    def _argv(self, *args: str) -> list[str]:
        server = ["-S", str(self.socket)] if self.socket is not None else ["-L", self.socket_name]
        return [self._bin, *server, "-f", str(self.config_file), *args]

    def _exec(self, *args: str, input_text: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}
        try:
            return subprocess.run(
                self._argv(*args), capture_output=True, text=True, timeout=TMUX_TIMEOUT,
                input=input_text, env=env, check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise TmuxUnavailable(
                f"tmux did not answer within {TMUX_TIMEOUT:.0f} s ({args[0]}).",
                hint=f"The fleet's tmux server may be hung: `tmux {self.where} kill-server` resets it "
                "(and ends every agent).",
            ) from exc
        except OSError as exc:
            raise TmuxUnavailable(f"tmux could not be run: {exc.strerror or exc}.",
                                  hint="Run `fleet doctor` to check the tmux setup.") from exc

    def _failed(self, args: tuple[str, ...], proc: subprocess.CompletedProcess[str]) -> Exception:
        err = proc.stderr.strip() or f"exit status {proc.returncode}"
        target = next((a[1:].rstrip(":") for a in args if a.startswith("=")), None)
        if target and ("can't find" in err or any(m in err for m in _NO_SERVER) or err.startswith("error connecting")):
            return AgentNotRunning(f"Agent {target!r} has no tmux session (it stopped).",
                                   hint=f"Start it with `fleet up {target}`.", agent=target)
        return TmuxUnavailable(f"tmux {args[0]} failed: {err}.", hint="Run `fleet doctor` to check the tmux setup.")

    def run(self, *args: str, check: bool = True, input_text: str | None = None) -> str:
        """Run one tmux command on this server. With `check`, a failure raises `agent_not_running`
        (the target session is gone) or `tmux_unavailable`; without, its output is returned as is."""
        proc = self._exec(*args, input_text=input_text)
        if check and proc.returncode != 0:
            raise self._failed(args, proc)
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
        proc = self._exec("list-panes", "-a", "-F", _FIELDS)
        if proc.returncode != 0:
            err = proc.stderr.strip()
            if any(m in err for m in _NO_SERVER) or (err.startswith("error connecting") and "No such file" in err):
                return {}
            raise self._failed(("list-panes",), proc)
        out = proc.stdout
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

    def write_config(self) -> None:
        """Write the server's config file (0600, atomically, replacing rather than following a
        symlink); unchanged content is left alone. The state dir must exist. Also makes the socket's
        directory (0700), and refuses one that others can enter or that is not the user's own."""
        if self.socket is not None:
            self._private_socket_dir(self.socket.parent)
        try:
            if self.config_file.read_text() == SERVER_CONF and not self.config_file.is_symlink():
                return
        except (OSError, UnicodeDecodeError):
            pass
        write_atomic(self.config_file, SERVER_CONF.encode())

    def _private_socket_dir(self, directory: Path) -> None:
        try:
            make_private_dirs(directory)
            st = os.lstat(directory)
        except OSError as exc:
            raise TmuxUnavailable(f"Cannot create {directory} for the fleet's tmux socket: {exc.strerror or exc}.",
                                  hint="Check its permissions, or point TMUX_TMPDIR elsewhere.") from exc
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or stat.S_IMODE(st.st_mode) & 0o077:
            raise TmuxUnavailable(
                f"{directory}, where the fleet's tmux socket goes, is not a private directory of yours "
                f"(mode {stat.S_IMODE(st.st_mode):o}, uid {st.st_uid}): others could reach the server.",
                hint="Make it a 0700 directory you own, or point TMUX_TMPDIR elsewhere.")

    def new_session(
        self, name: str, command: str, cwd: Path, env: dict[str, str], width: int = 200, height: int = 50
    ) -> int | None:
        """Start `command` (one shell string) in a new detached session named exactly `name`; return
        its pane's pid. Call `write_config` first. libtmux's errors come out as fleet errors."""
        import libtmux  # noqa: PLC0415 (~30 ms: only the code that talks to tmux)
        from libtmux import exc as tmux_exc  # noqa: PLC0415 (with libtmux)

        try:
            server = (libtmux.Server(socket_path=str(self.socket), config_file=str(self.config_file))
                      if self.socket is not None else
                      libtmux.Server(socket_name=self.socket_name, config_file=str(self.config_file)))
            session = server.new_session(
                session_name=name, window_command=command, start_directory=str(cwd),
                x=width, y=height, environment=env, attach=False,
            )
            pane = session.active_pane
            pid = pane.pane_pid if pane is not None else None
        except tmux_exc.TmuxSessionExists as exc:
            raise AgentBusy(f"Agent {name!r} already has a tmux session; it was not started again.",
                            hint="See `fleet status`; `fleet down` it first to restart it.", agent=name) from exc
        except (tmux_exc.LibTmuxException, OSError) as exc:
            raise TmuxUnavailable(f"tmux could not start a session for {name!r}: {exc}.",
                                  hint="Run `fleet doctor` to check the tmux setup.", agent=name) from exc
        return int(pid) if pid is not None and str(pid).isdigit() else None

    def respawn(self, name: str, command: str) -> None:
        """Replace the session's process with `command` (killing a live one): the session, and with
        it the server, stays up, so a restart never starts a tmux server of its own."""
        self.run("respawn-pane", "-k", "-t", f"={name}:", command)

    def has_session(self, name: str) -> bool:
        return name in self.panes()

    def kill_session(self, name: str) -> None:
        self.run("kill-session", "-t", f"={name}", check=False)

    def send_keys(self, name: str, *keys: str) -> None:
        """Send tmux key names (`Enter`, `Escape`, `C-c`), never literal text."""
        self.run("send-keys", "-t", f"={name}:", *keys)

    def paste(self, name: str, text: str) -> None:
        """Bracketed-paste `text` into the pane via a named buffer loaded from a private temp file.

        A file, not `set-buffer`, because tmux commands are limited to ~16 KB. It is made next to
        the server's config file, in the fleet's private state dir, new (`O_EXCL`) and 0600.
        """
        token = os.urandom(6).hex()
        buffer = f"fleet-{token}"
        tmp = str(self.config_file.with_name(f".send-{os.getpid()}-{token}.txt"))
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE)
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
