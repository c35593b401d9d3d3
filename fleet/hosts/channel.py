"""One persistent channel per host: the system `ssh` running `fleet remote-session` there.

`Channel.request(op, args)` sends one request line and waits, up to its timeout, for the answer with
the same id; many threads may share a channel (requests are multiplexed by id, answers come in
whatever order the session finishes them). The channel is opened on the first request and kept: a
channel that broke (ssh died, the host went away) is opened again by the next request.

A request whose answer was lost with the channel is retried once on a fresh channel only when that
is safe: a read-only request, or a mutating one carrying a `request_id` (the registry's operations
that take one return the first call's result for a repeated id, so the retry never runs it twice).
Any other mutating request fails with `host_lost`: it may have run there, and running it again
blindly could do it twice. A request with no answer in time fails the same way (it may still run).

ssh runs with `BatchMode=yes` (never a password prompt), no ControlMaster (no shared socket to go
stale), and `-p`, `-i`, `-F` from the host's config. The remote fleet must be this fleet's version and
speak this protocol (its hello), or the host is refused (`host_version_mismatch`).
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import itertools
import shlex
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any, Final, TypeVar

from fleet.config.hosts import HostSpec
from fleet.errors import FleetError, HostError, HostLost, HostProtocolError, HostUnreachable

from .protocol import MAX_ANSWER, check_hello, encode, parse_answer

#: How long opening a channel may take (ssh's TCP connect, auth, the remote fleet's start, its hello).
CONNECT_TIMEOUT: Final = 10.0
#: Lines a remote may print before its hello (a login banner, a noisy shell rc) before it is refused.
_MAX_BANNER: Final = 100
#: How many hosts one call asks at once.
MAX_PARALLEL: Final = 8
#: The last lines of ssh's stderr kept for error messages.
_STDERR_LINES: Final = 20

_LOST: Final = object()

_T = TypeVar("_T")


def remote_command(host: HostSpec, command: Sequence[str] = ("remote-session",)) -> str:
    """The command ssh runs on the host: its `fleet` words (split like a shell would, each quoted
    again for the remote shell), `--config` when set, and `command` (`remote-session`)."""
    words = [*shlex.split(host.fleet), *(["--config", host.config] if host.config else []), *command]
    return " ".join(shlex.quote(w) for w in words)


def ssh_argv(host: HostSpec, connect_timeout: float = CONNECT_TIMEOUT, ssh: str = "ssh", *,
             command: Sequence[str] = ("remote-session",), tty: bool = False) -> list[str]:
    """The ssh command line that runs fleet's `command` on the host: without a terminal (`-T`) for the
    channel, with one (`-t`) for a person's `fleet attach`."""
    argv = [ssh, "-t" if tty else "-T", "-e", "none", "-o", "BatchMode=yes", "-o", "ControlMaster=no",
            "-o", "ControlPath=none",
            "-o", f"ConnectTimeout={max(1, int(connect_timeout))}", "-o", "ServerAliveInterval=15",
            "-o", "ServerAliveCountMax=3"]
    if host.port is not None:
        argv += ["-p", str(host.port)]
    if host.identity is not None:
        argv += ["-i", str(host.identity), "-o", "IdentitiesOnly=yes"]
    if host.ssh_config is not None:
        argv += ["-F", str(host.ssh_config)]
    return [*argv, "--", host.ssh, remote_command(host, command)]


class _Slot:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: Any = None

    def set(self, value: Any) -> None:
        self.value = value
        self.done.set()


