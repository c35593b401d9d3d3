"""fleet.toml for repo agents: `repo` instead of `cwd`, `base`, and where the worktrees live."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet.config import load_config
from fleet.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "fleet.toml"
    path.write_text(text)
    return path


STATE = '[fleet]\nstate_dir = "state"\n'


def test_a_repo_agent_works_in_its_worktree_under_the_state_dir(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, STATE + '[defaults]\nrepo = "shop"\n[agents.mila]\nhome = "h"\n'))
    mila = cfg.agent("mila")
    assert mila.repo == tmp_path / "shop"
    assert mila.base is None  # the repository's branch when the agent first starts
    assert cfg.worktree_root == tmp_path / "state" / "worktrees"
    assert mila.cwd == tmp_path / "state" / "worktrees" / "mila"


def test_worktrees_dir_and_base_are_taken_from_the_config(tmp_path: Path) -> None:
    text = ('[fleet]\nstate_dir = "state"\nworktrees_dir = "wt"\n[defaults]\nrepo = "shop"\nbase = "main"\n'
            '[agents.mila]\nhome = "h"\n[agents.bo]\nhome = "h2"\nrepo = "other"\nbase = "dev"\n')
    cfg = load_config(write(tmp_path, text))
    assert (cfg.agent("mila").cwd, cfg.agent("mila").base) == (tmp_path / "wt" / "mila", "main")
    assert (cfg.agent("bo").repo, cfg.agent("bo").base) == (tmp_path / "other", "dev")


def test_an_agents_own_cwd_replaces_a_default_repo(tmp_path: Path) -> None:
    text = STATE + '[defaults]\nrepo = "shop"\nbase = "main"\n[agents.mila]\nhome = "h"\ncwd = "plain"\n'
    mila = load_config(write(tmp_path, text)).agent("mila")
    assert (mila.cwd, mila.repo, mila.base) == (tmp_path / "plain", None, None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (STATE + '[agents.mila]\nhome = "h"\ncwd = "w"\nrepo = "shop"\n', "$.agents.mila: `cwd` and `repo`"),
        (STATE + '[agents.mila]\nhome = "h"\ncwd = "w"\nbase = "main"\n', "$.agents.mila.base"),
        (STATE + '[agents.mila]\nhome = "h"\nrepo = "shop"\nbase = "-x"\n', "$.agents.mila.base"),
        (STATE + '[defaults]\nbase = "a..b"\n[agents.mila]\nhome = "h"\nrepo = "s"\n', "$.defaults.base"),
    ],
)
def test_bad_repo_settings_name_the_key(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert expected in info.value.message
    assert info.value.code == "config_invalid"
    assert info.value.hint


@pytest.mark.parametrize(
    ("text", "key"),
    [
        # inside the repository itself
        ('[fleet]\nstate_dir = "st"\nworktrees_dir = "shop/.wt"\n[agents.mila]\nhome = "h"\nrepo = "shop"\n',
         "$.fleet.worktrees_dir"),
        # the default, under a state dir inside the repository
        ('[fleet]\nstate_dir = "shop/state"\n[agents.mila]\nhome = "h"\nrepo = "shop"\n', "$.fleet.state_dir"),
        # inside a writing agent's cwd
        ('[fleet]\nstate_dir = "st"\nworktrees_dir = "w/wt"\n[agents.mila]\nhome = "h"\nrepo = "shop"\n'
         '[agents.bo]\nhome = "h2"\ncwd = "w"\nrole = "worker"\n', "$.fleet.worktrees_dir"),
    ],
)
def test_the_worktrees_dir_never_lies_in_a_repository_or_a_writers_cwd(tmp_path: Path, text: str,
                                                                       key: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.data["key"] == key
    assert "worktrees dir" in info.value.message


def test_a_read_only_agents_cwd_may_hold_the_worktrees_dir(tmp_path: Path) -> None:
    text = ('[fleet]\nstate_dir = "st"\nworktrees_dir = "w/wt"\n[agents.mila]\nhome = "h"\nrepo = "shop"\n'
            '[agents.bo]\nhome = "h2"\ncwd = "w"\n')
    assert load_config(write(tmp_path, text)).agent("mila").cwd == tmp_path / "w" / "wt" / "mila"
