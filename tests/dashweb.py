"""`fleet dash --web ARGS` as a user runs it, a real server process on 127.0.0.1, for the web view's
tests (tests/test_dash_web.py, tests/test_dash_screenshot.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from conftest import Fleet


@contextmanager
def served(f: Fleet, *args: str) -> Iterator[str]:
    """Yields the first line `fleet dash --web ARGS` prints (the URL); stops the server afterwards."""
    argv = [sys.executable, "-P", "-m", "fleet", "--config", str(f.path), "dash", "--web", *args]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"}) as proc:
        try:
            assert proc.stdout is not None
            yield proc.stdout.readline().strip()
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
