"""`fleet init`'s logic (`fleet.service.init`): roles and names, the rendered config that config
loading accepts for any fleet size and roles (with a repository: repo agents in worktrees), where
the agents work (a real git repository, or a plain directory and why), and the checks made before
anything is written."""

from __future__ import annotations

import re
import shutil
import tempfile
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import fleet_installed_in_temp
from gitrepos import git, make_repo
from hypothesis import given
from hypothesis import strategies as st

from fleet.agents.writable import exposures
from fleet.config import MAX_AGENTS, parse_config
from fleet.errors import CodexHomeMissing, ConfigExists, ControlPlaneExposed, InvalidInput
from fleet.service.init import (
    NO_TMP_ARGS,
    ROLES,
    TMP_NOTE,
    PlannedAgent,
    agent_names,
    agent_roles,
    describe,
    fleet_name,
    plan_init,
    render,
    toml_str,
    workplace,
    write_init,
)
from fleet.vocab import AGENT_NAME, FLEET_NAME

roles_st = st.lists(st.sampled_from(ROLES), min_size=1, max_size=MAX_AGENTS)


def test_no_role_makes_explorers_one_role_applies_to_all_and_one_per_agent_goes_in_order() -> None:
    assert agent_roles(3, []) == ["explorer"] * 3
    assert agent_roles(3, [], default="worker") == ["worker"] * 3
    assert agent_roles(2, ["explorer"], default="worker") == ["explorer", "explorer"]
    assert agent_roles(2, ["worker"]) == ["worker", "worker"]
    assert agent_roles(3, ["lead", "worker", "explorer"]) == ["lead", "worker", "explorer"]


@pytest.mark.parametrize(("count", "roles"), [(0, []), (MAX_AGENTS + 1, []), (3, ["worker", "lead"]),
                                              (1, ["boss"])])
def test_a_bad_count_or_role_list_is_invalid_input(count: int, roles: list[str]) -> None:
    with pytest.raises(InvalidInput):
        agent_roles(count, roles)


def test_names_count_per_role_and_a_single_lead_is_lead() -> None:
    assert agent_names(["worker", "explorer", "worker", "lead"]) == ["worker-1", "explorer-1", "worker-2", "lead"]
    assert agent_names(["lead", "lead"]) == ["lead-1", "lead-2"]


@given(st.text(max_size=80))
def test_any_directory_name_gives_a_valid_fleet_name(name: str) -> None:
    assert re.match(FLEET_NAME, fleet_name(Path("/x") / name.replace("/", "_").replace("\0", "")))


#: Config loading expands `$VARS` in paths, so a directory whose name holds a `$` is left out.
@given(roles_st, st.text(min_size=1, max_size=40).filter(lambda s: "\0" not in s and "$" not in s))
def test_any_fleet_size_roles_and_cwd_render_a_config_that_loading_accepts(roles: list[str], odd: str) -> None:
    names = agent_names(roles)
    assert len(set(names)) == len(names)
    assert all(re.match(AGENT_NAME, n) for n in names)
    home = Path.home()  # what `~` expands to when the config is loaded
    cwd = Path("/srv") / odd.replace("/", "_")
    agents = [PlannedAgent(n, r, home / f".codex-p-{n}", cwd, False) for n, r in zip(names, roles, strict=True)]
    text = render("p", home / ".local/state/fleet/p", agents, home)
    config = parse_config(tomllib.loads(text), Path("/etc/fleet.toml"))
    assert list(config.agents) == names
    assert [a.role for a in config.agents.values()] == roles
    assert all(a.cwd == cwd and a.home == home / f".codex-p-{a.name}" for a in config.agents.values())


#: As above; the repository lies outside the state dir, as `plan_init` checks.
@given(roles_st, st.text(min_size=1, max_size=40).filter(lambda s: "\0" not in s and "$" not in s),
       st.sampled_from(["main", None]))
def test_a_repo_fleet_renders_repo_agents_in_worktrees_and_a_lead_in_the_checkout(roles: list[str], odd: str,
                                                                                  base: str | None) -> None:
    home = Path.home()
    repo = Path("/srv") / odd.replace("/", "_")
    state_dir = home / ".local/state/fleet/p"
    names = agent_names(roles)
    agents = [PlannedAgent(n, r, home / f".codex-p-{n}", state_dir / "worktrees" / n if r != "lead" else repo,
                           False, repo if r != "lead" else None) for n, r in zip(names, roles, strict=True)]
    text = render("p", state_dir, agents, home, repo=repo, base=base)
    config = parse_config(tomllib.loads(text), Path("/etc/fleet.toml"))
    assert [a.role for a in config.agents.values()] == roles
    for agent in config.agents.values():
        if agent.role == "lead":
            assert (agent.repo, agent.cwd) == (None, repo)
        else:
            assert (agent.repo, agent.cwd, agent.base) == (repo, state_dir / "worktrees" / agent.name, None)
    assert "`fleet merge ID`" in text
    assert text.count("\ncwd = ") == roles.count("lead")


