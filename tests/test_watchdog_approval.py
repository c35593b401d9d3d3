"""The approve policy: a conservative read-only class, exact commands, and `otherwise` for the rest."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet.config.watchdog import READ_ONLY, ApprovalPolicy
from fleet.watchdog.approval import judge, read_only_problem

READ_ONLY_POLICY = ApprovalPolicy(allow=frozenset({"read-only"}), otherwise="deny")


@pytest.mark.parametrize(
    "command",
    [
        "ls -la",
        "cat README.md",
        "grep -rn TODO src",
        "rg --files",
        "rg -n fleet-report --glob=*.md",  # '*' is shell syntax even here: see the refusals below
        "find . -name x.py -type f",
        "tail -n 50 build.log",
        "head -c 100 data.bin",
        "wc -l a b",
        "git status",
        "bash -lc 'ls -la'",
        "sh -c pwd",
    ],
)
def test_classification_matches_the_documented_list(command: str) -> None:
    problem = read_only_problem(command)
    expected_read_only = command in {
        "ls -la", "cat README.md", "grep -rn TODO src", "rg --files", "find . -name x.py -type f",
        "tail -n 50 build.log", "head -c 100 data.bin", "wc -l a b", "bash -lc 'ls -la'", "sh -c pwd",
    }
    assert (problem is None) == expected_read_only, problem


@pytest.mark.parametrize(
    ("command", "words"),
    [
        ("rm -rf build", "`rm` is not on the read-only list"),
        ("git status", "`git` is not on the read-only list"),
        ("/tmp/ls -la", "a path, not a plain program name"),
        ("LC_ALL=C ls", "environment assignment"),
        ("ls; rm -rf ~", "shell syntax"),
        ("cat a > b", "shell syntax"),
        ("cat $(echo a)", "shell syntax"),
        ("ls | xargs rm", "shell syntax"),
        ("ls *.py", "shell syntax"),
        ("echo 'unterminated", "unterminated single quote"),
        ("find . -delete", "can change files"),
        ("find . -exec rm {} ;", "shell syntax"),
        ("find . -execdir touch x", "can change files"),
        ("find . -fprint out", "can change files"),
        ("tail -f log", "never end"),
        ("tail -n5F log", "never end"),
        ("tail --follow=name log", "never end"),
        ("tail --fol log", "never end"),  # getopt_long abbreviation of --follow
        ("rg --pre ./evil x", "run programs"),
        ("rg --pre=./evil x", "run programs"),
        ("rg -zn x", "run programs"),
        ("cat /dev/zero", "names a device"),
        ("cat -", "standard input"),
        ("bash -lc 'ls; rm x'", "shell syntax"),
        ("", "it is empty"),
        ("ls " + "a" * 5000, "longer than"),
    ],
)
def test_anything_that_could_write_execute_or_hang_is_not_read_only(command: str, words: str) -> None:
    problem = read_only_problem(command)
    assert problem is not None
    assert words in problem


def test_without_a_policy_a_person_decides() -> None:
    verdict = judge(None, "Bash", "ls")
    assert verdict.decision == "ask"
    assert "no [watchdog] approve policy" in verdict.reason


def fine(program: str) -> None:
    """A program check that finds nothing the agent could have planted (the hook's real one is tested below)."""


def test_read_only_commands_are_allowed_and_the_rest_gets_otherwise() -> None:
    assert judge(READ_ONLY_POLICY, "Bash", "ls -la", program_check=fine).decision == "allow"
    denied = judge(READ_ONLY_POLICY, "Bash", "rm -rf build", program_check=fine)
    assert denied.decision == "deny"
    assert denied.reason == ("`rm -rf build` is not read-only: `rm` is not on the read-only list; "
                             "so the policy denies it")
    ask = ApprovalPolicy(allow=frozenset({"read-only"}), otherwise="ask")
    assert judge(ask, "Bash", "rm -rf build").decision == "ask"


def test_patches_are_never_allowed_by_policy() -> None:
    both = ApprovalPolicy(allow=frozenset({"read-only"}), commands=(("ls",),), otherwise="ask")
    verdict = judge(both, "apply_patch", "ls")
    assert verdict.decision == "ask"
    assert "apply_patch call is never approved by policy" in verdict.reason


def test_listed_commands_match_whole_argv_never_a_prefix() -> None:
    policy = ApprovalPolicy(workspace_commands=(("make", "test"),), otherwise="deny")
    assert judge(policy, "Bash", "make  test", program_check=fine).decision == "allow"
    assert judge(policy, "Bash", "make 'test'", program_check=fine).decision == "allow"  # the same argv
    assert judge(policy, "Bash", "make test-all", program_check=fine).decision == "deny"
    assert judge(policy, "Bash", "make test install", program_check=fine).decision == "deny"
    assert judge(policy, "Bash", "make test; rm -rf ~", program_check=fine).decision == "deny"
    assert judge(policy, "Bash", "ls", program_check=fine).decision == "deny"  # read-only is not allowed here


SAFE_WORDS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.=/", min_size=1, max_size=12)


@settings(deadline=None)  # no wall-clock limits in tests: the machine is shared
@given(program=st.sampled_from(sorted(READ_ONLY)), args=st.lists(SAFE_WORDS, max_size=6))
def test_allowed_commands_use_a_listed_program_and_none_of_its_refused_options(program: str,
                                                                            args: list[str]) -> None:
    command = " ".join([program, *args])
    if read_only_problem(command) is None:
        rule = READ_ONLY[program]
        for arg in args:
            assert arg not in rule.words
            assert "/dev/" not in arg
            assert arg != "-"
            if arg.startswith("--") and arg != "--":  # `--` alone ends the options; it names none
                assert not any(opt.startswith(arg.split("=")[0]) for opt in rule.long)
            elif arg.startswith("-") and not rule.words:
                assert not set(arg[1:]) & set(rule.short)


@settings(deadline=None)  # no wall-clock limits in tests: the machine is shared
@given(st.text(max_size=40))
def test_any_text_gets_a_verdict_and_shell_syntax_is_never_allowed(command: str) -> None:
    verdict = judge(READ_ONLY_POLICY, "Bash", command, program_check=fine)
    assert verdict.decision in ("allow", "deny")
    if verdict.decision == "allow":
        assert not set(command) & set(";&|<>`$\n")
        program = command.split(maxsplit=1)[0]
        assert program in READ_ONLY or program in ("bash", "sh", "zsh", "dash")


ARGVS = st.lists(st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=3).map(tuple), max_size=3).map(tuple)
POLICIES = st.builds(
    ApprovalPolicy,
    allow=st.sampled_from([frozenset(), frozenset({"read-only"})]),
    commands=ARGVS,
    otherwise=st.sampled_from(["ask", "deny"]),
    workspace_commands=ARGVS,
)
JSONISH = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                       lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=9), inner,
                                                                                   max_size=4), max_leaves=12)


