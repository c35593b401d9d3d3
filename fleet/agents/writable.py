"""Where each agent can write, and whether fleet's own files lie there (Codex 0.169's sandbox rules).

fleet acts on files: the state dir (journals, leases, the ledger, approval answers and the approve
policy the hook reads), each agent's Codex home (its config and sessions), fleet's install (the
package and the interpreter whose hook receiver Codex runs), the Codex binary it launches, the
config, and the user's trust store. An agent that can write any of them can forge a `Stop` with a
report, answer its own approval, or get its code run outside the sandbox. `up` and `doctor` refuse
such a layout (`exposures`).

Writable roots of an agent under `workspace-write` (measured with `codex sandbox` on 0.169): its cwd,
`/tmp` unless `sandbox_workspace_write.exclude_slash_tmp`, `$TMPDIR` unless
`sandbox_workspace_write.exclude_tmpdir_env_var`, every `sandbox_workspace_write.writable_roots`
entry, every `--add-dir` (and any `-C` in the agent's own args). Settings come from the agent's
`args` (`-c`, the last one wins), the profile it selects, then its home's `config.toml`; roots are
the union of all of them (fail closed). The sandbox's `/dev` (and `/dev/shm`) is its own: writes
there never reach the host (measured).
`read-only` writes nothing; `danger-full-access` (or the bypass flag) writes everything and is not
checked: nothing placed anywhere is safe from it, and the README says what its verdicts are worth.
An agent's `$TMPDIR` is taken from its `env`, else fleet's own environment (what a tmux server
started now passes on); a server started earlier from another environment is not asked.

`writable_roots` is pure; `exposures` reads the homes' `config.toml` and resolves paths.
"""

from __future__ import annotations

import os
import sys
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import fleet
from fleet.config import AgentSpec, FleetConfig, Sandbox
from fleet.errors import CodexMissing

from .codex import effective_sandbox, flag_values, resolve_binary, user_config

_WIDTH: Final[dict[str, int]] = {"read-only": 0, "workspace-write": 1, "danger-full-access": 2}
_WSW: Final = "sandbox_workspace_write"


@dataclass(frozen=True)
class Roots:
    """An agent's effective sandbox and the directories it may write (absolute, not resolved)."""

    agent: str
    sandbox: Sandbox
    roots: tuple[Path, ...]

    @property
    def full_access(self) -> bool:
        return self.sandbox == "danger-full-access"


@dataclass(frozen=True)
class Exposure:
    """A file of fleet's (`what`: "state dir", "home of mila", ...) inside an agent's writable root."""

    agent: str
    sandbox: Sandbox
    what: str
    path: Path
    root: Path

    def sentence(self) -> str:
        return f"{self.what} {self.path} is inside {self.root}, which agent {self.agent!r} ({self.sandbox}) can write"


