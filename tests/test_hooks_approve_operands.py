"""A read-only command whose words are harmless can still hang or act through what it reads: a FIFO the
agent made in its cwd (`cat fifo` never ends, holding the turn), or a symlink to a device. The hook
looks at each path the command may read (`operands`) before the policy allows it; grep's
`--devices=read` (which reads the FIFOs a recursive search meets) is off the list."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_hooks_shared_store import agent_dir

from fleet.config.watchdog import ApprovalPolicy
from fleet.hooks.approve import decide
from fleet.watchdog.approval import judge, operands, read_only_problem

POLICY = ApprovalPolicy(allow=frozenset({"read-only"}), otherwise="deny")


def test_operands_are_the_arguments_and_option_values_a_command_may_read() -> None:
    assert operands("wc -l a.txt --files0-from=list b") == ["a.txt", "list", "b"]
    assert operands("ls") == []
    assert operands("cat 'a b'") == ["a b"]


def test_the_judge_refuses_a_read_only_command_whose_operand_fails_the_check() -> None:
    def fifo_named_t(path: str) -> str | None:
        return "`t` is a FIFO" if path == "t" else None

    fine = judge(POLICY, "Bash", "cat README.md", program_check=lambda p: None, path_check=fifo_named_t)
    assert fine.decision == "allow"
    for command in ("cat t", "du --files0-from=t", "wc --files0-from t"):
        verdict = judge(POLICY, "Bash", command, program_check=lambda p: None, path_check=fifo_named_t)
        assert verdict.decision == "deny", command
        assert "FIFO" in verdict.reason


@pytest.mark.parametrize("command", ["grep -r --devices=read x .", "grep -rD read x .", "grep --dev=read x ."])
def test_grep_reading_devices_is_not_read_only(command: str) -> None:
    assert read_only_problem(command) is not None


@pytest.mark.parametrize("plant", ["fifo", "symlink to a device", "symlink to a fifo"])
def test_the_hook_never_allows_a_read_of_a_fifo_or_device_the_agent_planted(tmp_path: Path, plant: str) -> None:
    agent = agent_dir(tmp_path, shared=False)
    work = tmp_path / "work"
    target = work / "t"
    if plant == "fifo":
        os.mkfifo(target)
    elif plant == "symlink to a device":
        target.symlink_to("/dev/zero")
    else:
        os.mkfifo(tmp_path / "elsewhere")
        target.symlink_to(tmp_path / "elsewhere")
    assert decide(agent, "Bash", "cat README.md", cwd=str(work)) is not None  # the policy does allow reads
    assert decide(agent, "Bash", "cat t", cwd=str(work)) is None  # held for a person, never allowed
    assert decide(agent, "Bash", "wc --files0-from=t", cwd=str(work)) is None


def test_a_listed_command_is_allowed_in_the_agents_cwd_and_held_in_a_subdirectory(tmp_path: Path) -> None:
    """A subdirectory is the agent's to swap for a symlink between the answer and the shell's `cd`,
    which would run `rm -rf build` anywhere; the cwd itself lies in a directory the agent cannot write."""
    from fleet.hooks.gates import HookContext, write_context
    from fleet.watchdog.policyfile import sync

    state, work = tmp_path / "state", tmp_path / "work"
    agent = state / "agents" / "a"
    agent.mkdir(parents=True, mode=0o700)
    (work / "sub").mkdir(parents=True)
    write_context(agent, HookContext(assignment="as-01JABCDEFGHJKMNPQRSTVWXYZ0", role="worker", cwd=str(work),
                                     write_paths=("build/",)))
    sync(agent, ApprovalPolicy(workspace_commands=(("rm", "-rf", "build"),), otherwise="deny"), work,
         [str(work)])
    answer = decide(agent, "Bash", "rm -rf build", cwd=str(work))
    assert answer is not None
    assert answer[0] == "allow"
    assert decide(agent, "Bash", "rm -rf build", cwd=str(work / "sub")) is None
    assert decide(agent, "Bash", "rm -rf build", cwd=str(work / "sub" / "..")) is not None  # the cwd, spelled so
