"""The skills Codex 0.169 would load for an agent, found the way Codex finds them.

Measured against the real binary (0.169.0, `codex exec` in the offline namespace against the mock
model, reading the `<skills_instructions>` message Codex sends; `$name` mentions checked the same way):

Roots, per agent:
- `$CODEX_HOME/skills/` (`source="codex_home"`); `$CODEX_HOME/skills/.system/` is its own root
  (`source="system"`, `system=True`), filled by Codex itself on its first run (imagegen,
  openai-docs, skill-creator, skill-installer), so it is empty until the agent has run once.
- `$HOME/.agents/skills/` for the HOME the agent runs with (its env may override HOME)
  (`source="user"`).
- `<dir>/.agents/skills/` and `<dir>/.codex/skills/` for every directory from the cwd up to the
  git repository's root, both included; outside a git repo only the cwd's own
  (`source="project"`). Loaded even when the project is not trusted. The two differ in what marks
  the root: for `.agents` any `.git` entry does; for `.codex` (Codex's project config layers) only a
  `.git` file or a `.git` directory holding `HEAD` (an empty `.git` directory left `.codex` skills
  above the cwd unloaded). In a real repository both are the same.
- Plugins (`source="plugin"`) when the `plugins` feature is on (`[features] plugins`, default on;
  `-c features.plugins=false` turns it off): `codex plugin add x@market` copies the plugin to
  `$CODEX_HOME/plugins/cache/<market>/<plugin>/<version>/` and records
  `[plugins."x@market"] enabled = true` in `$CODEX_HOME/config.toml` (the marketplace goes under
  `[marketplaces.<market>]`). Only plugins listed there with `enabled = true` load, from the highest
  version directory (compared as numbers: 0.10.0 over 0.9.0); a plugin in the cache but not in the
  config does not load. Skills come from the manifest's `skills` path (default `skills/`), named
  `<manifest name>:<skill name>`.

Scanning: recursive; a `SKILL.md` counts in any directory 1 to 6 levels below a root (7 is not
loaded), a skill nested inside another skill's directory too; hidden directories are skipped;
symlinked directories are followed. Front matter: `name` (default: the directory's name; more
than 64 characters and Codex drops the skill) and `description` (required, else Codex drops the
skill; cut to 1,024 characters). Codex lists a name twice if two roots have it. A skill whose
`agents/openai.yaml` says `policy: {allow_implicit_invocation: false}` (the built-in review-agent)
is left out of the list the model sees but still loads on an explicit `$name` mention
(`implicit=False` here; routing counts it, since assignment prompts mention skills explicitly). Codex's own parser
is more lenient than YAML (it loaded `name: [broken`): fleet parses with `yaml.safe_load` and lists
such a file with an `error`, so a user fixes it rather than relying on leniency. A broken SKILL.md
never breaks the listing. Not covered: an admin-wide root (none exists on the machines measured)
and `[[skills.config]]` entries that disable a skill.

Bounded: at most `MAX_ENTRIES` directory entries visited and `MAX_SKILLS` skills per agent, at most
`MAX_SKILL_BYTES` read from each SKILL.md; hitting a cap adds a warning.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final, Literal

import yaml

Source = Literal["codex_home", "system", "user", "project", "plugin"]

#: Codex drops a skill whose name is longer (measured: 64 loads, 65 does not).
MAX_NAME_CHARS: Final = 64
#: Codex cuts a description to this length (measured).
MAX_DESCRIPTION_CHARS: Final = 1024
#: Deepest directory level below a root at which a SKILL.md still loads (measured: 6 yes, 7 no).
MAX_DEPTH: Final = 6
#: Directory entries visited per agent; a home full of unrelated files stops here, with a warning.
MAX_ENTRIES: Final = 20_000
MAX_SKILLS: Final = 1000
#: Front matter is at the top; the body is not needed.
MAX_SKILL_BYTES: Final = 64 * 1024
MAX_CONFIG_BYTES: Final = 1024 * 1024
MAX_MANIFEST_BYTES: Final = 256 * 1024
SKILL_FILE: Final = "SKILL.md"
#: libyaml's safe loader when PyYAML has it (the same safe subset, ~10x faster), else the Python one.
_LOADER: Final[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_FRONT_END: Final = re.compile(r"^(?:---|\.\.\.)[ \t]*$", re.MULTILINE)


@dataclass(frozen=True)
class Skill:
    """One SKILL.md as Codex would list it. `error` says why Codex would not load it (or why fleet
    cannot read it); such a skill is listed but does not count for routing (`usable`)."""

    name: str
    description: str
    source: Source
    path: str
    system: bool = False
    plugin: str | None = None
    error: str | None = None
    implicit: bool = True

    @property
    def usable(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "description": self.description, "source": self.source,
                               "path": self.path}
        if self.system:
            out["system"] = True
        if self.plugin:
            out["plugin"] = self.plugin
        if self.error:
            out["error"] = self.error
        if not self.implicit:
            out["implicit"] = False
        return out


@dataclass(frozen=True)
class Inventory:
    skills: tuple[Skill, ...]
    warnings: tuple[str, ...] = ()

    def names(self) -> frozenset[str]:
        """The names of usable skills: what routing matches against."""
        return frozenset(s.name for s in self.skills if s.usable)


@dataclass
class _Budget:
    entries: int = 0
    warnings: list[str] = field(default_factory=list)

    def spend(self, n: int, where: Path) -> bool:
        self.entries += n
        if self.entries > MAX_ENTRIES:
            if not any("entries" in w for w in self.warnings):
                self.warnings.append(f"stopped scanning at {where}: more than {MAX_ENTRIES} directory entries")
            return False
        return True


def agent_home(env: Mapping[str, str] | None) -> Path:
    """The HOME an agent runs with: its configured env's HOME, else this process's."""
    home = (env or {}).get("HOME")
    return Path(home) if home else Path.home()


def list_skills(codex_home: Path, cwd: Path, home: Path, *, plugins_enabled: bool | None = None) -> list[Skill]:
    """The skills for an agent with this CODEX_HOME, working directory and HOME (see `scan_skills`)."""
    return list(scan_skills(codex_home, cwd, home, plugins_enabled=plugins_enabled).skills)


def scan_skills(codex_home: Path, cwd: Path, home: Path, *, plugins_enabled: bool | None = None) -> Inventory:
    """Every skill Codex would list for the agent, plus warnings (caps hit, unreadable config).

    `plugins_enabled` None reads `[features] plugins` from `$CODEX_HOME/config.toml` (default on);
    pass False when the agent runs with `-c features.plugins=false`. Never raises for content.
    """
    budget = _Budget()
    skills: list[Skill] = []
    config, problem = _read_config(codex_home)
    if problem:
        budget.warnings.append(problem)
    roots: list[tuple[Path, Source, str | None]] = [
        *((d, "project", None) for d in project_skill_dirs(cwd)),
        (codex_home / "skills", "codex_home", None),
        (home / ".agents" / "skills", "user", None),
        (codex_home / "skills" / ".system", "system", None),
    ]
    if plugins_enabled if plugins_enabled is not None else _feature_on(config, "plugins"):
        for plugin in installed_plugins(codex_home, config):
            if plugin.error:
                budget.warnings.append(plugin.error)
            elif plugin.skills_dir is not None:
                roots.append((plugin.skills_dir, "plugin", plugin.prefix))
    for root, source, prefix in roots:
        for path in _skill_files(root, budget):
            if len(skills) >= MAX_SKILLS:
                budget.warnings.append(f"stopped at {MAX_SKILLS} skills")
                return Inventory(tuple(skills), tuple(budget.warnings))
            skills.append(read_skill(path, source, prefix=prefix))
    return Inventory(tuple(skills), tuple(budget.warnings))


def project_skill_dirs(cwd: Path) -> list[Path]:
    """`.agents/skills` and `.codex/skills` of the cwd and each parent up to the git root (the cwd
    alone outside a repository), nearest first; each kind with its own root marker (module docs)."""
    cwd = Path(os.path.abspath(cwd))
    chain = [cwd, *cwd.parents]

    def upto(is_root: Callable[[Path], bool]) -> list[Path]:
        root = next((d for d in chain if is_root(d)), None)
        return chain[: chain.index(root) + 1] if root is not None else [cwd]

    agents = upto(lambda d: os.path.lexists(d / ".git"))
    codex = upto(lambda d: (d / ".git").is_file() or (d / ".git" / "HEAD").exists())
    out = []
    for d in chain:
        out += [d / ".agents" / "skills"] if d in agents else []
        out += [d / ".codex" / "skills"] if d in codex else []
    return out


def read_skill(path: Path, source: Source, *, prefix: str | None = None) -> Skill:
    """Parse one SKILL.md's front matter; problems go into `error`, never raised."""
    fallback = path.parent.name

    def skill(name: str, description: str = "", error: str | None = None) -> Skill:
        return Skill(name=f"{prefix}:{name}" if prefix else name, description=description, source=source,
                     path=str(path), system=source == "system", plugin=prefix, error=error)

    def broken(error: str, name: str = fallback) -> Skill:
        return skill(name, error=error)

    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_SKILL_BYTES)
    except OSError as exc:
        return broken(f"cannot be read: {exc.strerror or exc}")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return broken("is not UTF-8 text")
    lines = text.split("\n", 1)
    if lines[0].rstrip() != "---":
        return broken("has no front matter: the file must start with a --- line")
    end = _FRONT_END.search(lines[1] if len(lines) > 1 else "")
    if end is None:
        return broken("front matter is not closed with a --- line"
                      + (f" within the first {MAX_SKILL_BYTES} bytes" if len(raw) == MAX_SKILL_BYTES else ""))
    try:
        data = yaml.load(lines[1][: end.start()], Loader=_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 2}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        return broken(f"front matter is not valid YAML{where}: {problem}")
    except RecursionError:
        return broken("front matter is nested too deeply")
    if not isinstance(data, dict):
        return broken("front matter must be a mapping with name and description")
    name = data.get("name", fallback)
    description = data.get("description")
    if not isinstance(name, str) or not name.strip() or "\n" in name:
        return broken("name must be a one-line string")
    name = name.strip()
    if len(name) > MAX_NAME_CHARS:
        return broken(f"name is longer than {MAX_NAME_CHARS} characters (Codex skips it)", name=name[:MAX_NAME_CHARS])
    if not isinstance(description, str) or not description.strip():
        return broken("description is missing or empty (Codex skips the skill)", name=name)
    description = " ".join(description.split())[:MAX_DESCRIPTION_CHARS]
    return replace(skill(name, description), implicit=_implicit(path.parent))


