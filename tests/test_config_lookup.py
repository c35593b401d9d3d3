"""Where fleet.toml is found: --config, $FLEET_CONFIG, ./fleet.toml, then the user config dir; and which one."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleet.config import find_config, load_config, user_config_path
from fleet.config.trust import trust
from fleet.errors import ConfigNotFound

MINIMAL = '[agents.mila]\nhome = "~/.codex-mila"\ncwd = "work"\n'
ORDER = ("--config", "$FLEET_CONFIG", "./fleet.toml", "user config dir")


def put(path: Path, agent: str = "mila") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(MINIMAL.replace("mila", agent))
    return path


def test_user_config_dir_is_used_from_any_directory_when_nothing_else_names_a_config(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    user = put(tmp_path / "xdg-config" / "fleet" / "fleet.toml", "zed")
    monkeypatch.chdir(tmp_path)  # no ./fleet.toml here
    cfg = load_config()
    assert (cfg.path, cfg.source, list(cfg.agents)) == (user, "user config dir", ["zed"])
    assert find_config().why == "no ./fleet.toml here, so the one in the user config dir"


def test_user_config_dir_defaults_to_dot_config_when_xdg_config_home_is_unset_or_relative(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """fleet ignores a relative $XDG_CONFIG_HOME (the XDG spec says so); HOME is tmp_path/home."""
    monkeypatch.chdir(tmp_path)
    for value in (None, "relative/dir"):
        if value is None:
            monkeypatch.delenv("XDG_CONFIG_HOME")
        else:
            monkeypatch.setenv("XDG_CONFIG_HOME", value)
        expected = Path.home() / ".config" / "fleet" / "fleet.toml"
        assert user_config_path() == expected
        put(expected)
        assert find_config().path == expected


def test_current_directory_wins_over_the_user_config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    put(user_config_path(), "zed")
    local = put(tmp_path / "here" / "fleet.toml", "bo")
    monkeypatch.chdir(local.parent)
    trust(local)  # a ./fleet.toml is used only once trusted (test_config_trust.py)
    cfg = load_config()
    assert (cfg.path, cfg.source, list(cfg.agents)) == (local, "./fleet.toml", ["bo"])


def test_a_named_config_that_is_missing_fails_instead_of_falling_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    put(user_config_path())
    monkeypatch.chdir(put(tmp_path / "here" / "fleet.toml").parent)
    monkeypatch.setenv("FLEET_CONFIG", str(tmp_path / "gone.toml"))
    with pytest.raises(ConfigNotFound, match=r"gone\.toml \(from \$FLEET_CONFIG\)"):
        find_config()
    with pytest.raises(ConfigNotFound, match=r"nope\.toml \(from --config\)"):
        find_config(tmp_path / "nope.toml")


def test_no_config_anywhere_names_every_place_looked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigNotFound) as err:
        find_config()
    assert str(tmp_path / "fleet.toml") in err.value.message
    assert str(user_config_path()) in err.value.message
    assert str(user_config_path()) in err.value.hint


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(named=st.lists(st.booleans(), min_size=4, max_size=4), exists=st.lists(st.booleans(), min_size=4, max_size=4))
def test_the_first_source_that_names_a_config_decides(
        tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch,
        named: list[bool], exists: list[bool]) -> None:
    """Sources in order: --config and $FLEET_CONFIG name a file when given; ./fleet.toml and the user
    config dir only when the file exists. The first source that names a file decides, and a named file
    that does not exist is an error, never a reason to look further."""
    root = tmp_path_factory.mktemp("lookup")
    paths = [root / "explicit.toml", root / "env.toml", root / "cwd" / "fleet.toml",
             root / "xdg" / "fleet" / "fleet.toml"]
    (root / "cwd").mkdir()
    monkeypatch.chdir(root / "cwd")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(root / "xdg"))
    monkeypatch.delenv("FLEET_CONFIG", raising=False)
    for path, there in zip(paths, exists, strict=True):
        if there:
            put(path)
    if named[1]:
        monkeypatch.setenv("FLEET_CONFIG", str(paths[1]))
    explicit = paths[0] if named[0] else None
    deciding = next((i for i in range(4) if (named[i] if i < 2 else exists[i])), None)
    if deciding is None or not exists[deciding]:
        with pytest.raises(ConfigNotFound):
            find_config(explicit)
    else:
        found = find_config(explicit)
        assert (found.path, found.source) == (paths[deciding].resolve(), ORDER[deciding])
