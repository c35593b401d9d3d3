"""CLI latency benches for fleet, measured on this machine with real Codex against the mock model.

Run inside the loopback-only namespace, after `scripts/setup`:

    scripts/offline .venv/bin/python bench/bench_cli.py [--runs 15] [--sends 10] [--agents 10]

Measures (wall time of real `fleet` processes, medians over several runs):
  1. `fleet --version` cold start;
  2. `fleet status --json` with N running agents (real Codex TUIs in tmux, mock model);
  3. send to receipt: `fleet send --json` wall time and the receipt's own `latency_ms`;
  4. one CLI `fleet claim` (claim and release alternate, fixed holder), if fleet/leases.py exists.

Everything it starts lives in a temp dir with its own HOME, state dir and tmux socket dir; all agents
are stopped and the bench's tmux server killed at the end, even on error. It refuses to run outside
a loopback-only namespace: it starts real Codex processes.
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CODEX_DEFAULT = REPO / ".codex-cli" / "node_modules" / ".bin" / "codex"
TARGETS_MS = {"version": 150, "status": 250, "send": 1500, "claim": 150}


def net_interfaces() -> list[str]:
    """This network namespace's interfaces. /proc/net/dev is per namespace; /sys/class/net is not
    (it shows the namespace sysfs was mounted in, i.e. the host's, inside `scripts/offline`)."""
    with open("/proc/net/dev") as f:
        return sorted(line.split(":")[0].strip() for line in f.readlines()[2:])


def refuse_unless_offline() -> None:
    interfaces = net_interfaces()
    if os.environ.get("FLEET_OFFLINE") != "1" or set(interfaces) - {"lo"}:
        sys.exit("bench_cli: refusing to run: it starts real Codex processes and must run inside the "
                 "loopback-only namespace: `scripts/offline .venv/bin/python bench/bench_cli.py`. "
                 f"(FLEET_OFFLINE={os.environ.get('FLEET_OFFLINE')!r}, interfaces: {interfaces})")


def fleet_argv() -> list[str]:
    """The installed `fleet` console script next to this interpreter, else `python -m fleet`."""
    script = Path(sys.executable).parent / "fleet"
    return [str(script)] if os.access(script, os.X_OK) else [sys.executable, "-m", "fleet"]


def stats(samples_ms: list[float]) -> str:
    ordered = sorted(samples_ms)
    p90 = statistics.quantiles(ordered, n=10, method="inclusive")[8] if len(ordered) > 1 else ordered[0]
    return (f"median {statistics.median(ordered):7.1f} ms   p90 {p90:7.1f} ms   "
            f"min {ordered[0]:7.1f}   max {ordered[-1]:7.1f}   (n={len(ordered)})")


def report(label: str, samples_ms: list[float], target: str) -> None:
    verdict = "within" if statistics.median(samples_ms) <= TARGETS_MS[target] else "OVER"
    print(f"{label:<44} {stats(samples_ms)}   target <= {TARGETS_MS[target]} ms: {verdict}", flush=True)


class Bench:
    def __init__(self, root: Path, n_agents: int, codex: str, model_url: str) -> None:
        from mockmodel import codex_offline_args

        self.root = root
        self.name = f"bench{uuid.uuid4().hex[:8]}"
        self.tmux_dir = Path(tempfile.mkdtemp(prefix="fb-", dir="/tmp"))  # unix socket paths are short
        home = root / "home"
        home.mkdir()
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("FLEET_CONFIG", "FLEET_HOME", "FLEET_HOLDER", "TMUX", "TMUX_PANE", "CODEX_HOME")}
        self.env.update(HOME=str(home), XDG_STATE_HOME=str(root / "xdg-state"), TMUX_TMPDIR=str(self.tmux_dir))
        self.agents = [f"agent-{i}" for i in range(1, n_agents + 1)]
        lines = ["[fleet]", f'name = "{self.name}"', f'state_dir = "{root / "state"}"', "", "[defaults]",
                 f"codex = {json.dumps(codex)}", f"args = {json.dumps(codex_offline_args(model_url))}"]
        for agent in self.agents:
            (root / "work" / agent).mkdir(parents=True)
            lines += ["", f"[agents.{agent}]", f'home = "{root / "homes" / agent}"', f'cwd = "{root / "work" / agent}"']
        self.config = root / "fleet.toml"
        self.config.write_text("\n".join(lines) + "\n")
        self.fleet = fleet_argv()

    def run(self, *args: str, timeout: float = 120) -> tuple[float, subprocess.CompletedProcess[str]]:
        """Run `fleet --config CONFIG ARGS`; return (wall ms, process)."""
        argv = [*self.fleet, "--config", str(self.config), *args]
        started = time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, text=True, env=self.env, timeout=timeout, check=False)
        return (time.perf_counter() - started) * 1000, proc

    def json(self, *args: str, timeout: float = 120) -> tuple[float, Any]:
        ms, proc = self.run(*args, "--json", timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"fleet {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}\n"
                               f"{proc.stdout.strip()}")
        return ms, json.loads(proc.stdout)

    def tmux(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["tmux", "-L", f"fleet-{self.name}", *args], capture_output=True, text=True,
                              env=self.env, check=False)

    def cleanup(self) -> None:
        """Stop every agent, then kill the bench's own tmux server and whatever is left in its panes."""
        try:
            _, proc = self.run("down", "--json", timeout=120)
            if proc.returncode != 0:
                print(f"bench_cli: `fleet down` failed: {proc.stderr.strip()}", file=sys.stderr)
        except (OSError, subprocess.SubprocessError) as exc:
            print(f"bench_cli: `fleet down` failed: {exc}", file=sys.stderr)
        pids = self.tmux("list-panes", "-a", "-F", "#{pane_pid}").stdout.split()
        self.tmux("kill-server")
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        shutil.rmtree(self.tmux_dir, ignore_errors=True)


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout} s (last value: {value!r})")
        time.sleep(interval)


