"""The README's "Dashboard" section lists exactly the keys the dashboard's `?` screen lists
(`fleet.dash.screens.KEYS`), in the same order and words, and shows the screenshot it names."""

from __future__ import annotations

from pathlib import Path

from fleet.dash.screens import KEYS

ROOT = Path(__file__).resolve().parent.parent


def dashboard_section() -> str:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("\n## Dashboard\n")
    end = readme.index("\n## ", start + 1)
    return readme[start:end]


def test_the_readme_lists_the_dashboards_keys() -> None:
    rows = dashboard_section().split("| key | what it does |\n|---|---|\n", 1)[1].split("\n\n", 1)[0]
    listed = []
    for row in rows.splitlines():
        key, what = (part.strip() for part in row.strip("|").split(" | ", 1))
        listed.append((key.strip("`"), what))
    assert listed == [(key, what) for key, what in KEYS]


def test_the_readme_shows_the_committed_screenshot() -> None:
    assert "](docs/dash.png)" in dashboard_section()
    assert (ROOT / "docs" / "dash.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
