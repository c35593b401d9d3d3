"""A repository's git dir, and symlinks on the way to it or to the worktrees dir, are fleet's to
guard: an agent that can write them (its own repository's included) can stage what fleet commits,
or retarget where a worktree path leads. Pure checks over real paths in tmp dirs."""

from __future__ import annotations

from pathlib import Path

from gitrepos import make_repo

from fleet.agents.writable import Roots, exposures, repo_exposures
from fleet.config import load_config


def config_with_linked_worktrees_dir(tmp_path: Path) -> Path:
    make_repo(tmp_path / "shop")
    (tmp_path / "real").mkdir()
    (tmp_path / "tmpdir").mkdir()
    (tmp_path / "tmpdir" / "wt").symlink_to(tmp_path / "real")
    path = tmp_path / "fleet.toml"
    path.write_text(f'[fleet]\nstate_dir = "state"\nworktrees_dir = "{tmp_path / "tmpdir" / "wt" / "wts"}"\n'
                    '[agents.mila]\nhome = "h"\nrepo = "shop"\n[agents.bo]\nhome = "h2"\ncwd = "plain"\n')
    return path


def test_a_root_holding_the_repositorys_git_dir_or_a_symlink_to_the_worktrees_is_an_exposure(tmp_path: Path) -> None:
    config = load_config(config_with_linked_worktrees_dir(tmp_path))
    real = tmp_path.resolve()
    found = repo_exposures([Roots("bo", "workspace-write", (real / "tmpdir",)),
                            Roots("mila", "workspace-write", (real / "real" / "wts" / "mila", real / "shop"))],
                           config)
    assert sorted((e.agent, e.path) for e in found) == [
        ("bo", real / "tmpdir" / "wt"), ("mila", real / "shop" / ".git")]


def test_roots_elsewhere_or_full_access_or_no_repo_agents_are_no_exposure(tmp_path: Path) -> None:
    config = load_config(config_with_linked_worktrees_dir(tmp_path))
    real = tmp_path.resolve()
    assert repo_exposures([Roots("bo", "workspace-write", (real / "plain",)),
                           Roots("mila", "danger-full-access", ())], config) == []
    plain = tmp_path / "plain.toml"
    plain.write_text('[fleet]\nstate_dir = "state"\n[agents.bo]\nhome = "h2"\ncwd = "tmpdir"\n')
    assert repo_exposures([Roots("bo", "workspace-write", (real,))], load_config(plain)) == []


def test_a_plain_worker_in_the_users_checkout_exposes_the_repo_agents_git_dir(tmp_path: Path) -> None:
    make_repo(tmp_path / "shop")
    path = tmp_path / "fleet.toml"
    path.write_text('[fleet]\nstate_dir = "state"\n[agents.mila]\nhome = "h"\nrepo = "shop"\n'
                    '[agents.bo]\nhome = "h2"\ncwd = "shop/docs"\nsandbox = "workspace-write"\n'
                    'args = ["--add-dir", "shop"]\n')
    (tmp_path / "shop" / "docs").mkdir()
    found = exposures(load_config(path), environ={})
    assert ("bo", (tmp_path / "shop" / ".git").resolve()) in {(e.agent, e.path) for e in found}
