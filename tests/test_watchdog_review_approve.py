"""Review of the approve policy (issue 12, hole 2) as merged: inputs the hook ALLOWS although the
command then does something the policy promises it cannot. Real files, real bash, the real hook
decision (`approve.decide`); the command is then run as Codex runs an approved one (unsandboxed,
`bash -c`/`bash -lc` in the payload's cwd) to show the effect.

Every break found here is fixed now (the symlinked `cp`/`rm` lines and the login profile's PATH were
strict xfails until they were). In these tests the "outside" file lives under the test's temp dir (and so under
/tmp); it stands for `~/.bashrc` or any other file of the user's: the judge never looks at where an
argument leads, so its place does not change the verdict.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Fleet

from fleet.config.watchdog import ApprovalPolicy
from fleet.hooks import approve
from fleet.hooks.programs import program_problem
from fleet.watchdog import policyfile
from fleet.watchdog.approval import judge

SYSTEM_PATH = "/usr/bin:/bin"


def agent_dir(tmp_path: Path, policy: ApprovalPolicy, cwd: Path) -> Path:
    path = tmp_path / "state" / "agents" / "agent-1"
    path.mkdir(parents=True)
    policyfile.sync(path, policy, cwd)
    return path


def run_as_codex(command: str, cwd: Path, env: dict[str, str], login: bool = False) -> None:
    """What Codex does with an approved command: the shell runs it in the cwd, outside the sandbox."""
    subprocess.run(["/bin/bash", "-lc" if login else "-c", command], cwd=cwd, env=env, timeout=10,
                   capture_output=True, check=False)


@pytest.mark.parametrize(
    ("line", "plant"),
    [
        # the destination is a symlink the agent planted: cp writes through it
        ("cp dist/app.js public/app.js", "public/app.js"),
        # a directory on the path is a symlink: the copy lands in the directory it points to
        ("cp dist/app.js public/js/app.js", "public/js"),
    ],
)
def test_a_listed_copy_never_writes_through_a_planted_symlink(tmp_path: Path, line: str, plant: str) -> None:
    outside = tmp_path / "user"  # stands for the user's home: no agent may write it
    outside.mkdir()
    victim = outside / "app.js"
    victim.write_text("the user's file\n")
    work = tmp_path / "work"
    (work / "dist").mkdir(parents=True)
    (work / "public").mkdir()
    (work / "dist" / "app.js").write_text("echo pwned\n")
    (work / plant).symlink_to(victim if plant.endswith(".js") else outside)
    env = {"PATH": SYSTEM_PATH, "HOME": "/nonexistent-fleet-home"}
    policy = ApprovalPolicy(commands=(tuple(line.split(" ")),), otherwise="ask")
    answer = approve.decide(agent_dir(tmp_path, policy, work), "Bash", line, cwd=str(work), env=env)
    if answer is not None and answer[0] == "allow":
        run_as_codex(line, work, env)
    assert victim.read_text() == "the user's file\n"


def test_a_listed_remove_never_deletes_through_a_planted_symlink(tmp_path: Path) -> None:
    outside = tmp_path / "user"
    (outside / "cache").mkdir(parents=True)
    (outside / "cache" / "keep").write_text("the user's file\n")
    work = tmp_path / "work"
    work.mkdir()
    (work / "build").symlink_to(outside)
    env = {"PATH": SYSTEM_PATH, "HOME": "/nonexistent-fleet-home"}
    line = "rm -rf build/cache"
    policy = ApprovalPolicy(commands=(("rm", "-rf", "build/cache"),), otherwise="ask")
    answer = approve.decide(agent_dir(tmp_path, policy, work), "Bash", line, cwd=str(work), env=env)
    if answer is not None and answer[0] == "allow":
        run_as_codex(line, work, env)
    assert (outside / "cache" / "keep").exists()


def test_a_read_only_command_never_runs_a_program_the_login_profile_finds_in_the_cwd(tmp_path: Path) -> None:
    home = tmp_path / "user"  # the user's home: outside every root but /tmp (tests live there) ...
    home.mkdir()
    # ... a common line in a user's profile (npm's advice for local binaries)
    (home / ".profile").write_text('PATH="./node_modules/.bin:$PATH"\n')
    work = tmp_path / "work"
    (work / "node_modules" / ".bin").mkdir(parents=True)
    planted = work / "node_modules" / ".bin" / "cat"
    planted.write_text("#!/bin/sh\ntouch \"$HOME/../PWNED\"\n")
    planted.chmod(0o755)
    (work / "README.md").write_text("hello\n")
    env = {"PATH": SYSTEM_PATH, "HOME": str(home)}
    policy = ApprovalPolicy(allow=frozenset({"read-only"}), otherwise="ask")
    # The hook adds /tmp to the roots, and this test lives under /tmp: judge with the roots a real
    # agent in `work` has when the user's home is elsewhere (the cwd alone).
    verdict = judge(policy, "Bash", "cat README.md",
                    program_check=lambda p: program_problem(p, env, (str(work),)))
    if verdict.decision == "allow":
        run_as_codex("cat README.md", work, env, login=True)
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("where", ["agent-2's cwd", "agent-1's extra writable root"])
def test_a_read_only_command_never_runs_a_program_another_agent_could_plant(
        fleet_factory: Callable[..., Fleet], monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    """The program check used to count only the asking agent's cwd (and the temp dirs) as writable. A
    PATH entry inside ANOTHER agent's cwd (a project venv or node_modules/.bin on the user's PATH), or
    in a `writable_roots` entry of an agent's Codex config, ran that agent's planted program outside
    every sandbox. Now the hook gets every sandboxed agent's roots with the policy."""
    from fleet.agents.writable import fleet_roots
    from fleet.config import load_config
    from fleet.hooks import programs

    f = fleet_factory(2, agent_extra='sandbox = "workspace-write"')
    work1, work2 = (f.root / "work" / a for a in ("agent-1", "agent-2"))
    extra = f.root / "shared-cache"
    (f.root / "homes" / "agent-1").mkdir(parents=True)
    (f.root / "homes" / "agent-1" / "config.toml").write_text(
        f'[sandbox_workspace_write]\nwritable_roots = ["{extra}"]\n')
    bindir = (work2 if where == "agent-2's cwd" else extra) / ".venv" / "bin"
    bindir.mkdir(parents=True)
    (bindir / "cat").write_text(f"#!/bin/sh\ntouch {f.root}/PWNED\n")
    (bindir / "cat").chmod(0o755)
    (work1 / "README.md").write_text("hello\n")
    config = load_config(f.path)
    adir = f.state_dir / "agents" / "agent-1"
    policyfile.sync_agents([(adir, work1)], ApprovalPolicy(allow=frozenset({"read-only"}), otherwise="deny"),
                            create=True, roots=fleet_roots(config))
    # The fleet lives under /tmp here, which counts as writable anyway: judge as on a machine whose
    # projects live elsewhere (no temp roots), so only the roots fleet hands the hook can refuse.
    monkeypatch.setattr(programs, "TEMP_ROOTS", ())
    env = {"PATH": f"{bindir}:{SYSTEM_PATH}", "HOME": "/nonexistent-fleet-home"}
    answer = approve.decide(adir, "Bash", "cat README.md", cwd=str(work1), env=env)
    if answer is not None and answer[0] == "allow":
        run_as_codex("cat README.md", work1, env)
    assert not (f.root / "PWNED").exists()
    assert answer is not None
    assert answer[0] == "deny"
    assert f"PATH holds {bindir}, a directory the agent may write" in answer[1]


@pytest.mark.parametrize("where", ["outside", "work/link", "work/../outside"])
def test_a_listed_command_is_allowed_only_in_the_agents_cwd(tmp_path: Path, where: str) -> None:
    """The payload's cwd is the model's `workdir`: a directory outside the agent's cwd, one reached
    through a symlink the agent planted, or a path with `..` never gets an allow."""
    work = tmp_path / "work"
    (work / "sub").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (work / "link").symlink_to(tmp_path / "outside")
    env = {"PATH": SYSTEM_PATH, "HOME": "/nonexistent-fleet-home"}
    adir = agent_dir(tmp_path, ApprovalPolicy(commands=(("du", "-sh", "build"),), otherwise="deny"), work)
    answer = approve.decide(adir, "Bash", "du -sh build", cwd=str(tmp_path / where), env=env)
    assert answer is not None
    assert answer[0] == "deny"
    assert "outside the agent's cwd" in answer[1]
    for inside in (work, work / "sub"):
        assert approve.decide(adir, "Bash", "du -sh build", cwd=str(inside), env=env) == (
            "allow", "Approved by the [watchdog] approve policy: `du -sh build` is listed in approve.commands.")
