"""The web view in a real headless browser (Debian's chromium, which scripts/setup installs): the page
served by `fleet dash --web --read-only` connects its websocket, the dashboard process draws the
cockpit, and the browser's PNG of it is a real image of the agent table. No Codex (the agents stay
stopped); `scripts/dash-screenshot` takes the same picture of a fleet of real Codex agents.

Without chromium these tests fail rather than skip: the browser runs here, so a run without it has not
tested the web view."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from browsershot import MAX_SPLASH_SHARE, MIN_COLOURS, BlankScreenshot, chromium_path, shoot
from conftest import Fleet
from dashweb import served

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def chromium() -> None:
    if chromium_path() is None:
        pytest.fail("chromium is not installed: run scripts/setup (it installs Debian's chromium).")


def test_a_headless_browser_draws_the_cockpit_with_every_agent(fleet_factory: Callable[..., Fleet],
                                                              tmp_path: Path) -> None:
    f = fleet_factory(2)
    with served(f, "--read-only") as url:
        shot = shoot(url, tmp_path / "dash.png", expect="agent-2")
    png = shot.path.read_bytes()
    assert png.startswith(PNG_SIGNATURE)
    assert (int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")) == (1400, 900)  # IHDR
    assert (shot.width, shot.height) == (1400, 900)
    assert shot.colours >= MIN_COLOURS
    assert shot.splash_share <= MAX_SPLASH_SHARE
    drawn = shot.plain_text
    for words in ("agent-1", "agent-2", "stopped", "agents", "assignments", "approvals waiting", "(read-only)"):
        assert words in drawn, words


def test_a_page_that_never_draws_the_expected_text_is_refused(fleet_factory: Callable[..., Fleet],
                                                             tmp_path: Path) -> None:
    f = fleet_factory(1)
    with served(f, "--read-only") as url, pytest.raises(BlankScreenshot, match="has not drawn 'agent-9'"):
        shoot(url, tmp_path / "dash.png", expect="agent-9", timeout=8)
    assert not (tmp_path / "dash.png").exists()
