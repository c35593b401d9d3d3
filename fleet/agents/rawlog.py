"""Bounded raw terminal log: copies stdin to PATH, rotating to PATH.1 when PATH passes MAX bytes.

Run by tmux pipe-pane (`python -S rawlog.py PATH MAX`). Unbuffered so the log never lags the screen.
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    path, limit = sys.argv[1], int(sys.argv[2])
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW
    fd = os.open(path, flags, 0o600)
    size = os.fstat(fd).st_size
    while True:
        chunk = os.read(0, 65536)
        if not chunk:
            break
        if size + len(chunk) > limit:
            os.close(fd)
            os.replace(path, path + ".1")
            fd = os.open(path, flags, 0o600)
            size = 0
        os.write(fd, chunk)
        size += len(chunk)
    os.close(fd)


if __name__ == "__main__":
    main()
