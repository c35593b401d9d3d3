"""`[hosts.NAME]` and agents with a `host`: validated with the key path, kept apart from local agents,
and the ssh command line built from them (no shell can be smuggled through a value)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleet.config import FleetConfig, load_config
from fleet.config.hosts import HostSpec
from fleet.errors import AgentRemote, ConfigError
from fleet.hosts.channel import remote_command, ssh_argv

HOST = '[hosts.gpu1]\nssh = "me@gpu1.internal"\n'
LOCAL = '[agents.mila]\nhome = "h"\ncwd = "w"\n'
REMOTE = '[agents.noor]\nhost = "gpu1"\nhome = "~/codex"\nrepo = "~/src/shop"\n'


def load(tmp_path: Path, text: str) -> FleetConfig:
    path = tmp_path / "fleet.toml"
    path.write_text(text)
    return load_config(path)


def test_the_issue_example_parses_and_remote_agents_stay_out_of_the_local_ones(tmp_path: Path) -> None:
    text = ('[hosts.gpu1]\nssh = "me@gpu1.internal"\nport = 2222\nidentity = "~/.ssh/id_fleet"\n'
            'ssh_config = "ssh/cfg"\nfleet = "/opt/fleet/bin/fleet"\nconfig = "~/fleet.toml"\n' + LOCAL + REMOTE)
    cfg = load(tmp_path, text)
    assert list(cfg.agents) == ["mila"]  # start, stop, routing and the watchdog never see noor
    noor = cfg.remote_agents["noor"]
    assert (noor.host, noor.home, noor.repo, noor.cwd) == ("gpu1", "~/codex", "~/src/shop", None)  # paths there
    host = cfg.hosts["gpu1"]
    assert host == HostSpec("gpu1", "me@gpu1.internal", 2222, Path.home() / ".ssh/id_fleet", tmp_path / "ssh/cfg",
                            "/opt/fleet/bin/fleet", "~/fleet.toml")
    with pytest.raises(AgentRemote) as caught:
        cfg.agent("noor")
    assert (caught.value.code, caught.value.data["host"]) == ("agent_remote", "gpu1")


def test_a_config_without_hosts_is_unchanged(tmp_path: Path) -> None:
    cfg = load(tmp_path, LOCAL)
    assert (cfg.hosts, cfg.remote_agents, list(cfg.agents)) == ({}, {}, ["mila"])


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (LOCAL + REMOTE, "$.agents.noor.host"),  # no such host
        (HOST + LOCAL + REMOTE.replace('"gpu1"', '"GPU 1"'), "$.agents.noor.host"),
        ('[hosts.gpu1]\nport = 22\n' + LOCAL, "$.hosts.gpu1"),
        ('[hosts.gpu1]\nssh = "-oProxyCommand=sh"\n' + LOCAL, "$.hosts.gpu1.ssh"),
        ('[hosts.gpu1]\nssh = "me@host; rm -rf ~"\n' + LOCAL, "$.hosts.gpu1.ssh"),
        (HOST + "port = 0\n" + LOCAL, "$.hosts.gpu1.port"),
        (HOST + 'port = "22"\n' + LOCAL, "$.hosts.gpu1.port"),
        (HOST + "colour = 1\n" + LOCAL, "$.hosts.gpu1"),
        (HOST + 'fleet = ""\n' + LOCAL, "$.hosts.gpu1.fleet"),
        (HOST + 'fleet = "  "\n' + LOCAL, "$.hosts.gpu1.fleet"),
        (HOST + 'fleet = "env A=\'1"\n' + LOCAL, "$.hosts.gpu1.fleet"),
        (HOST + 'config = "a\\nb"\n' + LOCAL, "$.hosts.gpu1.config"),
        ('[hosts.Gpu]\nssh = "h"\n' + LOCAL, "$.hosts.Gpu"),
        ('hosts = 3\n' + LOCAL, "$.hosts"),
        (HOST + LOCAL + '[agents.noor]\nhost = "gpu1"\nhome = "h"\n', "$.agents.noor"),  # no cwd or repo
    ],
)
def test_bad_hosts_are_config_errors_naming_the_key(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    assert key in caught.value.message
    assert caught.value.hint


def test_the_ssh_command_line() -> None:
    host = HostSpec("gpu1", "me@gpu1", 2222, Path("/k/id"), Path("/k/cfg"), "env A=1 /opt/fleet", "~/f.toml")
    argv = ssh_argv(host)
    assert argv[0] == "ssh"
    assert "BatchMode=yes" in argv
    assert "ControlMaster=no" in argv
    assert argv[argv.index("-p") + 1] == "2222"
    assert argv[argv.index("-i") + 1] == "/k/id"
    assert argv[argv.index("-F") + 1] == "/k/cfg"
    assert argv[-3:] == ["--", "me@gpu1", "env A=1 /opt/fleet --config '~/f.toml' remote-session"]
    bare = ssh_argv(HostSpec("h", "h"))
    assert ("-p" in bare, "-i" in bare, "-F" in bare, bare[-1]) == (False, False, False, "fleet remote-session")


@given(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FF), min_size=1, max_size=40))
def test_the_remote_shell_gets_back_exactly_the_words_given(config: str) -> None:
    words = shlex.split(remote_command(HostSpec("h", "h", fleet="fleet", config=config)))
    assert words == ["fleet", "--config", config, "remote-session"]


def test_trust_and_the_control_plane_see_what_a_host_makes_fleet_run(tmp_path: Path) -> None:
    from fleet.agents.writable import exposures
    from fleet.config import describe

    (tmp_path / "w").mkdir()
    text = (HOST + 'ssh_config = "w/ssh_config"\nidentity = "keys/id"\n' + LOCAL.replace('"w"', '"w"\nrole = "worker"')
            + REMOTE)
    path = tmp_path / "fleet.toml"
    path.write_text(text)
    about = describe(path)
    assert about["programs"][-1] == f"ssh -F {tmp_path / 'w/ssh_config'} me@gpu1.internal fleet"
    assert about["remote_agents"] == {"noor": "gpu1"}
    found = {(e.what, e.root) for e in exposures(load_config(path)) if "host gpu1" in e.what}
    cwd = (tmp_path / "w").resolve()
    assert ("the ssh config of host gpu1", cwd) in found  # in a worker's cwd: its ProxyCommand would run here
    assert ("the ssh key of host gpu1", cwd) not in found