def _implicit(skill_dir: Path) -> bool:
    """False when the skill's `agents/openai.yaml` sets `policy.allow_implicit_invocation: false`."""
    try:
        with open(skill_dir / "agents" / "openai.yaml", "rb") as f:
            data = yaml.load(f.read(MAX_SKILL_BYTES), Loader=_LOADER)
    except (OSError, yaml.YAMLError, RecursionError, UnicodeDecodeError):
        return True
    policy = data.get("policy") if isinstance(data, dict) else None
    return not (isinstance(policy, dict) and policy.get("allow_implicit_invocation") is False)


@dataclass(frozen=True)
class PluginInstall:
    """An installed plugin as Codex records it: `key` is `plugin@marketplace` from config.toml."""

    key: str
    enabled: bool
    root: Path | None = None
    version: str | None = None
    prefix: str | None = None
    skills_dir: Path | None = None
    error: str | None = None


def installed_plugins(codex_home: Path, config: Mapping[str, Any] | None = None) -> list[PluginInstall]:
    """The enabled plugins of `config.toml` (`[plugins."x@market"] enabled = true`), each resolved to
    its highest installed version under `plugins/cache/` and its manifest's skills directory."""
    if config is None:
        config, _ = _read_config(codex_home)
    table = config.get("plugins")
    out: list[PluginInstall] = []
    if not isinstance(table, dict):
        return out
    for key in sorted(table):
        entry = table[key]
        enabled = isinstance(entry, dict) and entry.get("enabled", True) is True
        if not enabled:
            continue
        name, _, market = key.partition("@")
        if not name or not market or "/" in key or key.startswith("."):
            out.append(PluginInstall(key, True, error=f"plugin {key!r}: not a plugin@marketplace name"))
            continue
        out.append(_resolve_plugin(codex_home / "plugins" / "cache" / market / name, key))
    return out


