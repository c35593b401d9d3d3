"""`fleet status` across remote hosts reached through a real sshd (a script, not a test).

    scripts/offline .venv/bin/python bench/bench_hosts.py [--agents 100] [--hosts 5] [--runs 15]

Starts an sshd on 127.0.0.2 (tests/sshhosts.py: generated keys, all in a temp dir) and K "hosts",
each this machine with its own HOME, state dir, tmux socket dir and fleet.toml defining its share of
the N agents (stopped: no Codex runs). A local fleet.toml puts every agent on its host. Measured,
as median / p90 / min / max:

1. warm: `fleet_status` of all N agents through the process's persistent channels (what the MCP
   server and the dashboard pay per call once the channels are open); target <= 400 ms; and every
   host's routing answer (`assignment_route`), the round trip `assign` without `--to` adds;
2. cold: a whole `fleet status --json` process, which opens its K channels (ssh handshake and the
   remote fleet's start) before asking;
3. one host's own `fleet status --json` run directly (no ssh), the work each host does.
Everything it starts is stopped at the end, even on error.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from sshhosts import make_remote, start_sshd  # noqa: E402 -- after the path set-up above

from fleet import ops  # noqa: E402
from fleet.hosts.channel import close_all  # noqa: E402
from fleet.service import Service  # noqa: E402
from fleet.service.hostroute import order_hosts  # noqa: E402


def summary(samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    p90 = ms[min(len(ms) - 1, round(0.9 * (len(ms) - 1)))]
    return f"median {statistics.median(ms):7.1f} ms  p90 {p90:7.1f}  min {ms[0]:7.1f}  max {ms[-1]:7.1f}"


def timed(fn: object, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--agents", type=int, default=100)
    parser.add_argument("--hosts", type=int, default=5)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    print(f"scripts/offline .venv/bin/python bench/bench_hosts.py --agents {args.agents} --hosts {args.hosts} "
          f"--runs {args.runs}")
    with tempfile.TemporaryDirectory(prefix="fleet-bench-hosts-") as tmp:
        root = Path(tmp)
        (root / "sshd").mkdir()
        sshd_proc, sshd = start_sshd(root / "sshd")
        try:
            names = [f"a{i:03d}" for i in range(args.agents)]
            shares = {f"h{k}": names[k::args.hosts] for k in range(args.hosts)}
            hosts = [make_remote(sshd, root / host, host, agents) for host, agents in shares.items()]
            body = [f'[fleet]\nname = "bench"\nstate_dir = "{root / "local-state"}"\n', *(h.table for h in hosts)]
            body += [f'[agents.{a}]\nhost = "{host}"\nhome = "~/c"\ncwd = "~/w"\n'
                     for host, agents in shares.items() for a in agents]
            config = root / "fleet.toml"
            config.write_text("\n".join(body))

            svc = Service(config_path=str(config))
            first = timed(lambda: ops.invoke(svc, "fleet_status", {}), 1)
            result = ops.invoke(svc, "fleet_status", {})
            states = {a["state"] for a in result["agents"]}
            assert len(result["agents"]) == args.agents, len(result["agents"])
            assert states == {"stopped"}, states
            print(f"status of {args.agents} agents over {args.hosts} hosts ({args.runs} runs)")
            print(f"  first call (opens {args.hosts} channels): {first[0] * 1000:.0f} ms")
            warm = timed(lambda: ops.invoke(svc, "fleet_status", {}), args.runs)
            print(f"  warm (persistent channels): {summary(warm)}")
            ranking = timed(lambda: order_hosts(svc, list(shares), {}, []), args.runs)
            print(f"  warm routing answers of every host (what `assign` without --to adds): {summary(ranking)}")
            close_all()
            cli = [sys.executable, "-m", "fleet", "--config", str(config), "status", "--json"]
            cold = timed(lambda: subprocess.run(cli, check=True, capture_output=True), args.runs)
            print(f"  cold (a fleet status process): {summary(cold)}")
            one = hosts[0]
            direct = [sys.executable, "-m", "fleet", "--config", str(one.config), "status", "--json"]
            env = {**os.environ, **one.env}
            own = timed(lambda: subprocess.run(direct, check=True, capture_output=True, env=env), args.runs)
            print(f"  one host's own status ({len(shares['h0'])} agents, no ssh): {summary(own)}")
        finally:
            close_all()
            sshd_proc.terminate()
            sshd_proc.wait(timeout=10)


if __name__ == "__main__":
    main()
