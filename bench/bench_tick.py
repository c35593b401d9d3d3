"""Watchdog tick bench: a tick over N agents with nothing to do, its wall time and its memory.

    .venv/bin/python bench/bench_tick.py [--agents 20] [--runs 15]

The timer runs `fleet watchdog tick` once a minute forever, so what matters is a real process: cold
start, config, one `tmux list-panes`, every agent's journal and lease, the ledger and the watchdog's
tables, one tick row written. Measured (medians over `--runs`):

1. `fleet watchdog tick --json` as a process: wall time (target <= 300 ms) and peak RSS;
2. the tick in-process (`run_tick`), without interpreter start-up;
3. `fleet watchdog tick --dry-run --json` as a process.

The agents are real sessions on the fleet's private tmux server, each running `sleep` in place of the
Codex TUI, with journals shaped like an idle Codex agent's (launched, ready, a few finished turns with
hooks and tools): the tick reads exactly what it reads for real agents, and never the screen of an
idle one, so twenty real Codex processes (~3.6 GB RSS) are not needed to measure it. The ledger holds
`--history` ended assignments, so the tick's queries run against a used ledger, not an empty one.
Everything lives in a temp dir with its own HOME, state dir and tmux socket dir, removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGET_MS = 300


def journal(agent: str, t0: float, turns: int) -> list[dict[str, object]]:
    """An idle Codex agent's journal: launched, ready, then `turns` finished turns."""
    out: list[dict[str, object]] = [{"time": t0, "event": "launched", "home": f"/h/{agent}", "cwd": f"/w/{agent}",
                                     "role": "worker"}, {"time": t0 + 0.5, "event": "ready"}]
    for i in range(turns):
        at = t0 + 10 + i * 30
        turn = f"019a-{agent}-{i:04d}"
        common = {"source": "hook", "session_id": f"sess-{agent}", "turn_id": turn,
                  "transcript_path": f"/h/{agent}/sessions/rollout-{agent}.jsonl"}
        out += [
            {"time": at, "event": "send", "request_id": None, "chars": 120, "sha": "0" * 16, "holder": "cli:bench"},
            {"time": at + 0.3, "event": "turn_started", "hook": "UserPromptSubmit", "prompt": "x" * 120, **common},
            {"time": at + 0.31, "event": "receipt", "turn_id": turn, "session_id": f"sess-{agent}"},
            {"time": at + 2, "event": "tool_started", "hook": "PreToolUse", "tool_name": "Bash", **common},
            {"time": at + 3, "event": "tool_completed", "hook": "PostToolUse", "tool_name": "Bash", **common},
            {"time": at + 5, "event": "turn_completed", "hook": "Stop", "last_message": "Done. " * 40, **common},
            {"time": at + 5.1, "event": "turn_notified", "source": "notify", "turn_id": turn, "last_message": "Done."},
        ]
    return out


