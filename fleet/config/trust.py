"""Which `fleet.toml` files the user trusts: `fleet trust` records a config's absolute path and the
sha256 of its bytes, like direnv's `allow`.

A config that fleet finds by itself in the current directory (`./fleet.toml`) names programs fleet
runs (`codex`, `notify_command`) and a state dir whose ledger holds check commands. A cloned
repository, or an agent that writes its cwd, controls that file; so it is used only when its path
and its exact content were trusted by the user. A changed file needs trusting again. Configs the
user names (`--config`, `$FLEET_CONFIG`) and the one in the user config dir need no entry.

The records live in the user's own state, `$XDG_STATE_HOME/fleet/trusted-configs.json` (default
`~/.local/state/...`): not in any repository, 0600 in a 0700 directory, written atomically under a
file lock. A store that is not a regular file owned by the user, or that group or others may
write, trusts nothing (fail closed). What the hash does not cover: files the config points at (a
relative `codex = "./bin/codex"`, the assignment template); keep those out of reach of agents
(`fleet up` and `fleet doctor` check fleet's own files, see `fleet.agents.writable`). What a config
would have fleet run, shown to the person deciding, is `fleet.config.describe`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final, TypedDict

from fleet.errors import ConfigError, ConfigUntrusted
from fleet.fsutil import (
    UnsafePath,
    ensure_dir,
    flock_within,
    open_lock_file,
    read_bytes_nofollow,
    write_json_atomic,
)

#: The store's file name, in `$XDG_STATE_HOME/fleet/` (fleet names cannot hold a dot, so no fleet's
#: default state dir can take this name).
STORE_NAME: Final = "trusted-configs.json"
#: How long a writer waits for another `fleet trust` to finish.
_LOCK_WAIT: Final = 5.0
#: More than any user trusts by hand; a store larger than this is not read (fail closed).
_MAX_STORE: Final = 4 << 20


class TrustRecord(TypedDict):
    path: str
    sha256: str
    trusted_at: float


def store_path() -> Path:
    """`$XDG_STATE_HOME/fleet/trusted-configs.json` (an empty or relative value is ignored, per XDG)."""
    value = os.environ.get("XDG_STATE_HOME", "")
    base = Path(value) if os.path.isabs(value) else Path.home() / ".local" / "state"
    return base / "fleet" / STORE_NAME


def content_hash(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _unsafe_store(why: str) -> ConfigUntrusted:
    return ConfigUntrusted(
        f"The trust store {store_path()} {why}, so no ./fleet.toml is trusted.",
        hint="Remove it (or `chmod 600` it if it is yours) and trust your configs again with `fleet trust`.",
        store=str(store_path()))


def _read_store() -> dict[str, TrustRecord]:
    """The recorded configs by absolute path; empty when there is no store. Raises ConfigUntrusted
    for a store that is a symlink, not the user's, writable by others, or not fleet's JSON."""
    path = store_path()
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return {}
    if not stat.S_ISREG(st.st_mode):
        raise _unsafe_store("is not a regular file")
    if st.st_uid != os.geteuid() or st.st_mode & 0o022:
        raise _unsafe_store("is not yours alone (owner or mode)")
    try:
        raw = json.loads(read_bytes_nofollow(path, _MAX_STORE))
    except (OSError, UnsafePath, ValueError) as exc:
        raise _unsafe_store(f"cannot be read ({exc})") from exc
    configs = raw.get("configs") if isinstance(raw, dict) else None
    if not isinstance(configs, dict):
        raise _unsafe_store("is not a fleet trust store")
    out: dict[str, TrustRecord] = {}
    for key, rec in configs.items():
        if isinstance(rec, dict) and isinstance(rec.get("sha256"), str):
            out[key] = {"path": key, "sha256": rec["sha256"], "trusted_at": float(rec.get("trusted_at") or 0)}
    return out


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    directory = ensure_dir(store_path().parent)
    fd = open_lock_file(directory / f".{STORE_NAME}.lock")
    try:
        if not flock_within(fd, _LOCK_WAIT):
            raise ConfigError("Another `fleet trust` is still writing the trust store.", hint="Try again.")
        yield
    finally:
        os.close(fd)


def _write_store(records: dict[str, TrustRecord]) -> None:
    body = {"version": 1, "configs": {k: {"sha256": r["sha256"], "trusted_at": r["trusted_at"]}
                                       for k, r in sorted(records.items())}}
    write_json_atomic(store_path(), body)


def _key(path: Path) -> str:
    """The config's place: its directory resolved, its own name not followed, so a `fleet.toml` that
    is a symlink to a config trusted elsewhere is not trusted here (an agent could plant one)."""
    path = path.absolute()
    return str(path.parent.resolve() / path.name)


def check_trusted(path: Path, data: bytes) -> None:
    """Pass when the user trusted `path` with exactly these bytes (`data`, as read for parsing, so
    the bytes judged are the bytes used); otherwise raise ConfigUntrusted with the command to run."""
    record = _read_store().get(_key(path))
    digest = content_hash(data)
    if record is not None and record["sha256"] == digest:
        return
    changed = record is not None
    what = "has changed since you trusted it" if changed else "is not trusted"
    raise ConfigUntrusted(
        f"{path} was found in the current directory and {what}: a fleet.toml names programs fleet "
        "runs, and a repository you cloned (or an agent that writes here) controls this one.",
        hint=f"Read it, then run `fleet trust {path}`; or name a config yourself with --config PATH "
             "or $FLEET_CONFIG.",
        path=str(path), sha256=digest, changed=changed)


def trust(path: Path, *, now: float | None = None) -> TrustRecord:
    """Record `path` (resolved) with the hash of its current content; replaces an older record."""
    key = _key(path)
    try:
        data = read_bytes_nofollow(Path(key), _MAX_STORE)
    except (OSError, UnsafePath) as exc:
        raise ConfigError(f"Cannot read {path}: {exc}.", hint="Name an existing fleet.toml.", path=str(path)) from exc
    record: TrustRecord = {"path": key, "sha256": content_hash(data), "trusted_at": time.time() if now is None else now}
    with _locked():
        records = _read_store()
        records[key] = record
        _write_store(records)
    return record


def revoke(path: Path) -> bool:
    """Forget `path`; False when it was not trusted. Also works for a file that no longer exists."""
    key = str(path.absolute()) if not path.exists() else _key(path)
    with _locked():
        records = _read_store()
        if records.pop(key, None) is None:
            return False
        _write_store(records)
    return True


def trusted() -> list[TrustRecord]:
    """Every record, by path."""
    return [r for _, r in sorted(_read_store().items())]