def _toml_value(text: str) -> Any:
    """A `-c key=value` value as Codex reads it: TOML, else the raw string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def cli_settings(args: Sequence[str]) -> list[dict[str, Any]]:
    """The `-c key=value` overrides among `args`, each as a nested table of its own, the last first
    (the first one that sets a key is the one Codex keeps)."""
    layers: list[dict[str, Any]] = []
    for item in flag_values(args, "--config", "-c"):
        key, sep, value = item.partition("=")
        if not sep:
            continue
        parts = [p.strip().strip('"') for p in key.split(".")]
        table: dict[str, Any] = {}
        node = table
        for part in parts[:-1]:
            node[part] = node = {}
        node[parts[-1]] = _toml_value(value.strip())
        layers.insert(0, table)
    return layers


def _get(table: Mapping[str, Any], *keys: str) -> Any:
    node: Any = table
    for key in keys:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def writable_roots(spec: AgentSpec, home_config: Mapping[str, Any], environ: Mapping[str, str]) -> Roots:
    """The sandbox Codex runs `spec` under and the roots it may write. Pure.

    The sandbox is the last `-s`/`--sandbox` in the agent's `args` (Codex takes the flag over any
    config), else its configured one; a bypass flag means full access. When anything else asks for
    more than read-only (the configured sandbox, another `-s`, `--full-auto`, a `sandbox_mode`
    setting), the roots are computed as for workspace-write all the same: a check that may be wrong
    errs towards refusing.
    """
    args = spec.args
    cli = cli_settings(args)
    flags = flag_values(args, "--sandbox", "-s")
    sandbox = effective_sandbox(spec)
    profiles = flag_values(args, "--profile", "-p")
    named = [t["profile"] for t in cli if "profile" in t]
    profile_name = profiles[-1] if profiles else named[0] if named else home_config.get("profile")
    profile = _get(home_config, "profiles", str(profile_name)) if profile_name else None
    layers = [*cli, *(p for p in (profile, home_config) if isinstance(p, Mapping))]
    asked = [spec.sandbox, *flags, *(str(t.get("sandbox_mode")) for t in layers if t.get("sandbox_mode"))]
    if "--full-auto" in args:
        asked.append("workspace-write")
    if sandbox == "danger-full-access":
        return Roots(spec.name, sandbox, ())
    if max(_WIDTH.get(a, 1) for a in asked) == 0:
        return Roots(spec.name, sandbox, ())

    def setting(key: str) -> bool:
        for layer in layers:  # the first layer that sets it decides
            table = layer.get(_WSW)
            if table is not None and not isinstance(table, Mapping):
                return False  # the whole table replaced by something else: nothing is excluded
            value = _get(layer, _WSW, key)
            if value is not None:
                return value is True
        return False

    roots = [spec.cwd]
    if not setting("exclude_slash_tmp"):
        roots.append(Path("/tmp"))
    tmpdir = spec.env.get("TMPDIR") or environ.get("TMPDIR")
    if tmpdir and os.path.isabs(tmpdir) and not setting("exclude_tmpdir_env_var"):
        roots.append(Path(tmpdir))
    for layer in layers:
        extra = _get(layer, _WSW, "writable_roots")
        if isinstance(extra, list):
            roots += [Path(str(r)).expanduser() for r in extra]
    roots += [Path(d).expanduser() for d in flag_values(args, "--add-dir")]
    roots += [Path(d).expanduser() for d in flag_values(args, "--cd", "-C")]  # a second -C: fail closed
    roots = [r if r.is_absolute() else spec.cwd / r for r in roots]
    return Roots(spec.name, "workspace-write" if sandbox == "read-only" else sandbox, tuple(dict.fromkeys(roots)))


def _within(inner: str, outer: str) -> bool:
    """`inner` is `outer` or below it (absolute, normalised paths as strings: a fleet of 100 agents
    makes ~20,000 comparisons, and `Path.parents` made that a second)."""
    return inner == outer or inner.startswith(outer if outer.endswith("/") else outer + "/")


def find_exposures(roots: Iterable[Roots], protected: Iterable[tuple[str, Path, bool]]) -> list[Exposure]:
    """Each protected path inside a root (or, for a directory, holding one: an agent whose root lies
    in the state dir writes part of it). Paths must be resolved alike (`_real`). Pure."""
    out = []
    items = [(what, path, str(path), is_dir) for what, path, is_dir in protected]
    for r in roots:
        for root in r.roots:
            root_s = str(root)
            for what, path, path_s, is_dir in items:
                if _within(path_s, root_s) or (is_dir and _within(root_s, path_s)):
                    out.append(Exposure(r.agent, r.sandbox, what, path, root))
    return out


def _real(path: Path) -> Path:
    """The path with symlinks resolved as far as it exists (an agent writes through a link too)."""
    return Path(os.path.realpath(path))


def protected_paths(config: FleetConfig) -> list[tuple[str, Path, bool]]:
    """What no sandboxed agent may write: (what, resolved path, is a directory)."""
    from fleet.config.trust import store_path  # noqa: PLC0415 (hashlib: only where the trust store is named)

    items: list[tuple[str, Path, bool]] = [
        ("the state dir", config.state_dir, True),
        ("the config", config.path, False),
        ("fleet's package", Path(fleet.__file__).parent, True),
        ("fleet's Python environment", Path(sys.prefix), False),  # a cwd under /usr is not a threat
        ("fleet's interpreter", Path(sys.executable), False),
        # its directory holds every fleet's default state dir, so a repo agent's worktree: a root inside
        # it writes none of the store's files, a root holding it does (a file, for `find_exposures`)
        ("the trust store", store_path().parent, False),
    ]
    items += [(f"the Codex home of {a.name}", a.home, True) for a in config.agents.values()]
    for host in config.hosts.values():  # ssh reads them: an ssh_config's ProxyCommand runs here
        items += [(f"the ssh {what} of host {host.name}", path, False)
                  for what, path in (("config", host.ssh_config), ("key", host.identity)) if path is not None]
    for codex in sorted({a.codex for a in config.agents.values()}):
        try:
            items.append((f"the Codex binary {codex!r}", resolve_binary(codex), False))
        except CodexMissing:  # `up` and doctor say so themselves
            continue
    return [(what, _real(path), is_dir) for what, path, is_dir in items]


def agent_roots(spec: AgentSpec, environ: Mapping[str, str] | None = None) -> Roots:
    """`writable_roots` for `spec` with its home's own config.toml read."""
    return writable_roots(spec, user_config(spec.home), os.environ if environ is None else environ)