class _Conn:
    """One ssh process and the thread reading its answers."""

    def __init__(self, host: HostSpec, version: str, argv: list[str]) -> None:
        self.host = host
        self.version = version
        self.pending: dict[str, _Slot] = {}
        self.lock = threading.Lock()
        self.write_lock = threading.Lock()
        self.dead = False
        self.hello: dict[str, Any] | None = None
        self.hello_error: FleetError | None = None
        self.greeted = threading.Event()
        self.stderr: collections.deque[str] = collections.deque(maxlen=_STDERR_LINES)
        try:
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         start_new_session=True)
        except OSError as exc:
            raise HostUnreachable(f"Cannot run ssh for host {host.name!r}: {exc}.",
                                  hint="Install the OpenSSH client (`ssh`).", host=host.name) from exc
        assert self.proc.stdout is not None
        assert self.proc.stderr is not None
        threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True,
                         name=f"fleet-host-{host.name}").start()
        self._drainer = threading.Thread(target=self._drain, args=(self.proc.stderr,), daemon=True,
                                         name=f"fleet-host-{host.name}-err")
        self._drainer.start()

    def _drain(self, stream: IO[bytes]) -> None:
        with contextlib.suppress(OSError, ValueError), stream:
            for line in iter(lambda: stream.readline(4096), b""):
                self.stderr.append(line.decode("utf-8", "replace").rstrip())

    def _read(self, stream: IO[bytes]) -> None:
        try:
            self._greet(stream)
            while not self.dead:
                line = stream.readline(MAX_ANSWER + 1)
                if not line or not line.endswith(b"\n"):
                    break  # the end, or a line past the bound: the channel is unusable
                ans = parse_answer(line)
                with self.lock:
                    slot = self.pending.pop(str(ans.id), None)
                if slot is not None:
                    slot.set(ans)
        except FleetError as exc:
            if self.hello_error is None and not self.greeted.is_set():
                self.hello_error = exc
        except (OSError, ValueError):
            pass
        finally:
            self._die()
            stream.close()

    def _greet(self, stream: IO[bytes]) -> None:
        for _ in range(_MAX_BANNER):
            line = stream.readline(64 * 1024)
            if not line:
                return
            hello = check_hello(line, self.version, self.host.name)
            if hello is not None:
                self.hello = hello
                self.greeted.set()
                return
        raise HostProtocolError(f"Host {self.host.name!r} printed no remote-session hello.",
                                hint="Check the host's `fleet` setting: it must run fleet.", host=self.host.name)

    def _die(self) -> None:
        with self.lock:
            self.dead = True
            slots = list(self.pending.values())
            self.pending.clear()
        for slot in slots:
            slot.set(_LOST)
        self.greeted.set()
        self.kill()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        with self.write_lock, contextlib.suppress(OSError):
            if self.proc.stdin is not None:
                self.proc.stdin.close()

    def alive(self) -> bool:
        return not self.dead and self.proc.poll() is None

    def why(self) -> str:
        if self.proc.poll() is not None:
            self._drainer.join(timeout=1)  # ssh's last words (why it failed) come with its exit
        tail = "; ".join(s for s in self.stderr if s)[-400:]
        status = self.proc.poll()
        return tail or (f"ssh exited with status {status}" if status is not None else "no answer")

    def send(self, rid: str, op: str, args: dict[str, Any]) -> _Slot:
        slot = _Slot()
        with self.lock:
            if self.dead:
                slot.set(_LOST)
                return slot
            self.pending[rid] = slot
        line = encode({"id": rid, "op": op, "args": args})
        try:
            with self.write_lock:
                assert self.proc.stdin is not None
                self.proc.stdin.write(line)
                self.proc.stdin.flush()
        except (OSError, ValueError):
            with self.lock:
                self.pending.pop(rid, None)
            slot.set(_LOST)
        return slot

    def hang_up(self) -> None:
        """End the session's input: it finishes what runs there and exits on its own."""
        with self.write_lock, contextlib.suppress(OSError):
            if self.proc.stdin is not None:
                self.proc.stdin.close()

    def close(self) -> None:
        """Hang up and wait for ssh to end (killed after a grace)."""
        self.hang_up()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=2)
        self.kill()


def _error_classes() -> dict[str, type[FleetError]]:
    """Every FleetError class by its code."""
    out: dict[str, type[FleetError]] = {}
    todo: list[type[FleetError]] = [FleetError]
    while todo:
        cls = todo.pop()
        out.setdefault(cls.code, cls)
        todo.extend(cls.__subclasses__())
    return out


