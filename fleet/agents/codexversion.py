"""Which Codex CLI releases fleet is tested with, and which release a binary is.

The tested range is data, kept in step with the two installs `scripts/setup` makes and `scripts/test`
runs: the whole suite on the pinned release (`PINNED`), and the real-Codex tests named in
`tests/codex/previous.txt` on the oldest supported one. fleet reads Codex's screens, hooks, rollouts
and flags (notes/codex-cli.md records what each release changed), so a release outside the range may
work but nothing has checked that it does: `fleet doctor` says so as a warning.

`parse_version` and `is_tested` are pure; `binary_version` runs `BINARY --version` once per binary
file (keyed by path, size and mtime), so a doctor over many agents sharing one Codex stays fast.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Final, NamedTuple

#: The release `scripts/setup` installs and the whole suite runs on.
PINNED: Final = "0.171.0"
#: The oldest tested release (the whole suite ran on 0.169.0 while it was the pin; CI runs the
#: real-Codex subset on 0.169.1, a hotfix that flips one feature flag).
TESTED_LOW: Final = (0, 169, 0)
#: The newest tested minor release: every patch release of it counts as tested.
TESTED_HIGH: Final = (0, 171)
#: The tested range in words.
TESTED_RANGE: Final = f"{'.'.join(map(str, TESTED_LOW))} .. {'.'.join(map(str, TESTED_HIGH))}.x"
#: How long `codex --version` may take (a cold start of the native binary takes well under a second).
VERSION_TIMEOUT: Final = 10.0
#: `codex --version` prints `codex-cli 0.171.0` (a pre-release adds `-alpha.N`).
_VERSION: Final = re.compile(r"(?<![\w.])(\d{1,6})\.(\d{1,6})\.(\d{1,6})(-[0-9A-Za-z.-]{1,40})?(?![\w.])")


class Version(NamedTuple):
    """A Codex release number as printed; `pre` is a pre-release suffix such as `-alpha.2`, or ''."""

    major: int
    minor: int
    patch: int
    pre: str = ""

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}{self.pre}"


def parse_version(output: str) -> Version | None:
    """The release number in `codex --version`'s first line, or None if it names none."""
    first = output.strip().splitlines()[0] if output.strip() else ""
    match = _VERSION.search(first)
    if match is None:
        return None
    return Version(int(match[1]), int(match[2]), int(match[3]), match[4] or "")


def is_tested(version: Version) -> bool:
    """Whether fleet's tests ran on this release's line: a pre-release never counts (nothing pins one)."""
    numbers = (version.major, version.minor, version.patch)
    return not version.pre and numbers >= TESTED_LOW and numbers[:2] <= TESTED_HIGH


_cache: dict[tuple[str, int, int, int], Version] = {}


def binary_version(binary: Path) -> Version | None:
    """What `BINARY --version` says, or None if it did not run, failed, or named no release. Cached
    per binary file while its path, inode, size and mtime stay the same; a failure is not cached."""
    try:
        st = os.stat(binary)
    except OSError:
        return None
    key = (str(binary), st.st_ino, st.st_size, st.st_mtime_ns)
    if key in _cache:
        return _cache[key]
    try:
        proc = subprocess.run([str(binary), "--version"], capture_output=True, text=True, errors="replace",
                              timeout=VERSION_TIMEOUT, stdin=subprocess.DEVNULL, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    version = parse_version(proc.stdout or proc.stderr) if proc.returncode == 0 else None
    if version is not None:
        _cache[key] = version
    return version