def bench_version(fleet: list[str], runs: int, env: dict[str, str]) -> None:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        proc = subprocess.run([*fleet, "--version"], capture_output=True, text=True, env=env, check=False)
        samples.append((time.perf_counter() - started) * 1000)
        if proc.returncode != 0:
            raise RuntimeError(f"fleet --version failed: {proc.stderr}")
    report("fleet --version (cold start)", samples, "version")


def bench_status(b: Bench, runs: int) -> None:
    b.json("status")  # one warm-up run, not counted
    samples = []
    for _ in range(runs):
        ms, result = b.json("status")
        samples.append(ms)
        states = {a["state"] for a in result["agents"]}
        if states != {"idle"}:
            print(f"  note: agents not all idle during the run: {sorted(states)}", flush=True)
    report(f"fleet status --json ({len(b.agents)} agents running)", samples, "status")


def bench_send(b: Bench, sends: int) -> None:
    agent = b.agents[0]
    walls: list[float] = []
    receipts: list[float] = []

    def turn_done(turn_id: str) -> bool:
        [entry] = b.json("status", agent)[1]["agents"]
        last = entry.get("last_turn") or {}
        return entry["state"] == "idle" and last.get("turn_id") == turn_id and last.get("outcome") == "completed"

    for i in range(sends):
        ms, receipt = b.json("send", agent, f"Bench prompt {i + 1}: reply briefly.")
        if not receipt.get("delivered"):
            raise RuntimeError(f"send {i + 1} not delivered: {receipt}")
        walls.append(ms)
        receipts.append(float(receipt["latency_ms"]))
        wait_until(lambda tid=receipt["turn_id"]: turn_done(tid), timeout=60, interval=0.1)
    report("fleet send --json (CLI wall time)", walls, "send")
    report("  receipt latency_ms (paste -> recorded)", receipts, "send")


def bench_claim(b: Bench, runs: int) -> None:
    agent = b.agents[-1]
    holder = "bench-holder"
    samples = []
    for _ in range(runs):
        ms, claim = b.json("claim", agent, "--holder", holder, "--ttl", "60")
        if claim.get("status") == "renewed":
            raise RuntimeError(f"expected a fresh grant after release, got {claim}")
        samples.append(ms)
        b.json("release", agent, "--holder", holder)
    report("fleet claim --json (one CLI call)", samples, "claim")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="runs for version/status/claim (>= 15)")
    parser.add_argument("--sends", type=int, default=10, help="sends for send-to-receipt (>= 10)")
    parser.add_argument("--agents", type=int, default=10, help="running agents for the status bench")
    opts = parser.parse_args()
    opts.runs, opts.sends = max(opts.runs, 15), max(opts.sends, 10)

    rel = os.path.relpath(sys.executable, REPO) if sys.executable.startswith(str(REPO)) else sys.executable
    print("reproduce: scripts/offline " + shlex.join([rel, "bench/bench_cli.py", *sys.argv[1:]]))
    refuse_unless_offline()
    codex = os.environ.get("FLEET_TEST_CODEX") or str(CODEX_DEFAULT)
    if not os.access(codex, os.X_OK):
        sys.exit(f"bench_cli: the pinned Codex CLI is not installed at {codex}: run `scripts/setup` first.")

    sys.path[:0] = [str(REPO), str(REPO / "examples")]
    from mockmodel import MockModel, MockServer

    from fleet import __version__

    print(f"fleet {__version__}, codex {codex}, {os.cpu_count()} CPUs, python {sys.version.split()[0]}, "
          f"fleet command: {shlex.join(fleet_argv())}", flush=True)
    root = Path(tempfile.mkdtemp(prefix="fleet-bench-"))
    try:
        with MockServer(MockModel(default_text="Done.")) as model:
            bench = Bench(root, opts.agents, codex, model.url)
            try:
                bench_version(bench.fleet, opts.runs, bench.env)
                started = time.perf_counter()
                bench.json("up", timeout=300)
                print(f"(started {opts.agents} agents in {time.perf_counter() - started:.1f} s)", flush=True)
                bench_status(bench, opts.runs)
                bench_send(bench, opts.sends)
                if (REPO / "fleet" / "leases.py").exists():
                    bench_claim(bench, opts.runs)
                else:
                    print("fleet claim: skipped (fleet/leases.py is not in this tree)")
            finally:
                bench.cleanup()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
