"""Build hook, nothing else (the metadata is in pyproject.toml).

The wheel must carry the Codex plugin (`plugin/`) and the skills (`skills/`), which live at the top of
the repository so that each has one source. `build_py` copies both into the built package as
`fleet/_bundle/plugin` and `fleet/_bundle/skills` (symlinks followed, so the wheel holds real files);
`fleet.install.bundle` finds them there, or in the checkout for an editable install.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
BUNDLED = ("plugin", "skills")


class BuildPyWithBundle(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):  # editable installs read the checkout itself
            return
        for name in BUNDLED:
            dest = Path(self.build_lib) / "fleet" / "_bundle" / name
            shutil.rmtree(dest, ignore_errors=True)
            shutil.copytree(ROOT / name, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildPyWithBundle})
