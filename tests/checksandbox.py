"""What a check's sandbox is built from: the secrets fleet's own environment may hold (which no check
may see) and an agent spec with a Codex home and cwd in a temp dir, for the pure tests of the
environment and the `codex sandbox` prefix and for the real check processes."""

from __future__ import annotations

from pathlib import Path

from fleet.config import AgentSpec

#: What fleet's own environment holds that no check may see (values are unique, to grep for).
FLEET_SECRETS = {
    "OPENAI_API_KEY": "sk-fleet-openai-4242", "AWS_SECRET_ACCESS_KEY": "aws-secret-4242",
    "AWS_ACCESS_KEY_ID": "AKIA4242", "SSH_AUTH_SOCK": "/run/ssh-agent-4242.sock", "FLEET_HOME": "/fleet-home-4242",
    "FLEET_HOLDER": "holder-4242", "TMUX": "/tmp/tmux-4242/default,1,0", "TMUX_PANE": "%4242",
    "GITHUB_TOKEN": "ghp_4242", "ANTHROPIC_API_KEY": "sk-ant-4242", "DATABASE_PASSWORD": "pw-4242",
}


def spec_for(tmp_path: Path, codex: str, sandbox: str = "workspace-write", args: tuple[str, ...] = ()) -> AgentSpec:
    home = tmp_path / "codex-home"
    home.mkdir(exist_ok=True)
    cwd = tmp_path / "cwd"
    cwd.mkdir(exist_ok=True)
    return AgentSpec(name="a", home=home, cwd=cwd, role="worker", sandbox=sandbox,  # type: ignore[arg-type]
                     codex=codex, args=args)
