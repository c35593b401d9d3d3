"""Dashboard bench: the CPU an idle `fleet dash` uses, and how soon a state change shows.

    .venv/bin/python bench/bench_dash.py [--agents 20 50] [--seconds 30] [--changes 10]

For each agent count: a fleet of N idle agents as `bench_tick.py` makes it (real sessions on the
fleet's private tmux server running `sleep` in place of the Codex TUI, journals shaped like an idle
Codex agent's, a used ledger), so the dashboard reads exactly what it reads for real idle agents
(status never needs the screen of an idle one) without N real Codex processes. The dashboard runs as
a real process (`fleet.dash.run`) in a 160x45 window of a second tmux server, as a person's terminal.

1. **Idle CPU**: after a warm-up, user + system CPU of the dashboard process and the processes it
   waited for (tmux capture for the screen region, systemctl for the watchdog), over `--seconds`,
   as a percentage of one core; sampled in windows of 5 s, median reported. Target < 2%.
2. **State change to screen**: a turn starts or ends in one agent's journal (the hook receiver's
   append, done here directly), and the time until the dashboard's screen shows the new state in
   that agent's row (read with `tmux capture-pane` every 20 ms); `--changes` times, median
   reported. Target <= 1.5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_tick import setup  # bench/ is on sys.path when run as a script; inserted above otherwise

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime + cutime + cstime of `pid`, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / CLK_TCK


def append(journal: Path, event: dict[str, object]) -> None:
    with open(journal, "a") as f:
        f.write(json.dumps({"time": round(time.time(), 3), **event}) + "\n")


def row_state(screen: str, agent: str) -> str | None:
    for line in screen.splitlines():
        cells = line.strip("│ ").split()
        if cells and cells[0] == agent:
            return cells[1] if len(cells) > 1 else None
    return None


def run_one(agents: int, seconds: float, changes: int) -> tuple[float, float]:
    root = Path(tempfile.mkdtemp(prefix="bench-dash-", dir="/tmp"))
    outer = ["tmux", "-L", "benchdash-outer"]
    config = None
    try:
        config, env = setup(root, agents, history=200, turns=20)
        code = f"import sys; from fleet.dash import run; sys.exit(run({str(config)!r}))"
        subprocess.run([*outer, "new-session", "-d", "-x", "160", "-y", "45", "-s", "dash", sys.executable, "-c",
                        code], env=env, check=True)
        pid = int(subprocess.run([*outer, "list-panes", "-t", "=dash:", "-F", "#{pane_pid}"], env=env,
                                 capture_output=True, text=True, check=True).stdout.strip())

        def screen() -> str:
            return subprocess.run([*outer, "capture-pane", "-p", "-t", "=dash:"], env=env, capture_output=True,
                                  text=True, check=False).stdout

        target = "agent-02"  # not the selected one: its row, not its screen region, shows the change
        deadline = time.monotonic() + 60
        while row_state(screen(), target) != "idle":
            if time.monotonic() > deadline:
                sys.exit(f"bench_dash: the dashboard never showed {target} idle:\n{screen()}")
            time.sleep(0.2)
        time.sleep(5)  # warm-up: first reads, the watchdog status, imports
        windows = []
        for _ in range(max(1, int(seconds // 5))):
            c0, t0 = cpu_seconds(pid), time.monotonic()
            time.sleep(5)
            windows.append(100 * (cpu_seconds(pid) - c0) / (time.monotonic() - t0))
        journal = root / "state" / "agents" / target / "events.jsonl"
        latencies = []
        for i in range(changes):
            turn = f"bench-turn-{i}"
            common = {"source": "hook", "session_id": f"sess-{target}", "turn_id": turn}
            if i % 2 == 0:
                event, want = {"event": "turn_started", "hook": "UserPromptSubmit", "prompt": "x", **common}, "working"
            else:
                event, want = {"event": "turn_completed", "hook": "Stop", "last_message": "ok",
                               "turn_id": f"bench-turn-{i - 1}", "source": "hook",
                               "session_id": f"sess-{target}"}, "idle"
            start = time.monotonic()
            append(journal, event)
            while row_state(screen(), target) != want:
                if time.monotonic() - start > 20:
                    sys.exit(f"bench_dash: {target} never showed {want}:\n{screen()}")
                time.sleep(0.02)
            latencies.append(time.monotonic() - start)
            time.sleep(0.5)
        subprocess.run([*outer, "send-keys", "-t", "=dash:", "q"], env=env, check=False)
        return statistics.median(windows), statistics.median(latencies)
    finally:
        subprocess.run([*outer, "kill-server"], capture_output=True, check=False)
        if config is not None:
            from fleet.config import load_config

            subprocess.run(["tmux", "-L", load_config(str(config)).tmux_socket, "kill-server"],
                           capture_output=True, check=False)
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, nargs="+", default=[20, 50])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--changes", type=int, default=10)
    args = parser.parse_args()
    print(f"$ .venv/bin/python bench/bench_dash.py --agents {' '.join(map(str, args.agents))} "
          f"--seconds {args.seconds:g} --changes {args.changes}")
    for n in args.agents:
        cpu, latency = run_one(n, args.seconds, args.changes)
        print(f"{n:3d} idle agents: dashboard CPU median {cpu:5.2f}% of one core (target < 2%: "
              f"{'ok' if cpu < 2 else 'OVER'}); state change to screen median {latency * 1000:6.0f} ms "
              f"(target <= 1500 ms: {'ok' if latency <= 1.5 else 'OVER'})")


if __name__ == "__main__":
    main()
