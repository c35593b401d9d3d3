"""Pure parts of holes 9 and 10: what fleet trusts, when a screen reads ready, who reaches the server."""

from __future__ import annotations

import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleet.agents import codex, reach
from fleet.agents.state import Observation, PaneFacts, classify, read_journal
from fleet.config import AgentSpec

ALIVE = PaneFacts("a", "%1", 100, False, None, None, None)
LAUNCHED = read_journal([{"time": 1.0, "event": "launched"}])
#: What Codex 0.169 draws in its first ~0.2 s, before a trust dialog replaces it (measured).
LOADING = "  >_ OpenAI Codex (v0.169.0)\n     loading\n\n› Ask Codex to do anything\n\n  ? for shortcuts\n"
READY = ("  >_ OpenAI Codex (v0.169.0)\n     /w\n\n› Ask Codex to do anything\n\n  mock-model default · /w\n"
         "  ← for agents · ? for shortcuts                ⚠ 1 warning · f2 to view\n")
TRUST = ("  Folder access\n  /w\n\n  Trust this folder? Codex can read, edit, and run files here.\n\n"
         "› 1. Trust and continue\n  2. Back to Agent Command Center\n\n  enter continue · esc back\n")
RESTRICTED = ("  Folder access\n  /w\n\n  Config, hooks, and exec policies from untrusted folders stay disabled.\n\n"
              "› 1. Open restricted\n  2. Back to Agent Command Center\n\n  enter continue · esc back\n")


def spec(tmp_path: Path, cwd: Path | None = None, **kw: Any) -> AgentSpec:
    fields: dict[str, Any] = {"name": "a", "home": tmp_path / "codex-home", "cwd": cwd or tmp_path,
                              "role": "worker", "sandbox": "workspace-write", "codex": "codex"}
    return AgentSpec(**(fields | kw))


def state_of(screen: str) -> tuple[str, str | None]:
    verdict = classify(Observation(ALIVE, LAUNCHED, screen, 2.0))
    return verdict.state, verdict.detail


@pytest.mark.parametrize(("screen", "state"), [(LOADING, "starting"), (READY, "idle"), (TRUST, "starting"),
                                               (RESTRICTED, "starting"), ("", "starting")])
def test_only_a_configured_session_reads_idle_before_the_first_prompt(screen: str, state: str) -> None:
    assert state_of(screen)[0] == state


def test_a_dialog_fleet_does_not_know_is_named_in_the_detail() -> None:
    state, detail = state_of(RESTRICTED)
    assert state == "starting"
    assert detail == "a first-run screen is open: 'Folder access' (1. Open restricted)"
    assert state_of(TRUST)[1] == "a first-run screen is open: 'Trust this folder?'"


@given(title=st.text(st.characters(exclude_categories=("Cs", "Cc")), min_size=1, max_size=40).filter(str.strip),
       option=st.text(st.characters(exclude_categories=("Cs", "Cc")), max_size=40), n=st.integers(1, 9),
       ready_too=st.booleans())
def test_any_numbered_menu_before_the_first_prompt_never_reads_idle(title: str, option: str, n: int,
                                                                    ready_too: bool) -> None:
    """Whatever the dialog says, and even if Codex's ready footer is still on screen with it."""
    screen = f"  {title}\n\n› {n}. {option}\n" + (READY if ready_too else "")
    state, detail = state_of(screen)
    assert state == "starting"
    assert detail is not None
    assert detail.startswith("a first-run screen is open")


@given(st.text(max_size=300))
def test_no_screen_without_the_session_footer_reads_idle(text: str) -> None:
    assert state_of(text.replace("for agents · ? for shortcuts", ""))[0] == "starting"


@given(st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), min_size=1, max_size=60))
def test_the_trust_override_names_exactly_the_cwd_whatever_its_characters(name: str) -> None:
    """Codex splits a `-c` key on dots, so the path must sit inside the inline table's value."""
    cwd = Path("/work") / name.replace("/", "_")
    override = codex.project_trust(spec(Path("/nonexistent-home"), cwd=cwd), user={})
    assert override is not None
    key, value = override.split("=", 1)
    assert key == "projects"
    assert tomllib.loads(f"v = {value}")["v"] == {str(cwd): {"trust_level": "trusted"}}