def _resolve_plugin(base: Path, key: str) -> PluginInstall:
    try:
        versions = [d for d in os.scandir(base) if d.is_dir() and not d.name.startswith(".")]
    except OSError:
        return PluginInstall(key, True, error=f"plugin {key}: enabled in config.toml but not installed under {base}")
    for entry in sorted(versions, key=lambda d: _version_key(d.name), reverse=True):
        root = Path(entry.path)
        manifest = root / ".codex-plugin" / "plugin.json"
        try:
            with open(manifest, "rb") as f:
                data = json.loads(f.read(MAX_MANIFEST_BYTES))
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as exc:
            return PluginInstall(key, True, root=root, version=entry.name,
                                 error=f"plugin {key}: {manifest} is unreadable ({exc})")
        if not isinstance(data, dict):
            return PluginInstall(key, True, root=root, version=entry.name,
                                 error=f"plugin {key}: {manifest} is not a JSON object")
        named = data.get("name")
        prefix = named if isinstance(named, str) and named else key.partition("@")[0]
        rel = data.get("skills", "skills")
        if not isinstance(rel, str):
            return PluginInstall(key, True, root=root, version=entry.name, prefix=prefix)
        skills_dir = Path(os.path.normpath(root / rel))
        if skills_dir != root and root not in skills_dir.parents:
            return PluginInstall(key, True, root=root, version=entry.name, prefix=prefix,
                                 error=f"plugin {key}: its skills path {rel!r} leaves the plugin directory")
        return PluginInstall(key, True, root=root, version=entry.name, prefix=prefix, skills_dir=skills_dir)
    return PluginInstall(key, True, error=f"plugin {key}: no installed version with a manifest under {base}")


