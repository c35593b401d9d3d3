"""Private, crash-safe files under the state dir: 0700 dirs, 0600 files, atomic writes, no symlinks.

Every write that must not be torn goes through `write_atomic` (temp file, fsync, rename, fsync of the
directory). Readers refuse symlinks (`O_NOFOLLOW`) so a planted link cannot redirect fleet's state.
"""

from __future__ import annotations

import fcntl
import json
import os
import stat
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Final

from .errors import StateDirError

DIR_MODE: Final = 0o700
FILE_MODE: Final = 0o600


class UnsafePath(OSError):
    """A path inside the state dir is a symlink or not the kind of file expected."""


def ensure_dir(path: Path) -> Path:
    """Create `path` and every missing parent as private (0700) directories; refuse a symlink in its
    place, and a `path` that is not the user's alone (`check_private_dir`). Parents that already
    exist keep their mode (a user's `~/.local` is not fleet's)."""
    try:
        make_private_dirs(path)
    except OSError as exc:
        raise StateDirError(
            f"Cannot create the directory {path}: {exc.strerror or exc}.",
            hint="Check the state_dir setting and its permissions, or set $FLEET_HOME.",
        ) from exc
    check_private_dir(path)
    return path


def check_private_dir(path: Path, *, missing_ok: bool = False) -> None:
    """Refuse (StateDirError) a directory of fleet's that someone else could have written: a symlink
    or a file in its place, another owner, or a mode that lets group or others write. fleet reads its
    journals, leases, ledger and approval answers from these directories and acts on them, so one
    that others can write is one whose every record may be forged. `missing_ok`: a directory that
    does not exist passes (a read creates nothing)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        if missing_ok:
            return
        raise StateDirError(f"The directory {path} does not exist.", hint="Run `fleet up` to create it.") from None
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise StateDirError(
            f"{path} is not a plain directory (a symlink or a file is in its place).",
            hint="Remove it; fleet does not follow symlinks inside its state dir.",
        )
    if st.st_uid != os.geteuid():
        raise StateDirError(
            f"{path} belongs to uid {st.st_uid}, not to you (uid {os.geteuid()}): whoever owns it can forge "
            "fleet's records there.",
            hint="Use a state dir of your own ([fleet] state_dir, or $FLEET_HOME), or `chown` it if it is yours.",
            path=str(path))
    if st.st_mode & 0o022:
        who = {0o022: "group and others", 0o020: "group", 0o002: "others"}[st.st_mode & 0o022]
        raise StateDirError(
            f"{path} is writable by {who} (mode {stat.S_IMODE(st.st_mode):o}): anyone who can write it can "
            "forge fleet's records there.",
            hint=f"Run `chmod 700 {path}`; fleet creates its directories 0700.", path=str(path))


def check_state_tree(state_dir: Path, agents: Iterable[str]) -> None:
    """`check_private_dir` for the state dir and the directories in it that hold what fleet acts on
    (`agents/`, each agent's, `leases/`), where they exist: a read creates nothing."""
    for path in (state_dir, state_dir / "agents", state_dir / "leases",
                 *(state_dir / "agents" / name for name in agents)):
        check_private_dir(path, missing_ok=True)


def make_private_dirs(path: Path) -> None:
    """`mkdir -p` where every directory created is 0700 whatever the umask (`Path.mkdir(parents=True)`
    gives the parents the umask's mode)."""
    missing: list[Path] = []
    probe = path.absolute()
    while not os.path.lexists(probe):
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, DIR_MODE)
        except FileExistsError:
            continue  # made by a concurrent caller; the checks below still apply to `path`
        os.chmod(directory, DIR_MODE)  # exactly 0700 even under an odd umask (0277 would leave 0500)


def open_lock_file(path: Path) -> int:
    """A descriptor on the lock file `path` (created 0600; never through a symlink: `ELOOP`)."""
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE)