def test_the_override_trusts_only_the_cwd_not_its_git_root(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    sub = tmp_path / "sub"
    sub.mkdir()
    value = codex.project_trust(spec(tmp_path, cwd=sub), user={})
    assert value == "projects=" + codex._toml({str(sub): {"trust_level": "trusted"}})


@pytest.mark.parametrize("marked", ["cwd", "root"])
def test_a_user_who_marked_the_cwd_or_its_repository_untrusted_is_not_overruled(tmp_path: Path,
                                                                                marked: str) -> None:
    (tmp_path / ".git").mkdir()
    sub = tmp_path / "sub"
    sub.mkdir()
    path = sub if marked == "cwd" else tmp_path
    user = {"projects": {str(path): {"trust_level": "untrusted"}}}
    assert codex.project_trust(spec(tmp_path, cwd=sub), user=user) is None
    argv = codex.launch_argv(spec(tmp_path, cwd=sub, codex="/bin/true"), tmp_path / "agent")
    assert any(a.startswith("projects=") for a in argv)  # no config written: fleet trusts it
    (tmp_path / "codex-home").mkdir()
    (tmp_path / "codex-home" / "config.toml").write_text(f'[projects."{path}"]\ntrust_level = "untrusted"\n')
    argv = codex.launch_argv(spec(tmp_path, cwd=sub, codex="/bin/true"), tmp_path / "agent")
    assert not any(a.startswith("projects") for a in argv)


def test_the_launch_command_removes_tmux_variables_even_from_the_agent_env(tmp_path: Path) -> None:
    s = spec(tmp_path, codex="/bin/true", env={"TMUX": "/tmp/x,1,0", "TMUX_PANE": "%9", "KEEP": "1"})
    words = shlex.split(codex.launch_command(s, tmp_path / "agent"))
    assert words[:6] == ["exec", "env", "-u", "TMUX", "-u", "TMUX_PANE"]
    assert "KEEP=1" in words
    assert not any(w.startswith(("TMUX=", "TMUX_PANE=")) for w in words)


@pytest.mark.parametrize("role", ["worker", "explorer", "lead"])
def test_no_agent_but_a_lead_inherits_the_stores_credentials(tmp_path: Path, role: str) -> None:
    """The tmux server has fleet's environment, `$FLEET_STORE_URL` and `$PGPASSWORD` included when set:
    an agent's Codex and its commands must not (Codex's default shell policy keeps both)."""
    words = shlex.split(codex.launch_command(spec(tmp_path, codex="/bin/true", role=role), tmp_path / "agent"))
    dropped = {words[i + 1] for i, w in enumerate(words[:words.index(f"CODEX_HOME={tmp_path / 'codex-home'}")])
               if w == "-u"}
    assert {"TMUX", "TMUX_PANE"} <= dropped
    assert ({"FLEET_STORE_URL", "PGPASSWORD"} <= dropped) is (role != "lead")


@pytest.mark.parametrize(("sandbox", "args", "user", "reachable"), [
    ("read-only", (), {}, False),
    ("workspace-write", (), {}, False),
    ("danger-full-access", (), {}, True),
    ("workspace-write", ("-c", "sandbox_workspace_write.network_access=true"), {}, True),
    ("workspace-write", ("--config=sandbox_workspace_write.network_access=true",), {}, True),
    ("workspace-write", ("-c", "sandbox_workspace_write={network_access = true}"), {}, True),
    ("workspace-write", (), {"sandbox_workspace_write": {"network_access": True}}, True),
    ("workspace-write", ("-c", "sandbox_workspace_write.network_access=false"),
     {"sandbox_workspace_write": {"network_access": True}}, False),
    ("read-only", ("--dangerously-bypass-approvals-and-sandbox",), {}, True),
    ("workspace-write", ("-p", "mine"), {}, True),  # a profile fleet does not read: never "unreachable"
])
def test_who_can_connect_to_the_server(tmp_path: Path, sandbox: str, args: tuple[str, ...],
                                       user: dict[str, Any], reachable: bool) -> None:
    assert (reach.connect_reason(spec(tmp_path, sandbox=sandbox, args=args), user) is not None) is reachable


def test_a_socket_under_tmp_is_reported_for_workspace_write_agents_only(tmp_path: Path) -> None:
    agents = [spec(tmp_path, name="w"), spec(tmp_path, name="r", sandbox="read-only")]
    warnings = reach.exposure(agents, Path("/tmp/tmux-0/fleet-x"), {})
    assert len(warnings) == 1
    assert "'w' can write /tmp" in warnings[0]
    assert reach.exposure(agents, Path("/nonexistent-private/state/tmux.sock"), {}) == []


def test_who_can_write_a_trusted_cwds_codex_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    (repo / "sub" / ".codex").mkdir(parents=True)
    inner = spec(tmp_path, cwd=repo / "sub", name="inner", sandbox="read-only")
    outer = spec(tmp_path, cwd=repo, name="outer")
    same = spec(tmp_path, cwd=repo / "sub", name="same")
    reader = spec(tmp_path, cwd=repo, name="reader", sandbox="read-only")
    full = spec(tmp_path, cwd=tmp_path / "elsewhere", name="full", sandbox="danger-full-access")
    # tmp_path is under /tmp, a writable root of every workspace-write agent: everyone but the
    # read-only one can write there
    assert reach.project_config_writers(inner, [inner, outer, same, reader, full]) == ["outer", "same", "full"]
    # Without /tmp in the roots (simulated: only the cwd), Codex's guard of each root's own top-level
    # .codex leaves the agent with the same cwd out, and the one whose cwd contains it in
    monkeypatch.setattr(reach, "writable_roots", lambda s: [s.cwd] if s.sandbox == "workspace-write" else [])
    assert reach.project_config_writers(inner, [inner, outer, same, reader]) == ["outer"]
    assert reach.project_config_writers(outer, [inner, same]) == []  # repo/.codex does not exist


@pytest.mark.parametrize(("sandbox", "args", "mode"), [
    ("workspace-write", ("-s", "danger-full-access"), "danger-full-access"),
    ("workspace-write", ("--sandbox=read-only",), "read-only"),
    ("read-only", ("-sworkspace-write",), "workspace-write"),
    ("read-only", ("--yolo", "-s", "read-only"), "danger-full-access"),
    ("workspace-write", ("-s", "nonsense"), "workspace-write"),
])
def test_the_sandbox_an_agent_runs_under_is_read_one_way_everywhere(
        tmp_path: Path, sandbox: str, args: tuple[str, ...], mode: str) -> None:
    """The recorded verdict, the writable roots and the tmux reach all take the same reading of the
    agent's flags: a `-s` in its args wins over its configured sandbox, a bypass flag over both."""
    from fleet.agents.writable import writable_roots

    agent = spec(tmp_path, sandbox=sandbox, args=args)
    assert codex.effective_sandbox(agent) == mode
    assert writable_roots(agent, {}, {}).full_access is (mode == "danger-full-access")  # roots err wider
    assert (reach.connect_reason(agent, {}) == "it runs with danger-full-access (no sandbox)") is (
        mode == "danger-full-access")


@pytest.mark.parametrize("args", [
    ("-csandbox_workspace_write.network_access=true",),
    ("--config=sandbox_workspace_write.network_access=true",),
    ("-c", "sandbox_workspace_write.network_access=true"),
    ("-s", "workspace-write", "-c", "sandbox_workspace_write.network_access=true"),
])
def test_network_access_is_seen_in_every_spelling_of_a_config_override(tmp_path: Path,
                                                                      args: tuple[str, ...]) -> None:
    sandbox = "read-only" if "-s" in args else "workspace-write"
    assert reach.connect_reason(spec(tmp_path, sandbox=sandbox, args=args), {}) == (
        "it has sandbox_workspace_write.network_access = true")
