"""Check commands without Codex: the environment builder (pure, with properties), the sandbox mode a
check gets and the `codex sandbox` prefix fleet builds. Real check processes in the real Codex
sandbox, where the hostile program is whoever wrote the check, are in tests/codex/test_work_checks.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from checksandbox import FLEET_SECRETS, spec_for
from hypothesis import given
from hypothesis import strategies as st

from fleet.agents.codex import effective_sandbox, sandbox_argv
from fleet.config import AgentSpec
from fleet.errors import CodexMissing
from fleet.work.checks import CHECK_ENV_NAMES, check_env, denied, stricter

# -- the environment builder (pure) -----------------------------------------------------------------

def test_a_check_gets_the_allowlist_and_the_agent_env_and_no_secret() -> None:
    fleet_env = {**FLEET_SECRETS, "HOME": "/home/u", "PATH": "/usr/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
                 "USER": "u", "EDITOR": "vim", "PYTHONPATH": "/somewhere", "LD_PRELOAD": "/x.so"}
    agent_env = {"PIP_INDEX_URL": "http://mirror", "MY_API_KEY": "k", "FLEET_CONFIG": "/c", "TMUX_TMPDIR": "/t"}
    assert check_env(fleet_env, agent_env) == {"HOME": "/home/u", "PATH": "/usr/bin", "LANG": "C.UTF-8",
                                               "LC_ALL": "C.UTF-8", "USER": "u", "PIP_INDEX_URL": "http://mirror"}


def test_the_agent_env_overrides_an_allowlisted_value() -> None:
    assert check_env({"PATH": "/usr/bin"}, {"PATH": "/opt/bin"}) == {"PATH": "/opt/bin"}


def test_names_that_execve_cannot_carry_are_dropped() -> None:
    assert check_env({"HOME": "/h\0x"}, {"": "x", "A=B": "x", "OK": "fine", "NUL": "a\0b"}) == {"OK": "fine"}


@pytest.mark.parametrize("name", ["openai_api_key", "Aws_Region", "SSH_AGENT_PID", "TMUX", "FLEET_X", "MY_TOKEN",
                                  "x_secret_y", "PGPASSWORD", "DBUS_SESSION_BUS_ADDRESS", "CODEX_HOME",
                                  "GOOGLE_APPLICATION_CREDENTIALS", "NPM_AUTH_COOKIE", "GPG_AGENT_INFO"])
def test_credential_and_control_names_are_denied(name: str) -> None:
    assert denied(name)


def test_no_allowlisted_name_is_denied() -> None:
    assert not any(denied(n) for n in CHECK_ENV_NAMES)


names = st.text(st.characters(codec="utf-8", exclude_characters="\0"), min_size=0, max_size=12)
envs = st.dictionaries(st.one_of(names, st.sampled_from(sorted({*CHECK_ENV_NAMES, *FLEET_SECRETS, "LC_CTYPE"}))),
                       st.text(max_size=8), max_size=12)


@given(envs, envs)
def test_check_env_only_ever_passes_allowed_names_with_their_own_values(fleet_env: dict[str, str],
                                                                        agent_env: dict[str, str]) -> None:
    out = check_env(fleet_env, agent_env)
    for key, value in out.items():
        assert not denied(key)
        assert key
        assert "\0" not in value
        assert "=" not in key
        if key in agent_env:
            assert value == agent_env[key]
        else:  # from fleet's environment only by the allowlist
            assert key in CHECK_ENV_NAMES or key.startswith("LC_")
            assert value == fleet_env[key]
    assert not set(out) & set(FLEET_SECRETS)


@given(st.text(max_size=6), st.sampled_from(["KEY", "secret", "Token", "PASSWORD", "credential", "SESSION"]),
       st.text(max_size=6))
def test_any_name_holding_a_credential_word_is_denied(prefix: str, word: str, suffix: str) -> None:
    assert denied(prefix + word + suffix)
    assert check_env({}, {prefix + word + suffix: "v"}) == {}


MODES = ("read-only", "workspace-write", "danger-full-access")


@pytest.mark.parametrize(("now", "sent", "runs"), [
    ("workspace-write", "read-only", "read-only"), ("read-only", "danger-full-access", "read-only"),
    ("danger-full-access", "workspace-write", "workspace-write"), ("workspace-write", "unknown", "workspace-write")])
def test_checks_run_in_the_stricter_of_the_modes_now_and_at_send(now: str, sent: str, runs: str) -> None:
    assert stricter(now, sent) == runs


@given(st.sampled_from(MODES), st.one_of(st.sampled_from(MODES), st.text(max_size=5)))
def test_the_stricter_mode_is_never_looser_than_the_current_one(now: str, sent: str) -> None:
    chosen = stricter(now, sent)
    assert chosen in (now, sent)
    assert MODES.index(chosen) <= MODES.index(now)
    if sent in MODES:
        assert MODES.index(chosen) <= MODES.index(sent)


# -- the sandbox prefix -------------------------------------------------------------------------------

ARG_WORDS = st.sampled_from(["-c", "--config", "--enable", "--disable", "-p", "--profile", "-s", "--", "-m",
                             "--yolo", "--config=--", "-c--", "x=1", "sandbox_mode=\"danger-full-access\""])


@given(st.lists(st.one_of(ARG_WORDS, st.text(max_size=6)), max_size=10),
       st.sampled_from(["read-only", "workspace-write", "danger-full-access"]))
def test_whatever_the_agents_args_the_prefix_ends_with_its_mode_and_one_separator(
        args: list[str], mode: str) -> None:
    spec = AgentSpec(name="a", home=Path("/h"), cwd=Path("/c"), role="worker", sandbox=mode,  # type: ignore[arg-type]
                     codex="/bin/sh", args=tuple(args))  # any executable: only the arguments are judged
    argv = sandbox_argv(spec)
    assert argv[-2:] == [f"--config=sandbox_mode={json.dumps(effective_sandbox(spec))}", "--"]
    options = argv[2:-1]
    assert "--" not in options  # no agent argument ends the options early
    assert all(o.startswith(("--config=", "--enable=", "--disable=", "--profile=")) for o in options)
    assert effective_sandbox(spec) == ("danger-full-access" if "--yolo" in args else mode)


def test_no_codex_binary_means_no_sandbox_prefix(tmp_path: Path) -> None:
    with pytest.raises(CodexMissing):
        sandbox_argv(spec_for(tmp_path, str(tmp_path / "no-codex")))


# -- after a check: the mount points its sandbox made ------------------------------------------------

def test_only_empty_mount_points_the_check_made_are_removed(tmp_path: Path) -> None:
    from fleet.work.checks import _remove_mount_points

    tmp_path = tmp_path / "cwd"
    tmp_path.mkdir()
    (tmp_path / ".git").mkdir()
    (tmp_path / ".agents").mkdir()
    (tmp_path / ".agents" / "skill.md").write_text("mine")
    (tmp_path / ".aws").symlink_to(tmp_path / "elsewhere")
    _remove_mount_points([str(tmp_path / name) for name in (".git", ".agents", ".aws", ".codex")])
    assert sorted(p.name for p in tmp_path.iterdir()) == [".agents", ".aws"]
