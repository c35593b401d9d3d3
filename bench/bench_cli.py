"""CLI latency benches for fleet, measured on this machine with real Codex against the mock model.

Run inside the loopback-only namespace, after `scripts/setup`:

    scripts/offline .venv/bin/python bench/bench_cli.py [--runs 15] [--sends 10] [--agents 10]
        [--scale-agents 100 --scale-running 20 --history-kib 1024 | --no-scale]

Measures (wall time of real `fleet` processes, medians over several runs):
  1. cold start of every common command against the bare interpreter (`python -c pass` of the same
     environment), sampled in the same rounds, as a median and a ratio: `--version`, `status`,
     `leases`, `claim`, `release`, and `send` up to the paste (spawn to the journal's `send` event,
     which fleet writes just before it pastes);
  2. `fleet status --json` with N running agents (real Codex TUIs in tmux, mock model);
  3. send to receipt: `fleet send --json` wall time and the receipt's own `latency_ms`;
  4. `fleet status --json` at scale: `--scale-agents` configured, `--scale-running` of them running,
     each running agent's journal padded with `--history-kib` of an earlier launch's events.

Python writes its bytecode cache the first time a module is imported; the bench runs every command
once before timing and clears PYTHONDONTWRITEBYTECODE for the processes it times, so the figures are
those of an installed tool, not of recompiling fleet's sources on every call.

Everything it starts lives in a temp dir with its own HOME, state dir and tmux socket dir; all agents
are stopped and the bench's tmux servers killed at the end, even on error. It refuses to run outside
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

from fleet.config import tmux_socket

REPO = Path(__file__).resolve().parent.parent
CODEX_DEFAULT = REPO / ".codex-cli" / "node_modules" / ".bin" / "codex"
TARGETS_MS = {"cold": 120, "status": 250, "send": 1500, "scale": 300}
#: Cold start may take at most this many times the bare interpreter's start, measured in one run.
COLD_RATIO = 5.0


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
        from offlinecodex import codex_offline_args

        self.root = root
        self.name = f"bench{uuid.uuid4().hex[:8]}"
        self.tmux_dir = Path(tempfile.mkdtemp(prefix="fb-", dir="/tmp"))  # unix socket paths are short
        home = root / "home"
        home.mkdir()
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("FLEET_CONFIG", "FLEET_HOME", "FLEET_HOLDER", "TMUX", "TMUX_PANE", "CODEX_HOME",
                                 "PYTHONDONTWRITEBYTECODE")}
        self.env.update(HOME=str(home), XDG_STATE_HOME=str(root / "xdg-state"), TMUX_TMPDIR=str(self.tmux_dir))
        self.agents = [f"agent-{i}" for i in range(1, n_agents + 1)]
        lines = ["[fleet]", f'name = "{self.name}"', f'state_dir = "{root / "state"}"', "", "[defaults]",
                 f"codex = {json.dumps(codex)}", f"args = {json.dumps(codex_offline_args(model_url))}"]
        for agent in self.agents:
            (root / "work" / agent).mkdir(parents=True)
            lines += ["", f"[agents.{agent}]", f'home = "{root / "homes" / agent}"', f'cwd = "{root / "work" / agent}"']
        self.config = root / "fleet.toml"
        self.config.write_text("\n".join(lines) + "\n")
        self.state_dir = root / "state"
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

    def journal(self, agent: str) -> list[dict[str, Any]]:
        path = self.state_dir / "agents" / agent / "events.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def wait_turn(self, agent: str, turn_id: str) -> None:
        """Wait until the agent is idle again with `turn_id` completed."""
        def done() -> bool:
            [entry] = self.json("status", agent)[1]["agents"]
            last = entry.get("last_turn") or {}
            return bool(entry["state"] == "idle" and last.get("turn_id") == turn_id
                        and last.get("outcome") == "completed")
        wait_until(done, timeout=60, interval=0.1)

    def tmux(self, *args: str) -> subprocess.CompletedProcess[str]:
        socket = tmux_socket(self.name, self.state_dir.resolve())
        return subprocess.run(["tmux", "-L", socket, *args], capture_output=True, text=True,
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


def timed(argv: list[str], env: dict[str, str], cpu: list[float] | None = None) -> float:
    """Wall milliseconds of one process, from spawn to exit; its CPU time (user + system, which
    waiting for a busy CPU does not inflate) is appended to `cpu`."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    ms = (time.perf_counter() - started) * 1000
    proc.returncode = os.waitstatus_to_exitcode(status)
    proc.stderr.close()
    if proc.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)} failed ({proc.returncode}): {err.decode().strip()}")
    if cpu is not None:
        cpu.append((usage.ru_utime + usage.ru_stime) * 1000)
    return ms


