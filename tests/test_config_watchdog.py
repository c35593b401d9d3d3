"""[watchdog] policy: defaults from the issue, durations, the approve table, errors naming the key path."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from fleet.config.watchdog import POLICY_SCHEMA, RUNGS, ApprovalPolicy, Policy, parse_policy
from fleet.errors import ConfigError

ISSUE_EXAMPLE = """
[watchdog]
every = "60s"
idle_after = "10m"
report_grace = "5m"
stall_after = "30m"
ladder = ["remind", "notify", "interrupt", "restart"]
lead = "mila"
notify_command = ["notify-send", "fleet"]
max_restarts = 3
approval_timeout = "15m"
limit_retry = "1h"
"""


def table(text: str) -> dict[str, Any]:
    return tomllib.loads(text)["watchdog"]  # type: ignore[no-any-return]


def error_for(raw: Any, **kw: Any) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_policy(raw, source="/etc/fleet.toml", **kw)
    return info.value


def test_missing_table_gives_the_defaults_the_issue_lists() -> None:
    p = parse_policy(None)
    assert p == Policy()
    assert (p.every, p.idle_after, p.report_grace, p.stall_after) == (60, 600, 300, 1800)
    assert (p.ladder, p.lead, p.notify_command, p.max_restarts) == (RUNGS, None, (), 3)
    assert (p.approval_timeout, p.limit_retry, p.approve) == (900, 3600, None)


def test_the_issue_example_parses_to_the_same_values_as_the_defaults_plus_lead_and_notify() -> None:
    p = parse_policy(table(ISSUE_EXAMPLE), agents=["mila", "bo"])
    assert p == Policy(lead="mila", notify_command=("notify-send", "fleet"))


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1s", 1), ("90s", 90), ("10m", 600), ("1h30m", 5400), ("2d", 172800), (" 5M ", 300), ("1h0m1s", 3601)],
)
def test_durations_accept_whole_units_down_to_one_second(text: str, seconds: float) -> None:
    assert parse_policy({"idle_after": text}).idle_after == seconds


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("60", "needs a unit"),
        ("5", "needs a unit"),  # a one-digit number gets the same hint, not a length complaint
        (60, "not a duration: write a string with a unit"),
        ("0s", "shorter than 1s"),
        ("1.5h", "not a valid duration"),
        ("10m5h", "not a valid duration"),
        ("31d", "longer than the limit of 30d"),
        ("-5s", "not a valid duration"),
        ("\uff11\uff10s", "not a valid duration"),  # full-width digits: ASCII only
    ],
)
def test_bad_durations_name_the_key_path_and_the_file(value: Any, words: str) -> None:
    err = error_for({"report_grace": value})
    assert err.code == "config_invalid"
    assert err.message.startswith("/etc/fleet.toml: $.watchdog.report_grace: ")
    assert words in err.message
    assert err.data["key"] == "$.watchdog.report_grace"


@pytest.mark.parametrize(
    ("raw", "key", "words"),
    [
        ({"ladder": ["remind", "shout"]}, "$.watchdog.ladder[1]", "'shout' is not one of"),
        ({"ladder": ["notify", "notify"]}, "$.watchdog.ladder", "lists a value twice"),
        ({"lead": "Mila!"}, "$.watchdog.lead", "not an agent name"),
        ({"notify_command": []}, "$.watchdog.notify_command", "should be non-empty"),
        ({"notify_command": "notify-send"}, "$.watchdog.notify_command", "is not of type 'array'"),
        ({"max_restarts": -1}, "$.watchdog.max_restarts", "less than the minimum"),
        ({"max_restarts": "3"}, "$.watchdog.max_restarts", "is not of type 'integer'"),
        ({"evry": "60s"}, "$.watchdog", "unknown key"),
        ({"approve": {"allow": ["everything"]}}, "$.watchdog.approve.allow[0]", "is not one of"),
        ({"approve": {"otherwise": "allow"}}, "$.watchdog.approve.otherwise", "is not one of"),
        ({"approve": {"commands": ["ls && rm -rf ~"]}}, "$.watchdog.approve.commands[0]", "shell syntax"),
        ({"approve": {"commands": ["   "]}}, "$.watchdog.approve.commands[0]", "is blank"),
        ({"approve": {"commands": ["cat\x0b./x.sh"]}}, "$.watchdog.approve.commands[0]", "control character"),
        ({"approve": {"commands": ["make test"]}}, "$.watchdog.approve.commands[0]",
         "list it under commands_running_workspace_code"),
        ({"approve": {"commands": ["./x.sh"]}}, "$.watchdog.approve.commands[0]", "commands_running_workspace_code"),
        ({"approve": {"commands_running_workspace_code": ["CC=x make"]}},
         "$.watchdog.approve.commands_running_workspace_code[0]", "environment assignment"),
        ({"on_limit": "migrate"}, "$.watchdog.on_limit", "'migrate' is not one of 'wait', 'reassign'"),
        ({"approve": {"commands_running_workspace_code": [5]}},
         "$.watchdog.approve.commands_running_workspace_code[0]", "is not of type 'string'"),
    ],
)
def test_structural_errors_name_the_key_path(raw: dict[str, Any], key: str, words: str) -> None:
    err = error_for(raw)
    assert err.data["key"] == key, err.message
    assert words in err.message
    assert err.hint


def test_lead_must_be_a_configured_agent_when_the_agents_are_known() -> None:
    err = error_for({"lead": "zed"}, agents=["mila", "bo"])
    assert err.data["key"] == "$.watchdog.lead"
    assert "'zed' is not a configured agent (configured: bo, mila)" in err.message
    assert parse_policy({"lead": "zed"}).lead == "zed"  # without the agent list it is only a name


def test_on_limit_waits_by_default_and_reassign_is_its_other_value() -> None:
    assert parse_policy(None).on_limit == "wait"
    assert parse_policy({"on_limit": "reassign"}).on_limit == "reassign"


def test_a_non_table_is_refused() -> None:
    assert "must be a table" in error_for(["every"]).message


def test_ladder_may_be_a_subset_in_any_order_or_empty() -> None:
    assert parse_policy({"ladder": ["notify", "remind"]}).ladder == ("notify", "remind")
    assert parse_policy({"ladder": []}).ladder == ()


def test_approve_table_resolves_to_an_approval_policy_with_argv_commands() -> None:
    p = parse_policy(table('[watchdog]\napprove = { allow = ["read-only"], commands = ["du  -sh build"], '
                           'commands_running_workspace_code = ["make test", "pytest -q \'tests/a b\'", '
                           '"rm -rf build"], otherwise = "deny" }\n'))
    assert p.approve == ApprovalPolicy(allow=frozenset({"read-only"}), commands=(("du", "-sh", "build"),),
                                       workspace_commands=(("make", "test"), ("pytest", "-q", "tests/a b"),
                                                           ("rm", "-rf", "build")),
                                       otherwise="deny")


def test_a_writing_program_in_commands_is_refused_it_follows_the_agents_symlinks() -> None:
    for line in ("rm -rf build", "cp dist/app.js public/app.js", "mkdir -p out", "chmod +x run.sh"):
        with pytest.raises(ConfigError, match="commands_running_workspace_code"):
            parse_policy(table(f'[watchdog]\napprove = {{ commands = ["{line}"] }}\n'))
    assert parse_policy({"approve": {}}).approve == ApprovalPolicy(otherwise="ask")


def test_policy_schema_is_a_valid_fragment_the_config_schema_can_embed() -> None:
    Draft202012Validator.check_schema(POLICY_SCHEMA)
    whole = {"type": "object", "properties": {"watchdog": POLICY_SCHEMA}, "additionalProperties": False}
    validator = Draft202012Validator(whole)
    assert not list(validator.iter_errors({"watchdog": table(ISSUE_EXAMPLE)}))
    [err] = validator.iter_errors({"watchdog": {"ladder": ["bogus"]}})
    assert err.json_path == "$.watchdog.ladder[0]"


@settings(deadline=None)  # no wall-clock limits in tests: the machine is shared
@given(h=st.integers(0, 99), m=st.integers(0, 59), s=st.integers(0, 59))
def test_any_whole_h_m_s_duration_of_at_least_a_second_parses_to_its_seconds(h: int, m: int, s: int) -> None:
    text = "".join(f"{n}{u}" for n, u in ((h, "h"), (m, "m"), (s, "s")) if n) or "0s"
    seconds = h * 3600 + m * 60 + s
    if seconds < 1:
        with pytest.raises(ConfigError):
            parse_policy({"every": text})
    else:
        assert parse_policy({"every": text}).every == seconds


@settings(deadline=None)  # no wall-clock limits in tests: the machine is shared
@given(st.text(max_size=12))
def test_arbitrary_text_either_parses_to_at_least_a_second_or_fails_with_the_key(text: str) -> None:
    key = None
    try:
        seconds = parse_policy({"stall_after": text}).stall_after
    except ConfigError as err:
        key = err.data["key"]
    if key is None:
        assert 1 <= seconds <= 30 * 86400
    else:
        assert key == "$.watchdog.stall_after"
