"""fleet.toml: lookup, validation errors that name the file and key path, and path resolution."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet.config import load_config
from fleet.config.trust import trust
from fleet.errors import ConfigError, ConfigNotFound, UnknownAgent


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "fleet.toml"
    path.write_text(text)
    return path


MINIMAL = '[agents.mila]\nhome = "~/.codex-mila"\ncwd = "work"\n'


def test_minimal_config_gets_documented_defaults(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, MINIMAL))
    mila = cfg.agent("mila")
    assert cfg.name == "fleet"
    assert cfg.state_dir == tmp_path / "xdg-state" / "fleet" / "fleet"
    assert mila.home == Path.home() / ".codex-mila"
    assert mila.cwd == tmp_path / "work"
    assert (mila.role, mila.sandbox, mila.codex, mila.model) == ("explorer", "read-only", "codex", None)


def test_defaults_apply_to_every_agent_and_agents_override_them(tmp_path: Path) -> None:
    text = (
        '[fleet]\nname = "demo"\nstate_dir = "st"\n[defaults]\ncodex = "/opt/codex"\nargs = ["-c", "x=1"]\n'
        'env = { A = "1" }\nrole = "worker"\n' + MINIMAL + '[agents.bo]\nhome = "h"\ncwd = "w"\nrole = "explorer"\n'
        'model = "gpt-5.4-mini"\nsandbox = "danger-full-access"\n'
    )
    cfg = load_config(write(tmp_path, text))
    assert cfg.state_dir == tmp_path / "st"
    assert cfg.agent("mila").sandbox == "workspace-write"
    assert cfg.agent("mila").args == ("-c", "x=1")
    bo = cfg.agent("bo")
    assert (bo.role, bo.sandbox, bo.model, bo.codex, bo.env) == (
        "explorer", "danger-full-access", "gpt-5.4-mini", "/opt/codex", {"A": "1"})


def test_state_dir_comes_from_fleet_home_when_not_configured(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEET_HOME", str(tmp_path / "fh"))
    assert load_config(write(tmp_path, MINIMAL)).state_dir == tmp_path / "fh"


def test_config_is_found_through_the_environment_then_the_current_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, MINIMAL)
    monkeypatch.chdir(tmp_path)
    trust(path)  # a ./fleet.toml is used only once trusted (test_config_trust.py)
    assert load_config().path == path
    other = tmp_path / "sub"
    other.mkdir()
    (other / "f.toml").write_text(MINIMAL.replace("mila", "zed"))
    monkeypatch.setenv("FLEET_CONFIG", str(other / "f.toml"))
    assert list(load_config().agents) == ["zed"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (MINIMAL + 'colour = "red"\n', "$.agents.mila: unknown key"),
        ("[agents.Mila]\nhome = 'h'\ncwd = 'w'\n", "$.agents: 'Mila' does not match"),
        ("[agents.mila]\nhome = 'h'\n", "$.agents.mila: 'cwd' is a required property"),
        (MINIMAL + 'role = "boss"\n', "$.agents.mila.role"),
        ('[fleet]\nname = "My Fleet"\n' + MINIMAL, "$.fleet.name"),
        ('[defaults]\nhome = "x"\n' + MINIMAL, "$.defaults: unknown key"),
        ("[agents]\n", "$.agents"),
        (MINIMAL + "args = '-x'\n", "$.agents.mila.args"),
        (MINIMAL + "account = 'auth:0123'\n", "$.agents.mila.account: 'auth:0123' is not an account label"),
        (MINIMAL + "account = ''\n", "$.agents.mila.account"),
    ],
)
def test_invalid_configs_name_the_file_and_the_key_path(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in info.value.message
    assert expected in info.value.message
    assert info.value.code == "config_invalid"
    assert info.value.hint


def test_malformed_toml_is_a_config_error_with_the_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"not valid TOML.*line 2"):
        load_config(write(tmp_path, "[agents.mila]\nhome = \n"))


def test_more_than_a_hundred_agents_is_refused(tmp_path: Path) -> None:
    text = "".join(f"[agents.a{i}]\nhome = 'h{i}'\ncwd = 'w'\n" for i in range(101))
    with pytest.raises(ConfigError, match=r"\$\.agents"):
        load_config(write(tmp_path, text))


def test_missing_config_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(ConfigNotFound, match=r"nope\.toml"):
        load_config(tmp_path / "nope.toml")


def test_unknown_agent_lists_the_configured_ones(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, MINIMAL))
    with pytest.raises(UnknownAgent) as info:
        cfg.agent("bob")
    assert "mila" in info.value.hint


def test_watchdog_table_is_parsed_into_the_policy(tmp_path: Path) -> None:
    cfg = tmp_path / "fleet.toml"
    (tmp_path / "w").mkdir()
    cfg.write_text('[agents.mila]\nhome = "h"\ncwd = "w"\nrole = "lead"\n\n'
                   '[watchdog]\nidle_after = "2m"\nlead = "mila"\n')
    config = load_config(cfg)
    assert config.watchdog.idle_after == 120
    assert config.watchdog.lead == "mila"
    assert config.agents["mila"].sandbox == "read-only"


def test_a_bad_watchdog_key_names_its_path(tmp_path: Path) -> None:
    cfg = tmp_path / "fleet.toml"
    cfg.write_text('[agents.mila]\nhome = "h"\ncwd = "w"\n\n[watchdog]\nidle_after = "soon"\n')
    with pytest.raises(ConfigError) as info:
        load_config(cfg)
    assert "$.watchdog.idle_after" in info.value.message


def test_a_budget_in_defaults_applies_to_every_agent_and_an_agent_s_own_wins(tmp_path: Path) -> None:
    text = '[defaults]\nbudget = "200k"\n' + MINIMAL + '[agents.bo]\nhome = "h"\ncwd = "w"\nbudget = 5000\n'
    cfg = load_config(write(tmp_path, text))
    assert (cfg.agent("mila").budget, cfg.agent("bo").budget) == (200_000, 5000)
    assert load_config(write(tmp_path, MINIMAL)).agent("mila").budget is None


@pytest.mark.parametrize(("text", "key", "why"), [
    ('[defaults]\nbudget = "0"\n' + MINIMAL, "$.defaults.budget", "at least 1 token"),
    (MINIMAL + 'budget = "lots"\n', "$.agents.mila.budget", "not a positive number"),
    (MINIMAL + "budget = -3\n", "$.agents.mila.budget", "at least 1 token"),
    (MINIMAL + "budget = 1.5\n", "$.agents.mila.budget", "is not of type"),
])
def test_a_bad_budget_names_its_key_path(tmp_path: Path, text: str, key: str, why: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert info.value.code == "config_invalid"
    assert f"{key}: " in info.value.message
    assert why in info.value.message
    assert info.value.hint
