"""Bounded raw terminal log: copies stdin to PATH, rotating to PATH.1 when PATH reaches MAX bytes.

Run by tmux pipe-pane for as long as the agent runs (`python -S rawlog.py PATH MAX`, see
`codex.rawlog_command`), so what it keeps alive is fleet's overhead per agent. A Python interpreter
idling in a read loop holds ~4 MiB PSS; so this program replaces itself at once (exec) with a POSIX
shell loop around `head -c`, ~0.4 MiB PSS for the shell and its `head` together (measured with
`bench/bench_rawlog.py`). `stdbuf -o0` makes `head` write each chunk as it reads it, so the log never
lags the screen; `head -c N` reads no more than N bytes, so nothing is lost at a rotation. Where
`sh`, `head` or `stdbuf` is missing, the same loop runs in Python instead.

The log lives in the agent's private (0700) state dir; files are created 0600 and a symlink in
place of the log stops the copier rather than being followed.
"""

from __future__ import annotations

import os
import sys

#: The copier in POSIX sh: $1 the log path, $2 its size bound. Exits at end of input (the pane
#: closed), when the log is replaced by a symlink, or on any write error.
SHELL_LOOP = r"""
p=$1 max=$2
umask 077
[ -L "$p" ] && exit 1
size=0; [ -e "$p" ] && { size=$(wc -c <"$p") || exit 1; }
while :; do
  if [ "$size" -ge "$max" ]; then mv -f -- "$p" "$p.1" || exit 1; size=0; fi
  [ -L "$p" ] && exit 1
  stdbuf -o0 head -c "$((max - size))" >>"$p" || exit 1
  new=$(wc -c <"$p") || exit 1
  [ "$new" -lt "$max" ] && exit 0
  size=$new
done
"""


def _which(name: str) -> str | None:
    for directory in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep):
        path = os.path.join(directory or ".", name)
        if os.access(path, os.X_OK) and not os.path.isdir(path):
            return path
    return None


def copy_in_python(path: str, limit: int) -> None:
    """The same copier without the shell tools: unbuffered, O_NOFOLLOW, 0600."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW
    fd = os.open(path, flags, 0o600)
    size = os.fstat(fd).st_size
    while chunk := os.read(0, 65536):
        while chunk:
            if size >= limit:
                os.close(fd)
                os.replace(path, path + ".1")
                fd = os.open(path, flags, 0o600)
                size = 0
            written = os.write(fd, chunk[: limit - size])
            size += written
            chunk = chunk[written:]
    os.close(fd)


def main() -> None:
    path, limit = sys.argv[1], int(sys.argv[2])
    sh = _which("sh")
    if sh and _which("head") and _which("stdbuf") and _which("wc") and _which("mv"):
        os.execv(sh, [sh, "-c", SHELL_LOOP, "fleet-rawlog", path, str(limit)])
    copy_in_python(path, limit)


if __name__ == "__main__":
    main()
