"""The offline demo: three real Codex agents against the bundled scripted model.

`scripts/demo` runs this inside a loopback-only network namespace. It writes a throw-away fleet.toml
in a temp dir, then shows the real CLI at work: `up`, `status`, a `send` and its receipt, the agent
working and back to idle, a lease claim, and `down`. Nothing it starts outlives it.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mockmodel import MockModel, MockServer, Step, codex_offline_args

AGENTS = {"mila": "explorer", "noor": "worker", "otto": "explorer"}


def _run(config: Path, *args: str, show: bool = True) -> subprocess.CompletedProcess[str]:
    if show:
        print(f"\n$ fleet {shlex.join(args)}", flush=True)
    proc = subprocess.run([sys.executable, "-m", "fleet", "--config", str(config), *args],
                          capture_output=True, text=True, check=False)
    if show:
        print((proc.stdout + proc.stderr).rstrip(), flush=True)
    if proc.returncode != 0 and show:
        raise SystemExit(f"demo: `fleet {args[0]}` failed (exit {proc.returncode})")
    return proc


def main() -> None:
    codex = os.environ.get("FLEET_DEMO_CODEX", "codex")
    model = MockModel(default_text="Report: nothing to change here.")
    model.script(Step(text="Report: the repository has one file, README.md. No risks found.", chunks=12,
                      chunk_delay=0.15))
    with tempfile.TemporaryDirectory(prefix="fleet-demo-") as tmp, MockServer(model) as server:
        root = Path(tmp)
        lines = ["[fleet]", 'name = "demo"', f'state_dir = "{root / "state"}"', "", "[defaults]",
                 f"codex = {json.dumps(codex)}", f"args = {json.dumps(codex_offline_args(server.url))}"]
        for name, role in AGENTS.items():
            work = root / "work" / name
            work.mkdir(parents=True)
            (work / "README.md").write_text(f"# {name}'s project\n")
            lines += ["", f"[agents.{name}]", f'home = "{root / "homes" / name}"', f'cwd = "{work}"',
                      f'role = "{role}"']
        config = root / "fleet.toml"
        config.write_text("\n".join(lines) + "\n")
        print(f"demo fleet.toml ({config}):\n" + config.read_text(), flush=True)
        try:
            _run(config, "up")
            _run(config, "status")
            _run(config, "claim", "mila", "--holder", "lead", "--ttl", "600")
            _run(config, "send", "mila", "Survey the repository and report risks.", "--holder", "lead",
                 "--json")
            _run(config, "status")
            print("\n(waiting for mila's turn to finish...)", flush=True)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                status = json.loads(_run(config, "status", "mila", "--json", show=False).stdout)
                if status["agents"][0]["state"] == "idle":
                    break
                time.sleep(0.2)
            _run(config, "status")
            _run(config, "release", "mila", "--holder", "lead")
        finally:
            _run(config, "down")
    print("\ndemo done: every agent stopped, nothing left running.")


if __name__ == "__main__":
    main()