def setup(root: Path, agents: int, history: int, turns: int) -> tuple[Path, dict[str, str]]:
    env = {**os.environ, "HOME": str(root / "home"), "TMUX_TMPDIR": str(root / "tmux"),
           "XDG_STATE_HOME": str(root / "xdg"), "XDG_CONFIG_HOME": str(root / "cfg")}
    for var in ("FLEET_CONFIG", "FLEET_HOME", "TMUX", "TMUX_PANE"):
        env.pop(var, None)
    for d in ("home", "tmux", "xdg", "cfg"):
        (root / d).mkdir(mode=0o700)
    state = root / "state"
    lines = ["[fleet]", 'name = "benchtick"', f'state_dir = "{state}"', "", "[defaults]", 'codex = "/bin/true"']
    names = [f"agent-{i:02d}" for i in range(1, agents + 1)]
    for name in names:
        (root / "work" / name).mkdir(parents=True)
        lines += ["", f"[agents.{name}]", f'home = "{root / "homes" / name}"', f'cwd = "{root / "work" / name}"']
    config = root / "fleet.toml"
    config.write_text("\n".join(lines) + "\n")

    os.environ.update({k: env[k] for k in ("HOME", "TMUX_TMPDIR", "XDG_STATE_HOME", "XDG_CONFIG_HOME")})
    sys.path.insert(0, str(REPO))
    from fleet.config import load_config
    from fleet.fsutil import ensure_dir
    from fleet.work.ledger import Ledger

    cfg = load_config(str(config))
    from fleet.agents.runtime import Runtime

    rt = Runtime(cfg)
    ensure_dir(state)
    rt.tmux.write_config()  # the server's config and its private socket dir, as `up` makes them
    t0 = time.time() - 86400
    for name in names:
        agent_dir = ensure_dir(state / "agents" / name)
        with open(agent_dir / "events.jsonl", "w") as f:
            for ev in journal(name, t0, turns):
                f.write(json.dumps(ev) + "\n")
        rt.tmux.new_session(name, "exec sleep 100000", root / "work" / name, {"FLEET_AGENT": name})
    with Ledger(state) as ledger:
        for i in range(history):
            a, _ = ledger.create(task=f"task {i} " + "words " * 30, holder="lead:bench", actor="lead:bench",
                                 agent=names[i % len(names)], prompt="p" * 2000)
            ledger.transition(a.id, "sent", actor="bench", receipt={"turn_id": f"t{i}"}, turn_id=f"t{i}")
            ledger.transition(a.id, "reported", actor="bench", report={"status": "done", "summary": "ok",
                                                                         "changed": [], "tests": "", "risks": ""})
            ledger.transition(a.id, "verified", actor="bench", verification={"verdict": "verified"})
    return config, env


def median_ms(samples: list[float]) -> str:
    return f"median {statistics.median(samples):7.1f} ms  (min {min(samples):.1f}, max {max(samples):.1f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--history", type=int, default=500, help="ended assignments in the ledger")
    parser.add_argument("--turns", type=int, default=40, help="finished turns in each agent's journal")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-tick-", dir="/tmp"))
    config = None
    try:
        config, env = setup(root, args.agents, args.history, args.turns)
        from bench_cli import fleet_argv  # bench/ is on sys.path: it is this script's directory

        argv = [*fleet_argv(), "--config", str(config), "watchdog", "tick", "--json"]
        print(f"$ .venv/bin/python bench/bench_tick.py --agents {args.agents} --runs {args.runs}")
        print(f"{args.agents} idle agents (tmux sessions, Codex-shaped journals of {args.turns} turns), "
              f"{args.history} ended assignments in the ledger")
        proc_ms: list[float] = []
        rss: list[int] = []
        for _ in range(args.runs):
            before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            start = time.perf_counter()
            out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
            proc_ms.append((time.perf_counter() - start) * 1000)
            result = json.loads(out.stdout)
            if result["actions"] or result["skipped"]:
                sys.exit(f"bench_tick: the tick was not idle: {result}")
            rss.append(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss or before)
        dry_ms = []
        for _ in range(args.runs):
            start = time.perf_counter()
            subprocess.run([*argv, "--dry-run"], env=env, capture_output=True, check=True)
            dry_ms.append((time.perf_counter() - start) * 1000)
        from fleet.service.core import Service
        from fleet.service.tick import run_tick

        inproc = []
        for _ in range(args.runs):
            svc = Service(config_path=str(config), surface="bench")
            start = time.perf_counter()
            result = run_tick(svc)
            inproc.append((time.perf_counter() - start) * 1000)
            svc.close()
            if result["actions"]:
                sys.exit(f"bench_tick: the tick was not idle: {result}")
        verdict = "ok" if statistics.median(proc_ms) <= TARGET_MS else "OVER TARGET"
        print(f"fleet watchdog tick (process):    {median_ms(proc_ms)}  target <= {TARGET_MS} ms: {verdict}")
        print(f"fleet watchdog tick --dry-run:    {median_ms(dry_ms)}")
        print(f"run_tick in-process:              {median_ms(inproc)}")
        print(f"peak RSS of a tick process:       {max(rss) / 1024:.1f} MiB (ru_maxrss of the largest child)")
    finally:
        if config is not None:
            from fleet.config import load_config

            subprocess.run(["tmux", "-L", load_config(str(config)).tmux_socket, "kill-server"], env={**os.environ},
                           capture_output=True,
                           check=False)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