@given(POLICIES)
def test_the_hooks_copy_of_a_policy_reads_back_as_the_same_policy(policy: ApprovalPolicy) -> None:
    from fleet.watchdog.policyfile import from_json, to_json

    assert from_json(to_json(policy)) == policy


@given(st.dictionaries(st.sampled_from(["allow", "commands", "otherwise", "x"]), JSONISH) | JSONISH)
def test_a_damaged_policy_file_is_no_policy_never_an_error(raw: object) -> None:
    from fleet.watchdog.policyfile import from_json

    policy = from_json(raw)
    assert policy is None or isinstance(policy, ApprovalPolicy)
    if policy is not None:  # only the exact shape `to_json` writes is read
        assert isinstance(raw, dict)
        assert raw["otherwise"] in ("ask", "deny")


def test_the_hook_answers_by_policy_once_and_a_failing_policy_holds(tmp_path: object) -> None:
    from fleet.hooks.hold import hold

    events: list[dict[str, object]] = []
    payload = {"tool_name": "Bash", "tool_input": {"command": "ls"}, "turn_id": "t1"}
    out = hold(str(tmp_path), payload, 5.0, events.append, policy=lambda rec, whole: ("deny", "Denied: not today."))
    assert out is not None
    assert out["hookSpecificOutput"]["decision"] == {"behavior": "deny", "message": "Denied: not today."}
    assert [(e["event"], e.get("by")) for e in events] == [("approval_requested", None),
                                                            ("approval_answered", "watchdog:policy")]

    def broken(rec: dict[str, object], whole: object) -> None:
        raise RuntimeError("unreadable")

    clock = iter(float(i) for i in range(100))
    events.clear()
    out = hold(str(tmp_path), payload, 2.0, events.append, policy=broken,
               clock=lambda: next(clock), sleep=lambda s: None)
    assert out is None  # no decision: the call was held, then released to Codex's dialog
    assert [e["event"] for e in events] == ["approval_requested", "approval_released"]


@pytest.mark.parametrize(
    ("command", "words"),
    [
        ("tail +f log", "old-style option"),  # GNU tail still follows with `+f`
        ("tail +1f log", "old-style option"),
        ("cat /proc/self/fd/1", "a process's files"),  # the read end of its own output pipe: hangs
        ("tail /proc/self/fd/2", "a process's files"),
        ("wc --files0-from=/proc/self/fd/1", "a process's files"),
        ("du --files0-from=-", "standard input"),
        ("grep --file=- x", "standard input"),
        ("diff -l a b", "run programs"),  # -l pipes through `pr`
        ("diff --paginate a b", "run programs"),
        ("diff -ul a b", "run programs"),
    ],
)
def test_reads_that_hang_follow_or_run_another_program_are_not_read_only(command: str, words: str) -> None:
    problem = read_only_problem(command)
    assert problem is not None
    assert words in problem
    assert judge(READ_ONLY_POLICY, "Bash", command, program_check=lambda p: None).decision == "deny"