def remote_error(host: str, body: dict[str, Any]) -> FleetError:
    """The FleetError a remote answered with, as this fleet's class of that code (its exit status:
    3 for a lease conflict there too), its message naming the host, its hint and data."""
    code = str(body.get("code", "host_error"))[:64]
    known = _error_classes().get(code)
    cls: type[FleetError] = known if known is not None else type(f"Remote_{code}", (HostError,), {"code": code})
    data = {k: v for k, v in body.items() if k not in ("code", "message", "hint", "retryable")}
    data["host"] = host
    err: FleetError = cls.__new__(cls)
    FleetError.__init__(err, f"host {host}: {body.get('message', '')}", hint=str(body.get("hint", "")), **data)
    return err


class Channel:
    """The channel to one host; thread-safe."""

    def __init__(self, host: HostSpec, version: str, *, connect_timeout: float = CONNECT_TIMEOUT,
                 ssh: str = "ssh") -> None:
        self.host = host
        self.version = version
        self.connect_timeout = connect_timeout
        self.ssh = ssh
        self._conn: _Conn | None = None
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    @property
    def pid(self) -> int | None:
        """The running ssh process (tests kill it to break the channel)."""
        conn = self._conn
        return conn.proc.pid if conn is not None and conn.alive() else None

    @property
    def remote(self) -> dict[str, Any] | None:
        """The remote's hello (its fleet version) once connected."""
        conn = self._conn
        return conn.hello if conn is not None else None

    def _live(self, deadline: float) -> _Conn:
        with self._lock:
            conn = self._conn
            if conn is None or not conn.alive():
                if conn is not None:
                    conn.kill()
                conn = self._conn = _Conn(self.host, self.version, ssh_argv(self.host, self.connect_timeout, self.ssh))
        if not conn.greeted.wait(max(0.0, min(deadline, time.monotonic() + self.connect_timeout) - time.monotonic())):
            conn.kill()
            raise HostUnreachable(f"Host {self.host.name!r} did not answer within the bound ({conn.why()}).",
                                  hint="Check that `ssh` reaches it (`fleet hosts`).", host=self.host.name)
        if conn.hello is None:
            raise conn.hello_error or HostUnreachable(
                f"Host {self.host.name!r} is unreachable: {conn.why()}.",
                hint=f"Check `ssh {self.host.ssh}` works without a password (BatchMode) and runs fleet.",
                host=self.host.name)
        return conn

    def request(self, op: str, args: dict[str, Any], *, timeout: float, mutating: bool = False) -> dict[str, Any]:
        """Run `op` on the host; its result, or its FleetError (with the remote's code) raised here."""
        deadline = time.monotonic() + timeout
        retry_safe = not mutating or "request_id" in args
        for attempt in (1, 2):
            try:
                conn = self._live(deadline)
            except HostUnreachable as exc:
                if attempt == 2 and mutating:  # the first was sent, and its answer lost: it may have run
                    raise HostLost(f"The channel to host {self.host.name!r} broke before {op} answered, and the "
                                   f"host could not be reached again ({exc.message}); it may have run there.",
                                   hint="Look before retrying (`fleet status`, `fleet show`); once the host answers, "
                                        "a retry with the same request id is safe.",
                                   host=self.host.name, operation=op) from exc
                raise
            slot = conn.send(f"r{next(self._ids)}", op, args)
            if not slot.done.wait(max(0.0, deadline - time.monotonic())):
                if mutating:
                    raise HostLost(f"Host {self.host.name!r} did not answer {op} within {timeout:g}s; it may still "
                                   "run there.", hint="Look before retrying (`fleet status`, `fleet show`).",
                                   host=self.host.name, operation=op)
                raise HostUnreachable(f"Host {self.host.name!r} did not answer {op} within {timeout:g}s.",
                                      hint="Check the host (`fleet hosts`).", host=self.host.name, operation=op)
            if slot.value is not _LOST:
                ans = slot.value
                if ans.ok:
                    result: dict[str, Any] = ans.body
                    return result
                raise remote_error(self.host.name, ans.body)
            if attempt == 1 and retry_safe:
                continue
            if mutating:
                raise HostLost(f"The channel to host {self.host.name!r} broke before {op} answered ({conn.why()}); "
                               "it may have run there, so it is not run again.",
                               hint="Look before retrying (`fleet status`); a request id makes a retry safe.",
                               host=self.host.name, operation=op)
            raise HostUnreachable(f"Host {self.host.name!r} is unreachable: {conn.why()}.",
                                  hint="Check the host (`fleet hosts`).", host=self.host.name, operation=op)
        raise AssertionError("unreachable")  # pragma: no cover

    def detach(self) -> _Conn | None:
        """Take the open connection out of the channel (the next request opens a new one)."""
        with self._lock:
            conn, self._conn = self._conn, None
        return conn

    def close(self) -> None:
        """Hang up and wait for ssh to end."""
        conn = self.detach()
        if conn is not None:
            conn.close()


