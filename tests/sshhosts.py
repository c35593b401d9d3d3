"""A real `sshd` on a loopback address, and "remote hosts" reached through it (tests of `fleet.hosts`).

`sshd` (Debian's openssh-server, installed by scripts/setup) runs in the foreground on 127.0.0.2 with a
generated host key, a generated client key and its own config, all in a temp dir. A "remote host" is
this machine reached through it, with its own HOME, state dir, fleet config and tmux socket dir,
passed on the remote command line (`env HOME=... python -m fleet`); its fleet is this checkout's.
"""

from __future__ import annotations

import os
import pwd
import shlex
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

SSHD = "/usr/sbin/sshd"
ADDRESS = "127.0.0.2"


@dataclass(frozen=True)
class Sshd:
    dir: Path
    port: int
    ssh_config: Path  # a client config (-F): key, port, user, known hosts


def free_port(address: str = ADDRESS) -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


def start_sshd(d: Path) -> tuple[subprocess.Popen[bytes], Sshd]:
    if not Path(SSHD).is_file() or shutil.which("ssh") is None:
        pytest.fail("sshd or ssh is missing: run scripts/setup (installs openssh-server as root).")
    for name in ("hostkey", "client"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / name)], check=True)
    shutil.copy(d / "client.pub", d / "authorized_keys")
    port = free_port()
    (d / "sshd_config").write_text(
        f"ListenAddress {ADDRESS}:{port}\nHostKey {d / 'hostkey'}\nAuthorizedKeysFile {d / 'authorized_keys'}\n"
        f"PidFile {d / 'sshd.pid'}\nUsePAM no\nStrictModes no\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nLogLevel ERROR\nMaxStartups 100\n"
        "MaxSessions 100\n")
    user = pwd.getpwuid(os.getuid()).pw_name
    client = d / "ssh_config"
    client.write_text(f"Host *\n  User {user}\n  Port {port}\n  IdentityFile {d / 'client'}\n  IdentitiesOnly yes\n"
                      f"  StrictHostKeyChecking no\n  UserKnownHostsFile {d / 'known_hosts'}\n  LogLevel ERROR\n")
    Path("/run/sshd").mkdir(exist_ok=True)
    proc = subprocess.Popen([SSHD, "-D", "-f", str(d / "sshd_config"), "-E", str(d / "sshd.log")])
    deadline = time.monotonic() + 10
    while True:
        with socket.socket() as s:
            if s.connect_ex((ADDRESS, port)) == 0:
                break
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"sshd did not start: {(d / 'sshd.log').read_text() if (d / 'sshd.log').exists() else ''}")
        time.sleep(0.02)
    return proc, Sshd(d, port, client)


@dataclass(frozen=True)
class RemoteHost:
    """One "remote host": its dirs, its fleet.toml, and the `[hosts.NAME]` table that reaches it."""

    name: str
    root: Path
    config: Path
    state_dir: Path
    env: dict[str, str]
    table: str

    def fleet(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run this host's fleet directly (not over ssh): to set things up and look at them."""
        return subprocess.run([sys.executable, "-m", "fleet", "--config", str(self.config), *args],
                              env={**os.environ, **self.env}, capture_output=True, text=True, check=check,
                              timeout=60)


def make_remote(sshd: Sshd, root: Path, name: str, agents: list[str], *, fleet_cmd: str | None = None,
                port: int | None = None, codex: str = "/bin/false") -> RemoteHost:
    root.mkdir(parents=True)
    env = {"HOME": str(root / "home"), "XDG_STATE_HOME": str(root / "xdg-state"),
           "XDG_CONFIG_HOME": str(root / "xdg-config"), "TMUX_TMPDIR": str(root / "tmux")}
    for key in ("HOME", "TMUX_TMPDIR"):
        Path(env[key]).mkdir(parents=True)
    state = root / "state"
    body = [f'[fleet]\nname = "{name}"\nstate_dir = "{state}"\n']
    for agent in agents:
        (root / "work" / agent).mkdir(parents=True)
        (root / "codex-homes" / agent).mkdir(parents=True)
        body.append(f'[agents.{agent}]\nhome = "{root / "codex-homes" / agent}"\ncwd = "{root / "work" / agent}"\n'
                    f"codex = {toml_str(codex)}\n")
    config = root / "fleet.toml"
    config.write_text("\n".join(body))
    words = ["env", *(f"{k}={v}" for k, v in env.items()), sys.executable, "-m", "fleet"]
    command = fleet_cmd or " ".join(shlex.quote(w) for w in words)
    table = (f'[hosts.{name}]\nssh = "{ADDRESS}"\nport = {port or sshd.port}\nssh_config = "{sshd.ssh_config}"\n'
             f"fleet = {toml_str(command)}\nconfig = {toml_str(str(config))}\n")
    return RemoteHost(name, root, config, state, env, table)


def toml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
