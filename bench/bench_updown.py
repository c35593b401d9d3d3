"""`fleet up` and `fleet down` of many agents: wall time of the real CLI, real Codex, the mock model.

Run inside the loopback-only namespace, after `scripts/setup`:

    scripts/offline .venv/bin/python bench/bench_updown.py [--agents 20] [--runs 5]

Each run starts every agent with one `fleet up --json` (launched at once, then one wait for all of
them to be ready) and stops them with one `fleet down --json` (stopped concurrently), timing each
call from process start to exit; the median of the runs is compared with the targets (up of 20
agents <= 10 s, down of 20 <= 5 s). Everything lives in a temp dir with its own HOME, state dir and
tmux socket dir; the bench's tmux server is killed at the end, even on error. It refuses to run
outside a loopback-only namespace: it starts real Codex processes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench_cli import CODEX_DEFAULT, fleet_argv

from fleet.config import tmux_socket

REPO = Path(__file__).resolve().parent.parent
#: Targets for 20 agents (issue 6); scaled linearly for other counts.
TARGET_UP_S, TARGET_DOWN_S, TARGET_AGENTS = 10.0, 5.0, 20


def refuse_unless_offline() -> None:
    with open("/proc/net/dev") as f:  # per network namespace, unlike /sys/class/net
        interfaces = sorted(line.split(":")[0].strip() for line in f.readlines()[2:])
    if os.environ.get("FLEET_OFFLINE") != "1" or set(interfaces) - {"lo"}:
        sys.exit("bench_updown: refusing to run: it starts real Codex processes and must run inside the "
                 "loopback-only namespace: `scripts/offline .venv/bin/python bench/bench_updown.py`.")


class Fleet:
    def __init__(self, root: Path, n_agents: int, codex: str, model_url: str) -> None:
        from offlinecodex import codex_offline_args

        self.name = f"bench{uuid.uuid4().hex[:8]}"
        self.tmux_dir = Path(tempfile.mkdtemp(prefix="fb-", dir="/tmp"))  # unix socket paths are short
        (root / "home").mkdir()
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("FLEET_CONFIG", "FLEET_HOME", "FLEET_HOLDER", "TMUX", "TMUX_PANE", "CODEX_HOME")}
        self.env.update(HOME=str(root / "home"), XDG_STATE_HOME=str(root / "xdg"), TMUX_TMPDIR=str(self.tmux_dir))
        lines = ["[fleet]", f'name = "{self.name}"', f'state_dir = "{root / "state"}"', "", "[defaults]",
                 f"codex = {json.dumps(codex)}", f"args = {json.dumps(codex_offline_args(model_url))}"]
        for i in range(1, n_agents + 1):
            (root / "work" / f"agent-{i}").mkdir(parents=True)
            lines += ["", f"[agents.agent-{i}]", f'home = "{root / "homes" / f"agent-{i}"}"',
                      f'cwd = "{root / "work" / f"agent-{i}"}"']
        self.config = root / "fleet.toml"
        self.config.write_text("\n".join(lines) + "\n")
        self.state_dir = root / "state"
        self.fleet = fleet_argv()

    def timed(self, *args: str) -> tuple[float, Any]:
        """Run `fleet --config CONFIG ARGS --json`; return (wall seconds, parsed output)."""
        started = time.perf_counter()
        proc = subprocess.run([*self.fleet, "--config", str(self.config), *args, "--json"], capture_output=True,
                              text=True, env=self.env, timeout=600, check=False)
        wall = time.perf_counter() - started
        if proc.returncode != 0:
            raise RuntimeError(f"fleet {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}\n"
                               f"{proc.stdout.strip()[:2000]}")
        return wall, json.loads(proc.stdout)

    def cleanup(self) -> None:
        tmux = ["tmux", "-L", tmux_socket(self.name, self.state_dir.resolve())]
        pids = subprocess.run([*tmux, "list-panes", "-a", "-F", "#{pane_pid}"], capture_output=True, text=True,
                              env=self.env, check=False).stdout.split()
        subprocess.run([*tmux, "kill-server"], capture_output=True, env=self.env, check=False)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        shutil.rmtree(self.tmux_dir, ignore_errors=True)


def summary(samples: list[float], target: float) -> str:
    median = statistics.median(samples)
    verdict = "within" if median <= target else "OVER"
    return (f"median {median:6.2f} s   min {min(samples):6.2f}   max {max(samples):6.2f}   (n={len(samples)})   "
            f"target <= {target:.1f} s: {verdict}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=TARGET_AGENTS)
    parser.add_argument("--runs", type=int, default=5, help="up/down cycles (>= 3)")
    opts = parser.parse_args()
    opts.runs = max(opts.runs, 3)
    rel = os.path.relpath(sys.executable, REPO) if sys.executable.startswith(str(REPO)) else sys.executable
    print("reproduce: scripts/offline " + shlex.join([rel, "bench/bench_updown.py", *sys.argv[1:]]))
    refuse_unless_offline()
    codex = os.environ.get("FLEET_TEST_CODEX") or str(CODEX_DEFAULT)
    if not os.access(codex, os.X_OK):
        sys.exit(f"bench_updown: the pinned Codex CLI is not installed at {codex}: run `scripts/setup` first.")
    sys.path[:0] = [str(REPO), str(REPO / "examples")]
    from mockmodel import MockModel, MockServer

    print(f"{opts.agents} agents, {opts.runs} runs, {os.cpu_count()} CPUs, codex {codex}", flush=True)
    scale = opts.agents / TARGET_AGENTS
    ups, downs = [], []
    root = Path(tempfile.mkdtemp(prefix="fleet-bench-"))
    try:
        with MockServer(MockModel(default_text="Done.")) as model:
            fleet = Fleet(root, opts.agents, codex, model.url)
            try:
                for run in range(1, opts.runs + 1):
                    up_s, up = fleet.timed("up", "--timeout", "300")
                    started = [a for a in up["agents"] if a["result"] == "started"]
                    if len(started) != opts.agents:
                        raise RuntimeError(f"run {run}: only {len(started)} of {opts.agents} started: {up}")
                    down_s, down = fleet.timed("down")
                    if any(a["result"] != "stopped" for a in down["agents"]):
                        raise RuntimeError(f"run {run}: not every agent stopped: {down}")
                    forced = sum(1 for a in down["agents"] if a["forced"])
                    print(f"run {run}: up {up_s:5.2f} s, down {down_s:5.2f} s"
                          + (f" ({forced} killed after Ctrl-C)" if forced else ""), flush=True)
                    ups.append(up_s)
                    downs.append(down_s)
            finally:
                fleet.cleanup()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"fleet up   ({opts.agents} agents)  {summary(ups, TARGET_UP_S * scale)}")
    print(f"fleet down ({opts.agents} agents)  {summary(downs, TARGET_DOWN_S * scale)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