def verdict(label: str, samples: list[float], bare: float, cpu: list[float], bare_cpu: float) -> bool:
    median = statistics.median(samples)
    ok = median <= TARGETS_MS["cold"] and median <= COLD_RATIO * bare
    cpu_part = (f"   cpu {statistics.median(cpu):6.1f} ms x{statistics.median(cpu) / bare_cpu:4.1f}" if cpu
                else "   cpu      -        ")
    print(f"  {label:<26} {stats(samples)}   x{median / bare:4.1f}{cpu_part}   "
          f"{'within' if ok else 'OVER'} (<= {TARGETS_MS['cold']} ms and <= {COLD_RATIO:g}x)", flush=True)
    return ok


def bench_cold_start(b: Bench, runs: int, sends: int) -> bool:
    """Every command's cold start and the bare interpreter's, sampled round-robin in one run."""
    bare_argv = [sys.executable, "-c", "pass"]
    claim_agent, holder = b.agents[-1], "bench-cold"
    fleet = [*b.fleet, "--config", str(b.config)]
    commands = {
        "fleet --version": [*b.fleet, "--version"],
        "fleet status": [*fleet, "status"],
        "fleet leases": [*fleet, "leases"],
        "fleet claim": [*fleet, "claim", claim_agent, "--holder", holder],
        "fleet release": [*fleet, "release", claim_agent, "--holder", holder],
    }
    for argv in [bare_argv, *commands.values()]:  # warm-up: bytecode cache, page cache
        timed(argv, b.env)
    bare: list[float] = []
    bare_cpu: list[float] = []
    samples: dict[str, list[float]] = {label: [] for label in commands}
    cpu: dict[str, list[float]] = {label: [] for label in commands}
    for _ in range(runs):
        bare.append(timed(bare_argv, b.env, bare_cpu))
        for label, argv in commands.items():
            samples[label].append(timed(argv, b.env, cpu[label]))
    # send up to the paste: spawn -> the journal's `send` event, written just before the paste
    agent = b.agents[0]
    samples["fleet send (to the paste)"] = []
    for i in range(sends):
        bare.append(timed(bare_argv, b.env, bare_cpu))
        request = f"cold-{uuid.uuid4().hex[:8]}-{i}"
        spawned = time.time()
        _, receipt = b.json("send", agent, f"Cold start probe {i}: reply briefly.", "--request-id", request)
        [sent] = [e for e in b.journal(agent) if e.get("event") == "send" and e.get("request_id") == request]
        samples["fleet send (to the paste)"].append((float(sent["time"]) - spawned) * 1000)
        b.wait_turn(agent, receipt["turn_id"])
    bare_median, bare_cpu_median = statistics.median(bare), statistics.median(bare_cpu)
    print(f"cold start, {runs} rounds ({sends} sends), bare interpreter `{shlex.join(bare_argv)}`: "
          f"{stats(bare)}, cpu {bare_cpu_median:.1f} ms; each command: wall, ratio, cpu time, ratio", flush=True)
    results = [verdict(label, values, bare_median, cpu.get(label, []), bare_cpu_median)
               for label, values in samples.items()]
    return all(results)


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
    for i in range(sends):
        ms, receipt = b.json("send", agent, f"Bench prompt {i + 1}: reply briefly.")
        if not receipt.get("delivered"):
            raise RuntimeError(f"send {i + 1} not delivered: {receipt}")
        walls.append(ms)
        receipts.append(float(receipt["latency_ms"]))
        b.wait_turn(agent, receipt["turn_id"])
    report("fleet send --json (CLI wall time)", walls, "send")
    report("  receipt latency_ms (paste -> recorded)", receipts, "send")


