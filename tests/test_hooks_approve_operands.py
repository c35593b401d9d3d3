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