@given(st.text(max_size=60))
def test_toml_strings_read_back_as_written(text: str) -> None:
    assert tomllib.loads(f"v = {toml_str(text)}")["v"] == text


def test_paths_under_home_are_written_with_a_tilde() -> None:
    home = Path("/home/u")
    text = render("p", home / ".local/state/fleet/p", [PlannedAgent("w", "worker", home / ".codex-p-w",
                                                                   Path("/srv/r"), False)], home)
    assert 'state_dir = "~/.local/state/fleet/p"' in text
    assert 'home = "~/.codex-p-w"' in text


# ---- the checks before writing (real files in a temp HOME) ----------------------------------------

@pytest.fixture
def off_tmp(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A HOME outside /tmp: a workspace-write agent writes /tmp, so under tmp_path every worker would
    expose the homes and the state dir (which is what `test_a_home_under_tmp_...` shows)."""
    root = Path(tempfile.mkdtemp(prefix="fleet-init-", dir="/var/tmp"))
    (root / "home").mkdir()
    (root / "repo").mkdir()
    monkeypatch.setenv("HOME", str(root / "home"))
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.delenv("TMPDIR", raising=False)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_an_existing_file_is_refused_before_anything_else(tmp_path: Path) -> None:
    (tmp_path / "fleet.toml").write_text("mine\n")
    with pytest.raises(ConfigExists) as err:
        plan_init(agents=1, roles=[], repo=str(tmp_path), path=str(tmp_path / "fleet.toml"))
    assert err.value.code == "config_exists"
    assert (tmp_path / "fleet.toml").read_text() == "mine\n"


def test_a_worker_whose_cwd_holds_the_config_is_refused_as_doctor_would(off_tmp: Path) -> None:
    repo = off_tmp / "repo"
    with pytest.raises(ControlPlaneExposed) as err:
        plan_init(agents=1, roles=["worker"], repo=str(repo), path=str(repo / "fleet.toml"))
    assert "the config" in err.value.message
    assert not (repo / "fleet.toml").exists()


def test_fleets_files_under_tmp_keep_tmp_out_of_a_workers_sandbox(tmp_path: Path) -> None:
    """HOME, the config and the state dir under /tmp (as here), which a workspace-write agent writes
    by default: the config leaves /tmp and $TMPDIR out of the sandboxes, and so passes doctor's check."""
    (tmp_path / "repo").mkdir()
    plan = plan_init(agents=1, roles=["worker"], repo=str(tmp_path / "repo"), path=str(tmp_path / "f.toml"))
    config = parse_config(tomllib.loads(plan.text), plan.path)
    assert list(config.agent("worker-1").args) == list(NO_TMP_ARGS)
    assert exposures(config) == []
    assert any("/tmp" in note for note in describe(plan)["notes"])
    bare = render(plan.name, plan.state_dir, list(plan.agents), Path.home())  # without the exclusion
    assert exposures(parse_config(tomllib.loads(bare), plan.path)) != []


def test_a_worker_fleet_with_its_config_elsewhere_is_written_trusted_and_loads(off_tmp: Path) -> None:
    from fleet.config import load_config

    target = off_tmp / "home" / ".config" / "fleet" / "fleet.toml"
    plan = plan_init(agents=2, roles=["worker", "lead"], repo=str(off_tmp / "repo"), path=str(target))
    result = write_init(plan)
    assert result["written"]
    assert result["trusted"]
    assert target.stat().st_mode & 0o777 == 0o600
    config = load_config()
    assert config.name == "repo"
    assert {a.name: a.role for a in config.agents.values()} == {"worker-1": "worker", "lead": "lead"}
    assert [a["login"] for a in result["agents"]] == ["needed", "needed"]
    assert result["config_option"] == ""


def test_copy_auth_from_a_home_without_auth_json_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty-home").mkdir()
    with pytest.raises(CodexHomeMissing):
        plan_init(agents=1, roles=[], repo=str(tmp_path), path=str(tmp_path / "x" / "fleet.toml"),
                  copy_auth_from=str(tmp_path / "empty-home"))


def test_repo_must_be_a_directory(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput):
        plan_init(agents=1, roles=[], repo=str(tmp_path / "nope"), path=str(tmp_path / "fleet.toml"))


# ---- a git repository (real git, a HOME outside /tmp) --------------------------------------------

def test_a_git_repository_makes_workers_in_worktrees_and_the_config_may_live_in_the_checkout(off_tmp: Path) -> None:
    """A repo worker writes only its worktree under the state dir, so ./fleet.toml in the checkout is
    out of its reach (the same layout refused above for a plain cwd); its default state dir lies in
    the trust store's directory, which is no exposure either."""
    from fleet.config import load_config

    repo = make_repo(off_tmp / "home" / "shop")
    head = git(repo, "rev-parse", "HEAD")
    plan = plan_init(agents=3, roles=[], repo=str(repo / "."), path=str(repo / "fleet.toml"))
    notes = (TMP_NOTE,) if fleet_installed_in_temp() else ()
    assert (plan.place.repo, plan.place.base, plan.place.notes) == (repo, "main", notes)
    assert 'repo = "~/shop"' in plan.text
    assert "\ncwd = " not in plan.text
    result = write_init(plan)
    assert (result["repo"], result["base"], result["cwd_reason"]) == (str(repo), "main", None)
    worktrees = off_tmp / "home" / ".local" / "state" / "fleet" / "shop" / "worktrees"
    assert [(a["name"], a["role"], a["cwd"], a["repo"]) for a in result["agents"]] == [
        (f"worker-{i}", "worker", str(worktrees / f"worker-{i}"), str(repo)) for i in (1, 2, 3)]
    config = load_config(repo / "fleet.toml")
    assert all(a.repo == repo and a.cwd == worktrees / a.name for a in config.agents.values())
    assert git(repo, "status", "--porcelain") == "?? fleet.toml\n"
    assert git(repo, "rev-parse", "HEAD") == head


def test_a_subdirectory_names_its_repository_and_a_lead_reads_the_checkout(off_tmp: Path) -> None:
    repo = make_repo(off_tmp / "repo" / "shop", {"src/app.py": "a = 1\n"})
    plan = plan_init(agents=2, roles=["worker", "lead"], repo=str(repo / "src"),
                     path=str(off_tmp / "home" / "f.toml"))
    assert plan.name == "shop"
    assert plan.place.repo == repo
    lead = plan.agents[1]
    assert (lead.name, lead.repo, lead.cwd) == ("lead", None, repo)


def test_a_repository_without_a_commit_or_a_branch_says_what_up_needs(off_tmp: Path) -> None:
    empty = off_tmp / "repo" / "empty"
    empty.mkdir()
    git(empty, "init", "-q", "-b", "main")
    assert "no commit yet" in workplace(empty).notes[0]
    repo = make_repo(off_tmp / "repo" / "detached")
    git(repo, "checkout", "-q", "--detach")
    place = workplace(repo)
    assert place.base is None
    assert "set `base`" in place.notes[0]
    assert '(none now: set it)' in plan_init(agents=1, roles=[], repo=str(repo), path=str(off_tmp / "f.toml")).text


def test_a_plain_directory_keeps_a_shared_cwd_of_explorers_and_says_why(off_tmp: Path) -> None:
    plan = plan_init(agents=2, roles=[], repo=str(off_tmp / "repo"), path=str(off_tmp / "home" / "f.toml"))
    assert plan.place.repo is None
    assert "not in a git repository, so no worktrees" in str(plan.place.cwd_reason)
    assert [(a.role, a.cwd, a.repo) for a in plan.agents] == [("explorer", off_tmp / "repo", None)] * 2
    assert "\nrepo = " not in plan.text


def test_repo_workers_with_fleets_files_under_tmp_get_tmp_left_out(tmp_path: Path) -> None:
    """The test HOME is under /tmp here: repo workers' sandboxes leave /tmp out, and nothing is exposed."""
    repo = make_repo(tmp_path / "shop")
    plan = plan_init(agents=2, roles=[], repo=str(repo), path=str(tmp_path / "f.toml"))
    config = parse_config(tomllib.loads(plan.text), plan.path)
    assert [a.role for a in config.agents.values()] == ["worker", "worker"]
    assert all(list(a.args) == list(NO_TMP_ARGS) for a in config.agents.values())
    assert exposures(config) == []


def test_a_repository_holding_the_state_dir_is_refused_before_writing(off_tmp: Path) -> None:
    home = off_tmp / "home"
    make_repo(home / "sub")  # `make_repo` wants a new directory: make HOME itself the repository after
    git(home, "init", "-q", "-b", "main")
    git(home, "commit", "-q", "--allow-empty", "-m", "dotfiles")
    with pytest.raises(InvalidInput) as err:
        plan_init(agents=1, roles=[], repo=str(home), path=str(off_tmp / "f.toml"))
    assert "worktrees dir" in err.value.message
    assert not (off_tmp / "f.toml").exists()


def test_a_linked_worktree_or_a_submodule_is_named_by_its_own_top(off_tmp: Path) -> None:
    """`--show-toplevel`, not the git dir's parent: a submodule's git dir lies in the superproject."""
    repo = make_repo(off_tmp / "repo" / "shop")
    git(repo, "worktree", "add", "-q", "--detach", str(off_tmp / "repo" / "linked"))
    assert workplace(off_tmp / "repo" / "linked").repo == off_tmp / "repo" / "linked"
    lib = make_repo(off_tmp / "repo" / "lib")
    git(repo, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(lib), "lib")
    assert workplace(repo / "lib").repo == repo / "lib"