def flock_within(fd: int, wait: float, *, pause: float = 0.005, max_pause: float = 0.05,
                 shared: bool = False) -> bool:
    """Take an exclusive (`shared`: a shared) flock on `fd`, waiting up to `wait` seconds; False if it
    is still held.

    The lock belongs to the open file description: a descriptor opened for each acquisition makes
    it exclusive between threads of one process as well as between processes, and closing the
    descriptor (or the holder dying) drops it. Polls from `pause`, doubling up to `max_pause`.
    """
    deadline = time.monotonic() + max(0.0, wait)
    while True:
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(pause, left))
            pause = min(pause * 2, max_pause)


def write_atomic(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Replace `path` with `data` so a reader sees the old or the new content, never a torn mix.

    The temp file is new (`O_EXCL`, a random name: concurrent writers in one process do not share
    it) and 0600; the rename replaces a symlink at `path` instead of following it. `durable=False`
    skips the fsyncs: still atomic for readers and across a process crash, but an OS crash may lose
    it (for files that do not outlive the processes they describe).
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, FILE_MODE)
    try:
        os.write(fd, data)
        if durable:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    os.replace(tmp, path)
    if not durable:
        return
    dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def write_json_atomic(path: Path, obj: Any, *, durable: bool = True) -> None:
    write_atomic(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode(), durable=durable)


def read_bytes_nofollow(path: Path, limit: int = 1 << 20) -> bytes:
    """Read a regular file without following a symlink; raise `UnsafePath` for anything else.

    Raises FileNotFoundError when it does not exist.
    """
    try:  # O_NONBLOCK: a FIFO in its place is refused below, never waited on
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == 40:  # ELOOP: the last component is a symlink
            raise UnsafePath(f"{path} is a symlink") from exc
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UnsafePath(f"{path} is not a regular file")
        chunks = []
        remaining = limit
        while remaining > 0:
            chunk = os.read(fd, min(remaining, 1 << 16))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_regular(path: Path | str, limit: int) -> bytes | None:
    """The whole content of the regular file `path` if it holds at most `limit` bytes; None for a
    missing file, a symlink, a FIFO or anything but a regular file, a bigger file, or any read error.
    Never blocks: for files someone else (an agent) may have put there."""
    try:
        data = read_bytes_nofollow(Path(path), limit + 1)
    except OSError:  # UnsafePath included
        return None
    return data if len(data) <= limit else None


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line with a single `write` on an O_APPEND fd (atomic for lines < PIPE_BUF-ish
    sizes on local filesystems, and never interleaved mid-line by concurrent appenders in practice)."""
    line = (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, FILE_MODE)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def read_jsonl_tail(path: Path, max_bytes: int = 256 * 1024) -> list[dict[str, Any]]:
    """The parsed records in the last `max_bytes` of a JSON-lines file; torn or bad lines are skipped."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return []
    try:
        size = os.fstat(fd).st_size
        start = max(0, size - max_bytes)
        os.lseek(fd, start, os.SEEK_SET)
        raw = b""
        while True:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            raw += chunk
    finally:
        os.close(fd)
    lines = raw.split(b"\n")
    if start > 0:
        lines = lines[1:]  # first line is probably cut
    return parse_jsonl(lines)


def parse_jsonl(lines: list[bytes]) -> list[dict[str, Any]]:
    """The JSON objects among `lines`; blank, torn or non-object lines are skipped.

    Parsed as one JSON array first (one `json.loads` instead of one per line: half the time, which
    is most of `status` for agents with long journals); only when that fails, or does not give one
    object per line, line by line, so the result is the same either way.
    """
    kept = [line for line in lines if line.strip()]
    try:
        objs = json.loads(b"[" + b",".join(kept) + b"]")
    except ValueError:
        return list(_parse_lines(kept))
    if len(objs) != len(kept) or not all(isinstance(o, dict) for o in objs):
        return list(_parse_lines(kept))
    return objs  # type: ignore[no-any-return]


def _parse_lines(lines: list[bytes]) -> Iterator[dict[str, Any]]:
    for line in lines:
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict):
            yield obj
