"""`fleet doctor`: is this machine ready to run the fleet? Each check says what to do if it fails.

It also says which config file it uses and why (`CONFIG_WHY`), and in which Codex homes
fleet's plugin is installed (the default home and every agent home that exists; `plugin` in the
result has one `fleet.install.HomeStatus` per home). The plugin is optional, so its line never fails.
Each agent gets a `codex <agent>` line: its binary and the Codex release it runs (`version`, and
`tested` against `fleet.agents.codexversion`'s range, which the result names as `codex_tested`).
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from typing import Any

from fleet.agents.codex import resolve_binary
from fleet.agents.codexversion import PINNED, TESTED_RANGE, binary_version, is_tested
from fleet.agents.tmux import tmux_binary
from fleet.agents.writable import exposure_hint, exposures
from fleet.config import CONFIG_WHY, FleetConfig, find_config, load_config
from fleet.errors import FleetError, StateDirError
from fleet.fsutil import ensure_dir

from .core import Service
from .install import plugin_check


def _check(name: str, ok: bool, detail: str, hint: str = "") -> dict[str, Any]:
    return {"name": name, "ok": ok, "detail": detail, "hint": "" if ok else hint}


def _version(argv: list[str]) -> str | None:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL,
                              check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (proc.stdout or proc.stderr).strip().splitlines()[0] if proc.returncode == 0 else None


def _placement_check(config: FleetConfig) -> dict[str, Any]:
    """Are fleet's own files out of every sandboxed agent's reach? (`fleet.agents.writable`)"""
    found = exposures(config)
    detail = "; ".join(e.sentence() for e in found[:5]) + (f"; and {len(found) - 5} more" if len(found) > 5 else "")
    return _check("control plane", not found, detail or "state dir, homes, config and fleet's install are "
                  "outside every sandboxed agent's writable roots", exposure_hint(found))


def fleet_doctor(svc: Service) -> dict[str, Any]:
    checks = [_check("python", sys.version_info >= (3, 11), sys.version.split()[0], "fleet needs Python 3.11+.")]
    try:
        tmux = tmux_binary()
        version = _version([tmux, "-V"]) or "unknown"
        checks.append(_check("tmux", True, f"{tmux} ({version})"))
    except FleetError as exc:
        checks.append(_check("tmux", False, exc.message, exc.hint))
    try:
        try:
            config = svc.config
        except StateDirError:  # the file is fine, its state dir is not: the state_dir line says why
            config = load_config(svc.config_path)
        why = CONFIG_WHY[config.source] if config.source else find_config(svc.config_path).why
        checks.append(_check("config", True,
                             f"{config.path} ({why}): fleet {config.name!r}, {len(config.agents)} agent(s)"))
    except FleetError as exc:
        checks.append(_check("config", False, exc.message, exc.hint))
        plugin, homes = plugin_check(None)
        return {"ok": False, "checks": [*checks, plugin], "plugin": homes}
    checks.extend(codex_check(name, spec.codex) for name, spec in config.agents.items())
    try:
        state = ensure_dir(config.state_dir)
        probe = state / f".doctor-{os.getpid()}"
        probe.write_text(str(time.time()))
        probe.unlink()
        checks.append(_check("state_dir", True, str(state)))
    except StateDirError as exc:  # not the user's alone, or not a directory: its own words and hint
        checks.append(_check("state_dir", False, exc.message, exc.hint))
    except (OSError, FleetError) as exc:
        checks.append(_check("state_dir", False, f"{config.state_dir}: {exc}",
                             "Make it writable, or set [fleet] state_dir / $FLEET_HOME."))
    checks.append(_placement_check(config))
    # a repo agent's cwd is its worktree, which `up` makes: its repository must exist
    missing = [a.name for a in config.agents.values() if not (a.repo if a.repo is not None else a.cwd).is_dir()]
    checks.append(_check("agent cwds", not missing, "all exist" if not missing else f"missing for {', '.join(missing)}",
                         "Create each agent's cwd or fix `cwd` (or `repo`) in fleet.toml."))
    checks.append(tmux_server_check(svc))
    if config.store is not None:
        checks.append(store_check(svc))
    if config.hosts:
        checks.extend(host_checks(svc))
    plugin, homes = plugin_check(config)
    checks.append(plugin)
    return {"ok": all(c["ok"] for c in checks), "checks": checks, "plugin": homes, "codex_tested": TESTED_RANGE}


def codex_check(agent: str, codex_cmd: str) -> dict[str, Any]:
    """One agent's Codex: its binary, the release it says it is, and whether fleet is tested with that
    release. A binary that is missing, does not run or names no release fails (fleet cannot tell what
    it would drive); a release outside the tested range is a warning, never a failure."""
    name = f"codex {agent}"
    try:
        binary = resolve_binary(codex_cmd)
    except FleetError as exc:
        out = _check(name, False, exc.message, exc.hint)
        out.update(agent=agent, version=None, tested=False)
        return out
    version = binary_version(binary)
    if version is None:
        out = _check(name, False, f"{binary} printed no Codex version for `--version`",
                     f"Run `{binary} --version` by hand; reinstall the Codex CLI "
                     f"(`npm install -g @openai/codex@{PINNED}`) if it fails.")
        out.update(agent=agent, version=None, tested=False)
        return out
    tested = is_tested(version)
    verdict = "tested" if tested else f"untested (tested: {TESTED_RANGE})"
    out = _check(name, True, f"{binary} (codex-cli {version}, {verdict})")
    out.update(agent=agent, version=str(version), tested=tested)
    if not tested:
        out["warnings"] = [f"Codex {version} is outside the releases fleet is tested with ({TESTED_RANGE}); "
                           f"it may work, but if the agent misbehaves install {PINNED}."]
    return out


def tmux_server_check(svc: Service) -> dict[str, Any]:
    """Where the fleet's tmux server listens and who can reach it. A socket directory that is not the
    user's own 0700 directory fails; agents that can connect (network or full access) or that can
    write the socket's directory are warnings (`warnings`), never a failure: the user chose them."""
    try:
        tmux = svc.runtime.tmux
    except FleetError as exc:
        return _check("tmux server", False, exc.message, exc.hint)
    socket = tmux.socket
    if socket is None:
        return _check("tmux server", True, f"tmux's default location ({tmux.where})")
    try:
        detail = f"{socket} (mode {stat.S_IMODE(os.lstat(socket).st_mode):o}, in a 0700 directory of yours)"
    except OSError:
        detail = f"{socket} (no server running)"
    try:
        st = os.lstat(socket.parent)
    except OSError:
        st = None  # not made yet: `up` makes it private
    if st is not None and (st.st_uid != os.getuid() or stat.S_IMODE(st.st_mode) & 0o077
                           or not stat.S_ISDIR(st.st_mode)):
        return _check("tmux server", False,
                      f"{socket.parent} (the socket's directory) is mode {stat.S_IMODE(st.st_mode):o}, owner "
                      f"uid {st.st_uid}: others could reach the fleet's server.",
                      "Make it a 0700 directory of your own, or point TMUX_TMPDIR elsewhere.")
    warnings = svc.runtime.server_exposure(list(svc.config.agents.values()))
    out = _check("tmux server", True, detail + (f"; {len(warnings)} warning(s)" if warnings else
                                                "; no agent can connect to it or write its directory"))
    out["warnings"] = warnings
    return out