def _skill_files(root: Path, budget: _Budget) -> Iterator[Path]:
    """SKILL.md files 1..MAX_DEPTH levels below `root`, sorted per directory, hidden dirs skipped,
    symlinked dirs followed once (a cycle is cut by the real path)."""
    seen: set[str] = set()
    stack: list[tuple[Path, int]] = [(root, 0)]
    while stack:
        directory, depth = stack.pop()
        real = os.path.realpath(directory)
        if real in seen:
            continue
        seen.add(real)
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError:
            continue
        if not budget.spend(len(entries), directory):
            return
        subdirs: list[Path] = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                if depth >= 1 and entry.name == SKILL_FILE and entry.is_file():
                    yield Path(entry.path)
                elif depth < MAX_DEPTH and entry.is_dir():
                    subdirs.append(Path(entry.path))
            except OSError:
                continue
        stack.extend((d, depth + 1) for d in reversed(subdirs))


def _read_config(codex_home: Path) -> tuple[dict[str, Any], str | None]:
    path = codex_home / "config.toml"
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        return {}, None
    except OSError as exc:
        return {}, f"{path} cannot be read ({exc.strerror}); plugins not listed"
    if len(raw) > MAX_CONFIG_BYTES:
        return {}, f"{path} is larger than {MAX_CONFIG_BYTES} bytes; plugins not listed"
    try:
        return tomllib.loads(raw.decode("utf-8")), None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        return {}, f"{path} is not valid TOML ({exc}); plugins not listed"


def _feature_on(config: Mapping[str, Any], name: str) -> bool:
    features = config.get("features")
    return not (isinstance(features, dict) and features.get(name) is False)


def _version_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """Numbers compare as numbers (0.10.0 > 0.9.0); any other part sorts below them, as text."""
    return tuple((1, int(p)) if p.isdigit() else (0, p) for p in re.split(r"[.+-]", text))
