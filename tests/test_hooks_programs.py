"""Before a policy allows, the hook checks which program the command would run: one the agent could
have planted (on a PATH entry it can write, through a profile file in a HOME it can write) is refused.
Real directories and real PATH lookups; the environment is passed in, as the hook passes its own."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fleet.config.watchdog import ApprovalPolicy
from fleet.hooks import approve
from fleet.hooks.programs import agent_roots, program_problem
from fleet.watchdog import policyfile

#: A HOME outside every place an agent may write (it need not exist: no profile file is read from it).
SAFE_HOME = "/nonexistent-fleet-home"
SYSTEM_PATH = "/usr/bin:/bin"


def env(**extra: str) -> dict[str, str]:
    return {"PATH": SYSTEM_PATH, "HOME": SAFE_HOME, **extra}


def test_a_system_program_on_a_system_path_is_fine(tmp_path: Path) -> None:
    assert program_problem("cat", env(), agent_roots([str(tmp_path)], env())) is None


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ({"PATH": "bin:" + SYSTEM_PATH}, "relative entry 'bin'"),
        ({"PATH": ":" + SYSTEM_PATH}, "relative entry '(empty)'"),
        ({"PATH": SYSTEM_PATH + ":."}, "relative entry '.'"),  # even after the program: fleet cannot know the order
        ({"PATH": ""}, "PATH is empty"),
        ({"BASH_ENV": "/etc/x"}, "$BASH_ENV is set"),
        ({"ENV": "/etc/x"}, "$ENV is set"),
        ({"HOME": "relative"}, "HOME is not an absolute path"),
    ],
)
def test_an_environment_fleet_cannot_be_sure_of_is_refused(tmp_path: Path, extra: dict[str, str],
                                                           words: str) -> None:
    problem = program_problem("cat", env(**extra), agent_roots([str(tmp_path)], env()))
    assert problem is not None
    assert words in problem


def test_a_path_entry_or_home_the_agent_may_write_is_refused(tmp_path: Path) -> None:
    work = tmp_path / "work"
    (work / "bin").mkdir(parents=True)
    (work / "bin" / "cat").write_text("#!/bin/sh\ntouch PWNED\n")
    (work / "bin" / "cat").chmod(0o755)
    roots = agent_roots([str(work)], env())
    shadowed = program_problem("cat", env(PATH=f"{work}/bin:{SYSTEM_PATH}"), roots)
    assert shadowed is not None
    assert f"PATH holds {work}/bin, a directory the agent may write" in shadowed
    later = program_problem("cat", env(PATH=f"{SYSTEM_PATH}:{work}/bin"), roots)  # a login profile may reorder
    assert later is not None
    home = program_problem("cat", env(HOME=str(work)), roots)
    assert home is not None
    assert "a login shell runs its profile files" in home
    in_tmpdir = program_problem("cat", env(PATH=f"/opt/fleet-tmpdir:{SYSTEM_PATH}"),
                                agent_roots([str(work)], {"TMPDIR": "/opt/fleet-tmpdir"}))
    assert in_tmpdir is not None  # $TMPDIR is writable under workspace-write too
    assert program_problem("cat", env(PATH=f"{tmp_path}/other:{SYSTEM_PATH}"), roots) is not None  # under /tmp
    assert program_problem("no-such-program-here", env(), roots) == "`no-such-program-here` is not found on PATH"


def test_the_hook_refuses_a_read_only_command_whose_program_the_agent_can_shadow(tmp_path: Path) -> None:
    agent_dir = tmp_path / "state" / "agents" / "agent-1"
    agent_dir.mkdir(parents=True)
    work = tmp_path / "work"
    (work / "bin").mkdir(parents=True)
    policyfile.sync(agent_dir, ApprovalPolicy(allow=frozenset({"read-only"}), otherwise="deny"), work)
    answer = approve.decide(agent_dir, "Bash", "cat README.md", cwd=str(work),
                                env=env(PATH=f"{work}/bin:{SYSTEM_PATH}"))
    assert answer is not None
    assert answer[0] == "deny"
    assert "PATH holds" in answer[1]
    assert approve.decide(agent_dir, "Bash", "cat README.md", cwd=str(work), env=env()) == (
        "allow", "Approved by the [watchdog] approve policy: `cat README.md` is read-only.")


def test_the_hook_counts_the_extra_writable_roots_it_was_given(tmp_path: Path) -> None:
    """A `sandbox_workspace_write.writable_roots` entry is a place an agent may have planted a `cat`:
    `up` and the tick hand the fleet's roots to the hook with the policy, and the hook refuses."""
    agent_dir = tmp_path / "state" / "agents" / "agent-1"
    agent_dir.mkdir(parents=True)
    work, extra = tmp_path / "work", Path("/opt/fleet-extra-root")
    work.mkdir()
    policy = ApprovalPolicy(allow=frozenset({"read-only"}), otherwise="deny")
    path = f"{extra}/bin:{SYSTEM_PATH}"
    policyfile.sync(agent_dir, policy, work)
    assert approve.decide(agent_dir, "Bash", "cat README.md", cwd=str(work), env=env(PATH=path))[0] == "allow"
    policyfile.sync(agent_dir, policy, work, [str(work), str(extra)])
    answer = approve.decide(agent_dir, "Bash", "cat README.md", cwd=str(work), env=env(PATH=path))
    assert answer is not None
    assert answer[0] == "deny"
    assert str(extra) in answer[1]