def store_check(svc: Service) -> dict[str, Any]:
    """The shared store (`[store]`): reachable, and its schema this fleet's (`fleet store status`)."""
    from .store import store_status  # noqa: PLC0415 (psycopg: only for a fleet with a shared store)

    try:
        found = store_status(svc)
    except FleetError as exc:
        return _check("store", False, exc.message, exc.hint)
    where = f"{found.get('store')} (namespace {found.get('namespace')})"
    if not found.get("reachable"):
        return _check("store", False, f"{where} does not answer",
                      "Check that PostgreSQL runs and the URL, user and password are right (`fleet store status`).")
    if not found.get("current"):
        return _check("store", False, f"{where} has schema {found.get('version')}, fleet needs {found.get('needed')}",
                      "Run `fleet store init` (it creates or upgrades the schema), or upgrade fleet.")
    return _check("store", True, f"{where}: PostgreSQL {found.get('server_version')}, schema {found.get('version')}")


def host_checks(svc: Service) -> list[dict[str, Any]]:
    """One line per `[hosts.NAME]`: reached over ssh, running this fleet's version, with every agent
    this config puts there (`fleet hosts`, in parallel and bounded)."""
    from .hosts import fleet_hosts  # noqa: PLC0415 (ssh channels: only for a fleet with hosts)

    out = []
    for row in fleet_hosts(svc)["hosts"]:
        name = f"host {row['name']}"
        if not row["reachable"]:
            err = row.get("error") or {}
            out.append(_check(name, False, f"{row['ssh']}: {err.get('message', 'not reached')}",
                              err.get("hint") or f"Try `ssh {row['ssh']} true`, then `fleet hosts`."))
        elif row["missing"]:
            out.append(_check(name, False, f"{row['ssh']} runs fleet {row['version']} but its config has no "
                                           f"{', '.join(row['missing'])}",
                              "Define those agents in the host's own fleet.toml (or fix `config` in [hosts]), "
                              "or move them to another host."))
        else:
            out.append(_check(name, True, f"{row['ssh']}: fleet {row['version']}, {row['latency_ms']} ms, "
                                          f"{len(row['agents'])} agent(s)"))
    return out

