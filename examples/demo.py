"""The offline demo: three real Codex agents against the bundled scripted model.

`scripts/demo` runs this inside a loopback-only network namespace. It writes a throw-away fleet.toml
in a private directory of the user's state (`$XDG_STATE_HOME/fleet-demo/`, default
`~/.local/state/fleet-demo/`, removed at the end; never `/tmp`, which every workspace-write agent can
write, so `fleet up` would refuse it), then shows the real CLI at work: `up`, `status`, an
assignment routed to the worker that edits a file inside its write path and reports (`assign`,
`wait`, `show`: receipt, report, verification), a lease claim and a plain `send` with its
receipt, what the watchdog would do next, and `down`. Nothing it starts outlives it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from mockmodel import MockModel, MockServer
from mocksteps import Step
from offlinecodex import apply_patch_catalog, codex_offline_args

AGENTS = {"mila": "explorer", "noor": "worker", "otto": "explorer"}
PATCH = ("*** Begin Patch\n*** Add File: notes/summary.md\n+# Summary\n+\n"
         "+The project has one file, README.md, which names its owner.\n*** End Patch\n")
REPORT = ("Wrote the summary.\n\n```fleet-report\n"
          + json.dumps({"status": "done", "summary": "Summarised README.md in notes/summary.md.",
                        "changed": ["notes/summary.md"], "tests": "test -f notes/summary.md passes",
                        "risks": "none"})
          + "\n```\n")


def _run(config: Path, *args: str, show: bool = True, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
    if show:
        print(f"\n$ fleet {shlex.join(args)}", flush=True)
    proc = subprocess.run([sys.executable, "-m", "fleet", "--config", str(config), *args],
                          capture_output=True, text=True, check=False)
    if show:
        print((proc.stdout + proc.stderr).rstrip(), flush=True)
    if proc.returncode not in ok and show:
        raise SystemExit(f"demo: `fleet {args[0]}` failed (exit {proc.returncode})")
    return proc


def main() -> None:
    model = MockModel(default_text="Report: nothing to change here.")
    # noor's assignment: one apply_patch inside its write path, then the final message with the report
    model.script(Step(tool=("apply_patch", {"input": PATCH})), Step(text=REPORT))
    with demo_fleet(model) as config:
        print(f"demo fleet.toml ({config}):\n" + config.read_text(), flush=True)
        try:
            _run(config, "up")
            _run(config, "status")
            created = json.loads(_run(config, "assign", "--write", "notes/", "--check", "test -f notes/summary.md",
                                      "--deadline", "10m", "--json",
                                      "Summarise README.md in notes/summary.md.").stdout)
            assignment = created["assignment"]
            _run(config, "wait", assignment, "--timeout", "60", ok=(0, 5))
            _run(config, "show", assignment)
            _run(config, "claim", "mila", "--holder", "lead", "--ttl", "600")
            _run(config, "send", "mila", "Survey the repository and report risks.", "--holder", "lead")
            print("\n(waiting for mila's turn to finish...)", flush=True)
            wait_for_state(config, "mila", "idle")
            _run(config, "status")
            _run(config, "release", "mila", "--holder", "lead")
            _run(config, "assignments")
            if _has_command(config, "watchdog"):
                _run(config, "watchdog", "tick", "--dry-run")
        finally:
            stop_all(config, AGENTS)
    print("\ndemo done: every agent stopped, nothing left running.")


@contextlib.contextmanager
def demo_fleet(model: MockModel, agents: dict[str, str] = AGENTS) -> Iterator[Path]:
    """A throw-away fleet.toml of `agents` (name: role), each with its own Codex home and a one-file
    project, whose Codex talks to `model` served on 127.0.0.1; yields its path. Removed afterwards
    (stop the agents first: `stop_all`)."""
    codex = os.environ.get("FLEET_DEMO_CODEX", "codex")
    with _private_dir() as root, MockServer(model) as server:
        catalog = apply_patch_catalog(codex, root / "catalog.json")
        args = [*codex_offline_args(server.url), "-c", f"model_catalog_json={json.dumps(str(catalog))}"]
        # a name of its own: the tmux server is named from it, and two demos at once must not share one
        name = f"demo-{os.getpid()}"
        lines = ["[fleet]", f'name = "{name}"', f'state_dir = "{root / "state"}"', "", "[defaults]",
                 f"codex = {json.dumps(codex)}", f"args = {json.dumps(args)}"]
        for agent, role in agents.items():
            work = root / "work" / agent
            work.mkdir(parents=True)
            (work / "README.md").write_text(f"# {agent}'s project\n")
            lines += ["", f"[agents.{agent}]", f'home = "{root / "homes" / agent}"', f'cwd = "{work}"',
                      f'role = "{role}"']
        config = root / "fleet.toml"
        config.write_text("\n".join(lines) + "\n")
        yield config


def wait_for_state(config: Path, agent: str, state: str, timeout: float = 30) -> bool:
    """Poll `fleet status AGENT` until the agent is in `state`; False if it is not within `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = json.loads(_run(config, "status", agent, "--json", show=False).stdout)
        if status["agents"][0]["state"] == state:
            return True
        time.sleep(0.2)
    return False


def stop_all(config: Path, agents: dict[str, str]) -> None:
    """`fleet down`; if an assignment still holds an agent, release every lease by force and retry."""
    if _run(config, "down", ok=(0, 1)).returncode != 0:
        for agent in agents:
            _run(config, "release", agent, "--force", show=False)
        _run(config, "down")


@contextlib.contextmanager
def _private_dir() -> Iterator[Path]:
    """A fresh 0700 directory under the user's state dir, removed afterwards."""
    value = os.environ.get("XDG_STATE_HOME", "")
    base = (Path(value) if os.path.isabs(value) else Path.home() / ".local" / "state") / "fleet-demo"
    base.mkdir(parents=True, mode=0o700, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="run-", dir=base))  # 0700
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _has_command(config: Path, name: str) -> bool:
    return _run(config, name, "--help", show=False).returncode == 0


if __name__ == "__main__":
    main()
