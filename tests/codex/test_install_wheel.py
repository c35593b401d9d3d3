"""The wheel carries the Codex plugin: built from a copy of the sources, installed into a throw-away
venv, and installed into a Codex home from there (not from the checkout)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from conftest import REPO, require_offline

from fleet import __version__

pytestmark = pytest.mark.timeout(600)

#: The project files a build reads (the package's symlinks point into plugin/, skills/ and systemd/).
SOURCES = ("pyproject.toml", "README.md", "fleet", "plugin", "skills", "systemd")


def run(*argv: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 300) -> str:
    proc = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout, check=False,
                          stdin=subprocess.DEVNULL, env=env, cwd=cwd)
    assert proc.returncode == 0, f"{argv[:3]} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def test_the_wheel_carries_the_plugin_and_installs_it_from_site_packages(tmp_path: Path, codex_bin: str) -> None:
    require_offline()
    src = tmp_path / "src"
    src.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPO / name, src / name)
    # No build isolation and no index: the build uses this venv's setuptools (the `test` extra pins one
    # that builds wheels itself), so the test needs no package index.
    run(sys.executable, "-m", "pip", "wheel", src, "--no-deps", "--no-build-isolation", "--no-index", "-q",
        "-w", tmp_path / "dist")
    [wheel] = (tmp_path / "dist").glob("fleet-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    bundled = {n.removeprefix("fleet/install/") for n in names if n.startswith(("fleet/install/plugin/",
                                                                                  "fleet/install/skills/"))}
    assert bundled == {"plugin/.codex-plugin/plugin.json", "plugin/.mcp.json",
                       "plugin/.agents/plugins/marketplace.json",
                       *(p.relative_to(REPO).as_posix() for p in (REPO / "skills").glob("*/SKILL.md"))}
    for rel in bundled:
        info = zipfile.ZipFile(wheel).getinfo(f"fleet/install/{rel}")
        assert not stat.S_ISLNK(info.external_attr >> 16)
        assert zipfile.ZipFile(wheel).read(info) == (REPO / rel).read_bytes()

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    run(sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "--no-deps", "--no-index",
        "-q", wheel)
    home = tmp_path / "codex-home"
    home.mkdir()
    # The dependencies come from this venv's site-packages on PYTHONPATH; fleet itself does not (it is
    # an editable install there, which only a .pth file makes importable, and PYTHONPATH runs none).
    env = {**os.environ, "PYTHONPATH": sysconfig.get_paths()["purelib"]}
    script = (
        "import json, sys, fleet, fleet.install as i\n"
        "src = i.plugin_source()\n"
        "res = i.install(__import__('pathlib').Path(sys.argv[1]), codex=sys.argv[2])\n"
        "print(json.dumps({'file': fleet.__file__, 'origin': src.origin, 'plugin_dir': str(src.plugin_dir),"
        " **res}))\n"
    )
    # Not from the checkout: `python -c` puts its cwd first on sys.path.
    out = json.loads(run(venv / "bin" / "python", "-c", script, home, codex_bin, env=env, cwd=tmp_path))
    site = venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    assert out["file"] == str(site / "fleet" / "__init__.py")
    assert (out["origin"], out["plugin_dir"]) == ("wheel", str(site / "fleet" / "install" / "plugin"))
    assert out["changes"] == ["rendered", "marketplace_added", "plugin_installed"]
    assert out["mcp_command"] == [str(venv / "bin" / "python"), "-P", "-m", "fleet", "mcp"]
    cache = home / "plugins" / "cache" / "fleet" / "fleet" / __version__
    server = json.loads((cache / ".mcp.json").read_text())["mcpServers"]["fleet"]
    assert server["command"] == str(venv / "bin" / "python")
    assert (cache / "skills" / "fleet-report" / "SKILL.md").read_bytes() == \
           (REPO / "skills" / "fleet-report" / "SKILL.md").read_bytes()
