"""The default state dir is the XDG state dir (`$XDG_STATE_HOME` if absolute, else ~/.local/state),
with fleet's own overrides first."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet.config import load_config

MINIMAL = '[fleet]\nname = "demo"\n[agents.mila]\nhome = "h"\ncwd = "w"\n'


def config(tmp_path: Path) -> Path:
    path = tmp_path / "fleet.toml"
    path.write_text(MINIMAL)
    return path


def test_an_absolute_xdg_state_home_holds_the_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert load_config(config(tmp_path)).state_dir == tmp_path / "xdg" / "fleet" / "demo"


@pytest.mark.parametrize("value", ["relative/dir", ""])
def test_a_relative_or_empty_xdg_state_home_is_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       value: str) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", value)
    assert load_config(config(tmp_path)).state_dir == Path.home() / ".local" / "state" / "fleet" / "demo"


def test_fleet_home_comes_before_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEET_HOME", str(tmp_path / "fh"))
    assert load_config(config(tmp_path)).state_dir == tmp_path / "fh"