def resolved_roots(specs: Iterable[AgentSpec], environ: Mapping[str, str] | None = None) -> list[Roots]:
    """`writable_roots` of each agent (its home's config.toml read once), symlinks resolved."""
    env = os.environ if environ is None else environ
    out = []
    for spec in specs:
        r = writable_roots(spec, user_config(spec.home), env)
        out.append(Roots(r.agent, r.sandbox, tuple(_real(p) for p in r.roots)))
    return out


def fleet_roots(config: FleetConfig, environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """Every directory some sandboxed agent of the fleet may write (resolved): where a program an
    approved command runs must not lie, whichever agent asks (`fleet.hooks.programs`). A
    full-access agent adds nothing here: it can forge anything, as the README says."""
    roots = resolved_roots(config.agents.values(), environ)
    return tuple(dict.fromkeys(str(p) for r in roots for p in r.roots))


def exposures(config: FleetConfig, specs: Iterable[AgentSpec] | None = None,
              environ: Mapping[str, str] | None = None) -> list[Exposure]:
    """fleet's files inside the writable roots of `specs` (default: every agent) that are not
    full-access. The files are every agent's, whichever agents are checked."""
    roots = resolved_roots(config.agents.values() if specs is None else specs, environ)
    return own_worktrees_allowed(find_exposures(roots, protected_paths(config)), config) + \
        worktree_exposures(roots, config) + repo_exposures(roots, config)


def own_worktrees_allowed(found: list[Exposure], config: FleetConfig) -> list[Exposure]:
    """`found` without a repo agent's own worktree counted as writing the state dir: the worktrees
    dir (by default `<state_dir>/worktrees`) holds nothing of fleet's but the worktrees."""
    wt_root = str(_real(config.worktree_root))
    return [e for e in found if not (e.path == _real(config.state_dir) and str(e.root).startswith(wt_root + "/"))]


def worktree_exposures(roots: Iterable[Roots], config: FleetConfig) -> list[Exposure]:
    """Each repo agent's worktree inside (or holding) another sandboxed agent's writable root: that
    agent could change work that is verified and merged as someone else's."""
    worktrees = [(a.name, _real(a.cwd)) for a in config.agents.values() if a.repo is not None]
    out = []
    for r in roots:
        if r.full_access:
            continue
        for root in r.roots:
            for owner, path in worktrees:
                if owner != r.agent and (_within(str(path), str(root)) or _within(str(root), str(path))):
                    out.append(Exposure(r.agent, r.sandbox, f"the worktree of {owner}", path, root))
    return out


def repo_exposures(roots: Iterable[Roots], config: FleetConfig) -> list[Exposure]:
    """The git dir of a repo agent's repository, or a symlink on the way to it or to the worktrees
    dir, inside a sandboxed agent's writable root, its own included: that agent could write the
    worktrees' admin dirs (their index is what fleet commits), the config git reads, or where a
    path leads. The git dir is `<repo>/.git` when that is a directory, else the repository itself."""
    items: list[tuple[str, Path, bool]] = []
    repos = sorted({a.repo for a in config.agents.values() if a.repo is not None})
    for repo in repos:
        git = repo / ".git"
        items.append((f"the git dir of the repository {repo}", _real(git if git.is_dir() else repo), True))
    if repos:
        for start in (config.worktree_root, *repos):
            items += [(f"a symlink on the way to {start}", link, False) for link in _links_on(start)]
    return find_exposures([r for r in roots if not r.full_access], list(dict.fromkeys(items)))


def _links_on(path: Path) -> list[Path]:
    """The symlinks among `path` and its parents, each as where it lies (its own parent resolved)."""
    out = []
    path = Path(os.path.abspath(path))
    for p in [*reversed(path.parents), path]:
        if p.is_symlink():
            out.append(_real(p.parent) / p.name)
    return out


def exposure_hint(found: Sequence[Exposure]) -> str:
    """What to do about `found`, one sentence."""
    if any(e.root == _real(Path("/tmp")) for e in found):
        tmp = (" For /tmp and $TMPDIR: keep fleet's files elsewhere, or add `-c "
               "sandbox_workspace_write.exclude_slash_tmp=true -c sandbox_workspace_write.exclude_tmpdir_env_var=true` "
               "to the agent's args.")
    else:
        tmp = ""
    return ("Move the state dir ([fleet] state_dir or $FLEET_HOME), the Codex homes, the config and fleet's "
            "install, and the repositories of repo agents (with any symlink on the way to them or to the worktrees "
            "dir), out of every sandboxed agent's cwd and writable roots (default state dir: "
            "~/.local/state/fleet/<name>)." + tmp)
