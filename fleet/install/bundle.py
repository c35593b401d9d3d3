"""The Codex plugin's files: found next to this module, rendered into an installable marketplace.

One source: the plugin template is the top-level `plugin/` folder (manifest, `.mcp.json`, marketplace
file) and its skills are the top-level `skills/*/`. This package reaches both through the symlinks
`fleet/install/plugin` and `fleet/install/skills`; a wheel stores them as real files (package data),
so a checkout, an editable install and a wheel all read them at the same place.

Codex installs a plugin by copying its folder, and that copy drops symlinks (measured on 0.169), so
the installable folder is rendered as real files: `render(template, server_argv)` (pure) puts the
skills next to the manifest and points `.mcp.json` at this very fleet (`python -P -m fleet mcp` with an
absolute interpreter path, which works whether or not `fleet` is on the PATH Codex passes on), and
`write_marketplace` writes that tree under fleet's data dir. The folder is its own marketplace root
(`.agents/plugins/marketplace.json` names the plugin at `./`).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from fleet.errors import PluginBundleMissing

#: The plugin's name and its marketplace's name: Codex calls it `fleet@fleet`.
PLUGIN_NAME: Final = "fleet"
MARKETPLACE_NAME: Final = "fleet"
PLUGIN_ID: Final = f"{PLUGIN_NAME}@{MARKETPLACE_NAME}"
#: The MCP server's key in `.mcp.json`; the model sees its tools in the namespace `mcp__fleet`.
SERVER_NAME: Final = "fleet"
MANIFEST: Final = ".codex-plugin/plugin.json"
MCP_JSON: Final = ".mcp.json"
MARKETPLACE_JSON: Final = ".agents/plugins/marketplace.json"
#: The files taken from `plugin/`; its README and anything else stay out of the installed copy.
TEMPLATE_FILES: Final = (MANIFEST, MCP_JSON, MARKETPLACE_JSON)
#: Where the skills go inside the plugin (the manifest's `skills` entry says the same).
SKILLS_PREFIX: Final = "skills/"
#: A skill is a folder with this file; other files in the folder travel with it.
SKILL_FILE: Final = "SKILL.md"
#: Skills are a few KB of Markdown: anything bigger under skills/ is a mistake, not a skill.
MAX_SKILL_FILE: Final = 256 * 1024

_HERE: Final = Path(__file__).resolve().parent


@dataclass(frozen=True)
class PluginSource:
    """Where the plugin template (`plugin_dir`) and the skills (`skills_dir`) are read from.

    `origin` is `checkout` when they are the repository's own folders (through the package's
    symlinks: a checkout or an editable install) and `wheel` when they are installed copies.
    """

    plugin_dir: Path
    skills_dir: Path
    origin: Literal["wheel", "checkout"]


def plugin_source(package_dir: Path = _HERE) -> PluginSource:
    """The plugin and skills folders beside this module (`package_dir/plugin`, `package_dir/skills`).

    Raises PluginBundleMissing when there is no plugin manifest there (a broken install, or a wheel
    built by a tool that dropped the package data).
    """
    plugin, skills = package_dir / "plugin", package_dir / "skills"
    if not (plugin / MANIFEST).is_file():
        raise PluginBundleMissing(
            f"fleet's Codex plugin files are not installed with the package (no {plugin / MANIFEST}).",
            hint="Reinstall fleet (`pip install --force-reinstall fleet`, or `pip install .` in a checkout).",
        )
    return PluginSource(plugin, skills, "checkout" if plugin.is_symlink() else "wheel")


def read_template(source: PluginSource) -> dict[str, bytes]:
    """The template files and every skill folder's files, as `relative path -> content`.

    Symlinks inside the tree are followed (a checkout may link a skill in); files named like caches
    are skipped. Raises PluginBundleMissing if a template file is missing.
    """
    files: dict[str, bytes] = {}
    for rel in TEMPLATE_FILES:
        path = source.plugin_dir / rel
        try:
            files[rel] = path.read_bytes()
        except OSError as exc:
            raise PluginBundleMissing(f"The plugin template file {path} cannot be read: {exc.strerror or exc}.",
                                      hint="Restore it from the fleet repository.") from exc
    if source.skills_dir.is_dir():
        for skill in sorted(p for p in source.skills_dir.iterdir() if (p / SKILL_FILE).is_file()):
            for path in sorted(skill.rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                    if path.stat().st_size > MAX_SKILL_FILE:
                        raise PluginBundleMissing(f"{path} is larger than {MAX_SKILL_FILE} bytes.",
                                                  hint="Skills are short Markdown files; move data elsewhere.")
                    files[SKILLS_PREFIX + path.relative_to(source.skills_dir).as_posix()] = path.read_bytes()
    return files


def server_argv() -> list[str]:
    """How Codex should start this fleet's MCP server: this interpreter, by absolute path. `-P`:
    Codex starts it in the session's directory, which an agent may write, and `-m` alone would
    import a planted `fleet/` or `json.py` from there."""
    return [sys.executable, "-P", "-m", "fleet", "mcp"]


def render(template: Mapping[str, bytes], argv: Sequence[str]) -> dict[str, bytes]:
    """The installable plugin tree: `template` with the fleet server's command set to `argv`.

    Pure. Only `command` and `args` of the `fleet` server change; every other file and key is kept
    as it is. Rendering a rendered tree again with the same `argv` changes nothing.
    """
    if not argv:
        raise ValueError("argv must name a command")
    mcp = json.loads(template[MCP_JSON])
    server = mcp["mcpServers"][SERVER_NAME]
    server["command"], server["args"] = argv[0], list(argv[1:])
    out = dict(template)
    out[MCP_JSON] = (json.dumps(mcp, indent=2) + "\n").encode()
    return out


def plugin_version(template: Mapping[str, bytes]) -> str:
    """The version in the plugin manifest (Codex caches the installed copy under it)."""
    return str(json.loads(template[MANIFEST])["version"])


def read_tree(root: Path) -> dict[str, bytes] | None:
    """Every regular file under `root` as `relative path -> content`, or None if `root` is no directory."""
    if not root.is_dir():
        return None
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


def write_marketplace(dest: Path, files: Mapping[str, bytes]) -> bool:
    """Make `dest` hold exactly `files`; return False when it already did (nothing written).

    The tree is written beside `dest` and swapped in by two renames, so a reader sees the old or the
    new tree, never a half-written one. The caller serialises concurrent writers (install holds a lock).
    """
    if read_tree(dest) == dict(files):
        return False
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.new")
    old = dest.with_name(f".{dest.name}.{os.getpid()}.old")
    for leftover in (tmp, old):
        shutil.rmtree(leftover, ignore_errors=True)
    for rel, data in files.items():
        path = tmp / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    if dest.exists():
        dest.rename(old)
    tmp.rename(dest)
    shutil.rmtree(old, ignore_errors=True)
    return True