def pad_journal(path: Path, kib: int) -> None:
    """Put `kib` KiB of an earlier launch's history (completed turns with tool calls) before the
    journal's current content, as a long-lived agent's journal has."""
    lines = []
    size = 0
    t = time.time() - 86400
    lines.append(json.dumps({"time": t, "event": "launched", "home": "old", "cwd": "old", "role": "worker"}))
    n = 0
    while size < kib * 1024:
        turn = f"old-{n}"
        for event, extra in (("turn_started", {"prompt": "An earlier task " + "x" * 200}),
                             ("tool_started", {"tool": "shell"}), ("tool_completed", {"tool": "shell"}),
                             ("turn_completed", {"last_message": "Done with the earlier task. " + "y" * 200})):
            t += 0.5
            line = json.dumps({"time": round(t, 3), "event": event, "turn_id": turn, **extra})
            lines.append(line)
            size += len(line) + 1
        n += 1
    lines.append(json.dumps({"time": t + 1, "event": "stopped", "reason": "stopped"}))
    current = path.read_text()
    path.write_text("\n".join(lines) + "\n" + current)


def bench_scale(root: Path, codex: str, model_url: str, opts: argparse.Namespace) -> bool:
    b = Bench(root, opts.scale_agents, codex, model_url)
    running = b.agents[:opts.scale_running]
    try:
        started = time.perf_counter()
        b.json("up", *running, timeout=600)
        print(f"(scale: started {len(running)} of {len(b.agents)} agents in {time.perf_counter() - started:.1f} s)",
              flush=True)
        for agent in running:  # one real turn each, then an earlier launch's history before it
            _, receipt = b.json("send", agent, "Say hello.")
            b.wait_turn(agent, receipt["turn_id"])
            if opts.history_kib:
                pad_journal(b.state_dir / "agents" / agent / "events.jsonl", opts.history_kib)
        b.json("status")  # warm-up
        samples = []
        for _ in range(opts.runs):
            ms, result = b.json("status")
            samples.append(ms)
        states = sorted({a["state"] for a in result["agents"]})
        median = statistics.median(samples)
        ok = median <= TARGETS_MS["scale"]
        print(f"fleet status --json ({len(b.agents)} agents, {len(running)} running, history "
              f"{opts.history_kib} KiB each)   {stats(samples)}   target <= {TARGETS_MS['scale']} ms: "
              f"{'within' if ok else 'OVER'} (states: {', '.join(states)})", flush=True)
        return ok
    finally:
        b.cleanup()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="runs per timed command (>= 15)")
    parser.add_argument("--sends", type=int, default=10, help="sends for send-to-receipt (>= 10)")
    parser.add_argument("--agents", type=int, default=10, help="running agents for the status bench")
    parser.add_argument("--scale-agents", type=int, default=100, help="configured agents for the scale bench")
    parser.add_argument("--scale-running", type=int, default=20, help="running agents for the scale bench")
    parser.add_argument("--history-kib", type=int, default=1024, help="earlier history per running agent")
    parser.add_argument("--no-scale", action="store_true", help="skip the scale bench")
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

    print(f"fleet {__version__}, codex {codex}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}, "
          f"python {sys.version.split()[0]}, fleet command: {shlex.join(fleet_argv())}", flush=True)
    root = Path(tempfile.mkdtemp(prefix="fleet-bench-"))
    ok = True
    try:
        with MockServer(MockModel(default_text="Done.")) as model:
            (root / "small").mkdir()
            bench = Bench(root / "small", opts.agents, codex, model.url)
            try:
                started = time.perf_counter()
                bench.json("up", timeout=600)
                print(f"(started {opts.agents} agents in {time.perf_counter() - started:.1f} s)", flush=True)
                ok &= bench_cold_start(bench, opts.runs, opts.sends)
                bench_status(bench, opts.runs)
                bench_send(bench, opts.sends)
            finally:
                bench.cleanup()
            if not opts.no_scale:
                (root / "scale").mkdir()
                ok &= bench_scale(root / "scale", codex, model.url, opts)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