#: The process's channels, one per host (and version): shared by every `Service` of the process (an MCP
#: server or the dashboard makes one per call), closed at exit.
_SHARED: dict[tuple[HostSpec, str], Channel] = {}
_SHARED_LOCK: Final = threading.Lock()


def close_all(wait: bool = True) -> None:
    """Close every channel of the process: all hang up at once, then (with `wait`) each ssh is
    waited for. At exit nothing waits: each remote session ends by itself once its input ends."""
    with _SHARED_LOCK:
        channels = list(_SHARED.values())
        _SHARED.clear()
    conns = [c for c in (ch.detach() for ch in channels) if c is not None]
    for conn in conns:
        conn.hang_up()
    if wait:
        for conn in conns:
            conn.close()


def _close_at_exit() -> None:
    close_all(wait=False)


class Hosts:
    """A config's hosts, reached over the process's channels (one per host, opened on first use and
    kept for the process's life); `each` and `ask` fan out in parallel."""

    def __init__(self, hosts: dict[str, HostSpec], version: str, **options: Any) -> None:
        self.specs = hosts
        self.version = version
        self.options = options

    def channel(self, name: str) -> Channel:
        key = (self.specs[name], self.version)
        with _SHARED_LOCK:
            if not _SHARED:
                atexit.register(_close_at_exit)
            if key not in _SHARED:
                _SHARED[key] = Channel(self.specs[name], self.version, **self.options)
            return _SHARED[key]

    def ask(self, requests: dict[str, tuple[str, dict[str, Any]]], timeout: float) -> dict[str, Any]:
        """Each host's request at once (at most MAX_PARALLEL at a time), all within `timeout`: host ->
        its result, or the FleetError it failed with. Read-only requests only."""
        if not requests:
            return {}
        deadline = time.monotonic() + timeout

        def one(name: str) -> Any:
            op, args = requests[name]
            left = deadline - time.monotonic()
            try:
                if left <= 0:
                    raise HostUnreachable(f"Host {name!r} was not asked within the bound ({timeout:g}s).",
                                          hint="Check the hosts (`fleet hosts`).", host=name)
                return self.channel(name).request(op, args, timeout=left)
            except FleetError as exc:
                return exc

        return self.each(list(requests), one)

    @staticmethod
    def each(names: Sequence[str], one: Callable[[str], _T]) -> dict[str, _T]:
        """`one(name)` for each host of `names` at once (at most MAX_PARALLEL at a time): name -> what
        it returned, in `names`' order."""
        if not names:
            return {}
        with ThreadPoolExecutor(max_workers=min(len(names), MAX_PARALLEL), thread_name_prefix="fleet-hosts") as pool:
            return dict(zip(names, pool.map(one, names), strict=True))