@pytest.mark.parametrize(("profile", "problem"), [
    ('echo "Welcome, $USER"\nPATH="/opt/tools/bin:$PATH"\n', None),  # chatter before the answer is fine
    ('PATH=".:$PATH"\n', "PATH (the one a login shell builds) holds the relative entry '.'"),
    ("sleep 30\n", "fleet could not read the PATH a login shell builds"),  # too slow: a person decides
    ("exit 3\n", "fleet could not read the PATH a login shell builds"),
])
def test_the_program_check_reads_the_path_a_login_shell_builds(tmp_path: Path, profile: str,
                                                                problem: str | None) -> None:
    """Codex runs an approved command as `bash -lc`: the user's profile may rebuild PATH."""
    home = tmp_path / "user"
    home.mkdir()
    (home / ".profile").write_text(profile)
    (home / ".bash_profile").write_text(". ~/.profile\n")
    found = program_problem("cat", {"PATH": SYSTEM_PATH, "HOME": str(home)}, ("/work-elsewhere",))
    assert found == problem if problem is None else (found or "").startswith(problem)


def test_recorded_roots_replace_the_blanket_temp_dirs(tmp_path: Path) -> None:
    """With every sandboxed agent's roots recorded (and `/tmp` excluded from all of them, as the test
    fleets and careful users do), a program under /tmp is not the agents'; with none recorded, /tmp
    counts as theirs. Either way the agents' own roots count."""
    agent_dir = tmp_path / "state" / "agents" / "agent-1"
    agent_dir.mkdir(parents=True)
    work, tools = tmp_path / "work", Path("/tmp") / f"fleet-tools-{os.getpid()}"
    work.mkdir()
    (tools / "bin").mkdir(parents=True, exist_ok=True)
    try:
        policy = ApprovalPolicy(allow=frozenset({"read-only"}), otherwise="deny")
        path = env(PATH=f"{tools}/bin:{SYSTEM_PATH}")
        policyfile.sync(agent_dir, policy, work, [str(work)])
        assert approve.decide(agent_dir, "Bash", "cat README.md", cwd=str(work), env=path)[0] == "allow"
        policyfile.sync(agent_dir, policy, work, [str(work), "/tmp"])
        assert approve.decide(agent_dir, "Bash", "cat README.md", cwd=str(work), env=path)[0] == "deny"
        policyfile.sync(agent_dir, policy, work, [])  # a fleet of read-only agents: nothing is theirs
        assert approve.decide(agent_dir, "Bash", "cat README.md", cwd=str(work), env=path)[0] == "allow"
        policyfile.sync(agent_dir, policy, work)  # nothing recorded: every temp dir counts
        assert approve.decide(agent_dir, "Bash", "cat README.md", cwd=str(work), env=path)[0] == "deny"
    finally:
        (tools / "bin").rmdir()
        tools.rmdir()
