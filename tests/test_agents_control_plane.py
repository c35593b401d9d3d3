"""fleet's control plane stays out of agents' reach: `up` and `doctor` refuse a state dir, a Codex
home, the config or fleet's install inside the writable roots of an agent that is not full-access,
and a state dir (or an agent dir in it) that is not the user's alone is refused outright.

No Codex runs here: every refusal comes before anything starts (the sandbox rules themselves were
measured with `codex sandbox`, see `fleet.agents.writable`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import Fleet
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet.agents.writable import Roots, cli_settings, find_exposures, writable_roots
from fleet.config import AgentSpec

#: `[defaults] args` keeping /tmp and $TMPDIR out of a worker's writable roots (test fleets live in /tmp).
NO_TMP = json.dumps(["-c", "sandbox_workspace_write.exclude_slash_tmp=true",
                     "-c", "sandbox_workspace_write.exclude_tmpdir_env_var=true"])


def spec(sandbox: Any = "workspace-write", args: tuple[str, ...] = (), env: dict[str, str] | None = None) -> AgentSpec:
    return AgentSpec(name="noor", home=Path("/h/noor"), cwd=Path("/w/noor"), role="worker", sandbox=sandbox,
                     codex="codex", args=args, env=env or {})


# ---- where an agent can write (pure) ---------------------------------------------------------------

def test_a_workspace_write_agent_writes_its_cwd_tmp_and_tmpdir() -> None:
    assert writable_roots(spec(), {}, {"TMPDIR": "/var/tmp/x"}).roots == (
        Path("/w/noor"), Path("/tmp"), Path("/var/tmp/x"))


def test_a_read_only_agent_writes_nothing_and_full_access_is_not_judged() -> None:
    assert writable_roots(spec("read-only"), {}, {}).roots == ()
    full = writable_roots(spec("workspace-write", ("--dangerously-bypass-approvals-and-sandbox",)), {}, {})
    assert full.full_access
    assert full.roots == ()


def test_exclusions_come_from_args_or_the_home_config_and_args_win() -> None:
    excluded = spec(args=("-c", "sandbox_workspace_write.exclude_slash_tmp=true",
                          "-c", "sandbox_workspace_write.exclude_tmpdir_env_var=true"))
    assert writable_roots(excluded, {}, {"TMPDIR": "/t"}).roots == (Path("/w/noor"),)
    home = {"sandbox_workspace_write": {"exclude_slash_tmp": True}}
    assert writable_roots(spec(), home, {}).roots == (Path("/w/noor"),)
    overridden = spec(args=("-c", "sandbox_workspace_write.exclude_slash_tmp=false"))
    assert Path("/tmp") in writable_roots(overridden, home, {}).roots


def test_extra_roots_from_writable_roots_add_dir_and_the_agents_own_tmpdir() -> None:
    args = ("-c", 'sandbox_workspace_write.writable_roots=["/data", "rel"]', "--add-dir", "/more", "--add-dir=/most",
            "-C", "/other")
    roots = writable_roots(spec(args=args, env={"TMPDIR": "/agent-tmp"}), {"sandbox_workspace_write": {
        "writable_roots": ["/from-home"]}}, {"TMPDIR": "/fleet-tmp"}).roots
    assert set(roots) == {Path(p) for p in ("/w/noor", "/tmp", "/agent-tmp", "/data", "/w/noor/rel", "/from-home",
                                             "/more", "/most", "/other")}


def test_anything_asking_for_writes_makes_a_read_only_agent_count_as_writing() -> None:
    for args in (("--full-auto",), ("-s", "workspace-write"), ("--sandbox=workspace-write",),
                 ("-c", 'sandbox_mode="workspace-write"')):
        assert writable_roots(spec("read-only", args), {}, {}).roots[0] == Path("/w/noor"), args
    profile = {"profile": "p", "profiles": {"p": {"sandbox_mode": "workspace-write"}}}
    assert writable_roots(spec("read-only"), profile, {}).roots[0] == Path("/w/noor")


def test_cli_settings_read_codex_style_overrides_last_first() -> None:
    assert cli_settings(["-c", "a.b=1", "--config", 'c="x"', "-cd=[1]", "--config=e=oops"]) == [
        {"e": "oops"}, {"d": [1]}, {"c": "x"}, {"a": {"b": 1}}]


_ARG = st.sampled_from([
    ("-c", "sandbox_workspace_write.exclude_slash_tmp=true"), ("-c", "sandbox_workspace_write.exclude_slash_tmp=false"),
    ("-c", "sandbox_workspace_write.exclude_tmpdir_env_var=true"), ("--add-dir", "/x"), ("-s", "read-only"),
    ("-s", "workspace-write"), ("--full-auto",), ("-c", 'sandbox_mode="read-only"'), ("-m", "gpt"),
    ("-c", 'sandbox_workspace_write.writable_roots=["/y"]'), ("-c", "sandbox_workspace_write=5")])


@settings(max_examples=300, deadline=None)
@given(chunks=st.lists(_ARG, max_size=6), base=st.sampled_from(["read-only", "workspace-write"]),
       home_excludes=st.booleans())
def test_roots_never_leave_out_what_codex_could_write(chunks: list[tuple[str, ...]], base: str,
                                                      home_excludes: bool) -> None:
    """Whatever the args: an agent that may write has its cwd among its roots; /tmp is left out
    only when the last word on `exclude_slash_tmp` says so; every --add-dir and writable root is in."""
    args = tuple(a for chunk in chunks for a in chunk)
    home = {"sandbox_workspace_write": {"exclude_slash_tmp": True}} if home_excludes else {}
    r = writable_roots(spec(base, args), home, {})
    writes = base == "workspace-write" or any(c in chunks for c in (("-s", "workspace-write"), ("--full-auto",)))
    if not writes:
        return
    assert Path("/w/noor") in r.roots
    tmp_flags = [c[1].endswith("true") for c in chunks if "exclude_slash_tmp" in c[-1] or c[-1].endswith("=5")]
    excluded = tmp_flags[-1] if tmp_flags else home_excludes
    assert (Path("/tmp") not in r.roots) == excluded
    if ("--add-dir", "/x") in chunks:
        assert Path("/x") in r.roots
    if ("-c", 'sandbox_workspace_write.writable_roots=["/y"]') in chunks:
        assert Path("/y") in r.roots


def test_a_protected_dir_is_exposed_when_inside_a_root_or_holding_one() -> None:
    roots = [Roots("noor", "workspace-write", (Path("/w/noor"),))]
    found = find_exposures(roots, [("the state dir", Path("/w/noor/.fleet"), True),
                                   ("the Codex home of noor", Path("/w"), True),
                                   ("fleet's interpreter", Path("/w"), False),
                                   ("the config", Path("/elsewhere/fleet.toml"), False)])
    assert [(e.what, e.root) for e in found] == [("the state dir", Path("/w/noor")),
                                                 ("the Codex home of noor", Path("/w/noor"))]


def test_the_trust_store_dir_holding_a_repo_workers_worktree_is_not_an_exposure_but_a_root_holding_it_is(
        tmp_path: Path) -> None:
    """The default state dir (`$XDG_STATE_HOME/fleet/<name>`) lies in the trust store's directory, so
    every repo agent's worktree does: writing below it touches none of the store's files."""
    from fleet.agents.writable import exposures
    from fleet.config import parse_config
    from fleet.config.trust import store_path

    raw = {"defaults": {"repo": str(tmp_path / "shop"), "role": "worker", "args": json.loads(NO_TMP)},
           "agents": {"noor": {"home": str(tmp_path / "homes" / "noor")}}}
    config = parse_config(raw, tmp_path / "conf" / "fleet.toml")
    assert config.state_dir.parent == store_path().parent
    assert exposures(config, environ={}) == []
    outer = {**raw, "agents": {"noor": {"home": str(tmp_path / "homes" / "noor"), "cwd": str(tmp_path)}}}
    found = exposures(parse_config(outer, tmp_path / "conf" / "fleet.toml"), environ={})
    assert "the trust store" in [e.what for e in found]


# ---- up and doctor ------------------------------------------------------------------------------

def run_json(fleet: Fleet, *args: str) -> tuple[int, Any]:
    proc = fleet.cli(*args, "--json")
    return proc.returncode, json.loads(proc.stdout)


def test_up_refuses_a_state_dir_inside_a_workers_cwd_and_doctor_says_so(fleet_factory: Callable[..., Fleet]) -> None:
    f = fleet_factory(1, agent_extra='role = "worker"\n', extra=f"args = {NO_TMP}")
    text = f.path.read_text().replace(f'state_dir = "{f.state_dir}"',
                                      f'state_dir = "{f.root / "work" / "agent-1" / ".fleet"}"')
    f.path.write_text(text)
    status, out = run_json(f, "up")
    assert status == 2
    assert out["error"]["code"] == "control_plane_exposed"
    assert "the state dir" in out["error"]["message"]
    assert "Move the state dir" in out["error"]["hint"]
    assert [(e["agent"], e["what"]) for e in out["error"]["exposures"]] == [("agent-1", "the state dir")]
    assert f.tmux("list-sessions").returncode != 0  # nothing started: no server at all
    _, doctor = run_json(f, "doctor")
    [check] = [c for c in doctor["checks"] if c["name"] == "control plane"]
    assert not check["ok"]
    assert "agent-1" in check["detail"]


def test_up_refuses_fleets_files_under_tmp_for_a_worker_that_may_write_tmp(fleet_factory: Callable[..., Fleet]) -> None:
    """The proven attack (issue 12, item 11): state under /tmp, a default workspace-write worker."""
    f = fleet_factory(1, agent_extra='role = "worker"\n')
    status, out = run_json(f, "up")
    assert status == 2
    assert out["error"]["code"] == "control_plane_exposed"
    assert {e["root"] for e in out["error"]["exposures"]} >= {os.path.realpath("/tmp")}
    assert "exclude_slash_tmp" in out["error"]["hint"]
    whats = {e["what"] for e in out["error"]["exposures"]}
    assert {"the state dir", "the config", "the Codex home of agent-1"} <= whats


def test_excluding_tmp_or_a_read_only_agent_leaves_nothing_exposed(fleet_factory: Callable[..., Fleet]) -> None:
    for f in (fleet_factory(1, agent_extra='role = "worker"\n', extra=f"args = {NO_TMP}"),
              fleet_factory(1)):  # explorers: read-only
        _, doctor = run_json(f, "doctor")
        [check] = [c for c in doctor["checks"] if c["name"] == "control plane"]
        assert check["ok"], check


def test_another_agents_home_inside_a_workers_cwd_is_refused(fleet_factory: Callable[..., Fleet]) -> None:
    f = fleet_factory(2, agent_extra='role = "worker"\n', extra=f"args = {NO_TMP}")
    inside = f.root / "work" / "agent-1" / "codex-home-2"
    f.path.write_text(f.path.read_text().replace(f'home = "{f.root / "homes" / "agent-2"}"', f'home = "{inside}"'))
    status, out = run_json(f, "up", "agent-2")  # starting agent-2 alone: agent-1 could still write its home
    assert status == 2
    assert [(e["agent"], e["what"]) for e in out["error"]["exposures"]] == [("agent-1", "the Codex home of agent-2")]


# ---- who may write the state dir ----------------------------------------------------------------

@pytest.mark.parametrize("where", ["", "agents", "agents/agent-1", "leases"])
@pytest.mark.parametrize("mode", [0o770, 0o707, 0o777])
def test_a_state_dir_others_can_write_is_refused(fleet_factory: Callable[..., Fleet], where: str, mode: int) -> None:
    f = fleet_factory(1)
    target = f.state_dir / where
    target.mkdir(parents=True, mode=0o700, exist_ok=True)
    target.chmod(mode)
    for command in (("status",), ("leases",), ("up",), ("claim", "agent-1")):
        proc = f.cli(*command, "--json")
        assert proc.returncode == 4, (command, proc.stdout)
        error = json.loads(proc.stdout)["error"]
        assert error["code"] == "state_dir_unusable"
        assert f"chmod 700 {target}" in error["hint"]
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr  # one clean line, no audit noise


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a directory to another user needs root")
def test_a_state_dir_owned_by_someone_else_is_refused(fleet_factory: Callable[..., Fleet]) -> None:
    f = fleet_factory(1)
    f.state_dir.mkdir(mode=0o700)
    os.chown(f.state_dir, 65534, 65534)
    status, out = run_json(f, "status")
    assert status == 4
    assert out["error"]["code"] == "state_dir_unusable"
    assert "not to you" in out["error"]["message"]


def test_a_private_state_dir_is_accepted_and_status_creates_nothing(fleet_factory: Callable[..., Fleet]) -> None:
    f = fleet_factory(1)
    status, _ = run_json(f, "status")
    assert status == 0
    assert not f.state_dir.exists()
    f.state_dir.mkdir(mode=0o755)  # readable by others is the user's business; writable is not
    assert run_json(f, "status")[0] == 0


def test_doctor_names_an_unsafe_state_dir_on_its_state_dir_line(fleet_factory: Callable[..., Fleet]) -> None:
    f = fleet_factory(1)
    f.state_dir.mkdir(mode=0o700)
    f.state_dir.chmod(0o777)
    _, doctor = run_json(f, "doctor")
    checks = {c["name"]: c for c in doctor["checks"]}
    assert checks["config"]["ok"]
    assert not checks["state_dir"]["ok"]
    assert "writable by group and others" in checks["state_dir"]["detail"]
    assert f"chmod 700 {f.state_dir}" in checks["state_dir"]["hint"]


@settings(max_examples=100, deadline=None)
@given(mode=st.integers(min_value=0, max_value=0o777))
def test_a_directory_is_private_exactly_when_group_and_others_cannot_write(
        tmp_path_factory: pytest.TempPathFactory, mode: int) -> None:
    from fleet.errors import StateDirError
    from fleet.fsutil import check_private_dir

    d = tmp_path_factory.mktemp("m")
    d.chmod(mode | 0o700)
    if mode & 0o022:
        with pytest.raises(StateDirError, match="writable by"):
            check_private_dir(d)
    else:
        check_private_dir(d)


def test_a_restart_is_refused_like_a_start_when_the_layout_exposes_fleets_files(
        fleet_factory: Callable[..., Fleet]) -> None:
    """The watchdog restarts a crashed agent from a timer: a config edited since `up` (a worker whose
    sandbox now reaches the state dir) must stop the restart as it stops `up`, before tmux or Codex."""
    from fleet.errors import ControlPlaneExposed
    from fleet.service import Service
    from fleet.service.agents import restart_agent

    f = fleet_factory(1, agent_extra='role = "worker"\n')
    svc = Service(str(f.path))
    with pytest.raises(ControlPlaneExposed, match="Not starting"):
        restart_agent(svc, svc.config.agent("agent-1"), None)
    assert not (f.root / "homes" / "agent-1").exists()  # nothing prepared
