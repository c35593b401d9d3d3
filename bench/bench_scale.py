"""A 1,000-agent fleet's store traffic against one PostgreSQL (a script, not a test; issue 17).

    scripts/offline .venv/bin/python bench/bench_scale.py [--url postgresql://...] [--hosts 20] [--agents 50]
        [--tick 30] [--poll 5] [--finish 1200] [--seconds 30] [--runs 3]

Without `--url` it starts a throwaway cluster (tests/pgcluster.py, as bench/bench_store.py does:
a temp dir, loopback, `fsync=off`) and removes it afterwards. Each of `--hosts` hosts is one
process (multiprocessing) driving its `--agents` agents through fleet's real store classes
(`PgLeaseStore`, `PgLedger` on one shared `Database`, as the service holds them), with the
traffic one watchdog/lead tick of such a host makes, repeated:

- every agent's lease, once per tick: a busy agent's `assignment:<id>` holder renews its lease
  (`claim`), an idle agent gets the watchdog's transient guard (`guard(agent, "watchdog")`, a grant
  and its end: two transactions, timed as one operation);
- `fleet status`-like listing: `info` for each of the host's agents, once per tick;
- the lead polling `events_since` for the host, `--tick / --poll` times per tick;
- assignments: each agent runs one after another through create -> sent (+ the assignment
  holder's `claim`) -> `delivered` (annotate_once) -> working -> `report_asked` (annotate_once)
  -> reported -> verified (+ `release`). An agent takes one step per tick with probability
  7 * tick / finish, so one assignment finishes every `--finish` seconds (20 min) of simulated
  time per agent on average. Before the clock starts every agent is put at a random step of its
  first assignment (untimed), so the mix measured is the steady state's.

The ticks are COMPRESSED: each host runs its simulated ticks back-to-back for `--seconds` of wall
time, as fast as the machine and the database let it. The headroom is simulated time / wall
time (ticks done x tick / seconds): how many times real time the whole fleet's traffic could run.
`--only leases` / `--only ledger` are ceiling probes: the
same hosts making only the lease and reader calls (assignments stay where seeding left them), or
only assignment steps back-to-back (every agent a step per pass; its "headroom" means nothing).
The operations per second and latencies (p50/p90/p99 per kind, wall clock around each call) are
over all hosts; medians over `--runs`. On a small machine the 20 client processes and the
server share the CPUs, so the headroom is a lower bound for the database alone.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import shlex
import statistics
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "bench")]

from bench_cli import net_interfaces  # noqa: E402 -- after the path set-up above
from bench_store import store_url  # noqa: E402

from fleet.config.store import StoreSettings  # noqa: E402
from fleet.leases.pg import PgLeaseStore  # noqa: E402
from fleet.store.db import Database  # noqa: E402
from fleet.vocab import assignment_holder  # noqa: E402

#: An assignment's steps, one per advancing tick: (ledger operation, state moved to or event kind).
STEPS = ("create", "sent", "delivered", "working", "report_asked", "reported", "verified")
KINDS = ("lease.renew", "lease.guard", "lease.info", "ledger.events_since", "ledger.create",
         "ledger.transition", "ledger.annotate_once", "lease.claim", "lease.release")


class Host:
    """One host: its agents, their assignment steps, and the timings of every store call."""

    def __init__(self, url: str, namespace: str, index: int, agents: int, state_dir: Path, args: Any) -> None:
        from fleet.work.pgledger import PgLedger

        self.db = Database(StoreSettings(url=url, namespace=namespace))
        self.leases = PgLeaseStore(self.db, state_dir, surface="bench")
        self.ledger = PgLedger(self.db, state_dir)
        self.name = f"h{index:02d}"
        self.agents = [f"{self.name}a{i:02d}" for i in range(agents)]
        self.step: dict[str, int] = dict.fromkeys(self.agents, 0)  # next step in STEPS
        self.current: dict[str, str] = {}  # agent -> open assignment id
        self.only = args.only
        self.advance = 0.0 if args.only == "leases" else min(1.0, len(STEPS) * args.tick / args.finish)
        self.polls = max(1, round(args.tick / args.poll))
        self.rng = random.Random(index)
        self.cursor = 0
        self.samples: dict[str, list[float]] = defaultdict(list)

    def timed(self, kind: str, call: Any, *a: Any, **kw: Any) -> Any:
        start = time.perf_counter()
        result = call(*a, **kw)
        self.samples[kind].append(time.perf_counter() - start)
        return result

    def guard(self, agent: str) -> None:
        with self.leases.guard(agent, "watchdog"):
            pass

    def tick(self) -> None:
        if self.only == "ledger":  # every agent one assignment step, nothing else: the ledger's ceiling
            for agent in self.agents:
                self.assignment_step(agent)
            return
        for agent in self.agents:
            if agent in self.current:
                self.timed("lease.renew", self.leases.claim, agent, assignment_holder(self.current[agent]), ttl=3600)
            else:
                self.timed("lease.guard", self.guard, agent)
            if self.rng.random() < self.advance:
                self.assignment_step(agent)
        for agent in self.agents:
            self.timed("lease.info", self.leases.info, agent)
        for _ in range(self.polls):
            events, self.cursor = self.timed("ledger.events_since", self.ledger.events_since, self.cursor, 500)
            while len(events) == 500:
                events, self.cursor = self.timed("ledger.events_since", self.ledger.events_since, self.cursor, 500)

    def seed(self) -> None:
        """Before the clock: each agent at a random step of an assignment (untimed), so the measured
        mix is the steady state's rather than every agent creating its first assignment at once."""
        for agent in self.agents:
            for _ in range(self.rng.randrange(len(STEPS))):
                self.assignment_step(agent)
        self.samples.clear()

    def assignment_step(self, agent: str) -> None:
        step = STEPS[self.step[agent]]
        self.step[agent] = (self.step[agent] + 1) % len(STEPS)
        if step == "create":
            a, _ = self.timed("ledger.create", self.ledger.create, task=f"simulated work for {agent}",
                              holder="lead", actor="lead", agent=agent, request_id=uuid.uuid4().hex)
            self.current[agent] = a.id
            return
        aid = self.current[agent]
        if step in ("delivered", "report_asked"):
            self.timed("ledger.annotate_once", self.ledger.annotate_once, aid, step, "t1", actor="hook")
            return
        previous = {"sent": "queued", "working": "sent", "reported": "working", "verified": "reported"}[step]
        self.timed("ledger.transition", self.ledger.transition, aid, step, actor="watchdog", expect=previous)
        if step == "sent":
            self.timed("lease.claim", self.leases.claim, agent, assignment_holder(aid), ttl=3600)
        elif step == "verified":
            self.timed("lease.release", self.leases.release, agent, assignment_holder(aid))
            del self.current[agent]


def host_main(url: str, namespace: str, index: int, args: Any, barrier: Any, out: Any) -> None:
    with tempfile.TemporaryDirectory(prefix="fleet-bench-host-") as tmp:
        host = Host(url, namespace, index, args.agents, Path(tmp), args)
        for agent in host.agents:  # connect and create the lease rows before the clock starts
            host.leases.info(agent)
        host.seed()
        host.cursor = host.ledger.latest_cursor()
        barrier.wait()
        start = time.perf_counter()
        ticks = 0
        while time.perf_counter() - start < args.seconds:
            host.tick()
            ticks += 1
        wall = time.perf_counter() - start
        host.db.close()
        out.put({"host": host.name, "ticks": ticks, "wall": wall, "samples": dict(host.samples)})


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def one_run(url: str, args: Any) -> dict[str, Any]:
    namespace = f"sim-{uuid.uuid4().hex[:8]}"
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(args.hosts)
    out = ctx.Queue()
    procs = [ctx.Process(target=host_main, args=(url, namespace, i, args, barrier, out)) for i in range(args.hosts)]
    for proc in procs:
        proc.start()
    results = [out.get(timeout=args.seconds + 300) for _ in procs]
    for proc in procs:
        proc.join(timeout=60)
        if proc.exitcode != 0:
            raise SystemExit(f"host process failed with status {proc.exitcode}")
    wall = max(r["wall"] for r in results)
    merged: dict[str, list[float]] = defaultdict(list)
    for r in results:
        for kind, values in r["samples"].items():
            merged[kind].extend(values)
    headrooms = [r["ticks"] * args.tick / r["wall"] for r in results]
    return {
        "rate": {k: len(v) / wall for k, v in merged.items()},
        "p50": {k: percentile(v, 0.50) * 1000 for k, v in merged.items()},
        "p90": {k: percentile(v, 0.90) * 1000 for k, v in merged.items()},
        "p99": {k: percentile(v, 0.99) * 1000 for k, v in merged.items()},
        "total": sum(len(v) for v in merged.values()) / wall,
        "headroom": statistics.median(headrooms), "headroom_min": min(headrooms),
        "ticks": sum(r["ticks"] for r in results),
    }


def needed(args: Any) -> dict[str, float]:
    """Operations per second the fleet makes in REAL time (the same model, uncompressed)."""
    agents = args.hosts * args.agents
    per_assignment = agents / args.finish  # assignments finished per second, fleet-wide
    return {
        "lease.renew+guard": agents / args.tick,
        "lease.info": agents / args.tick,
        "ledger.events_since": args.hosts / args.poll,
        "ledger writes": per_assignment * len(STEPS),
        "lease.claim+release": per_assignment * 2,
    }


def refuse_unless_offline() -> None:
    """As bench_cli's: only inside `scripts/offline` (loopback only), like the other benches."""
    interfaces = net_interfaces()
    if os.environ.get("FLEET_OFFLINE") != "1" or set(interfaces) - {"lo"}:
        sys.exit("bench_scale: refusing to run outside the loopback-only namespace: "
                 "`scripts/offline .venv/bin/python bench/bench_scale.py`. "
                 f"(FLEET_OFFLINE={os.environ.get('FLEET_OFFLINE')!r}, interfaces: {interfaces})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a PostgreSQL database to use (default: a throwaway cluster)")
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--agents", type=int, default=50, help="agents per host")
    parser.add_argument("--tick", type=float, default=30.0, help="simulated seconds between ticks")
    parser.add_argument("--poll", type=float, default=5.0, help="simulated seconds between the lead's polls")
    parser.add_argument("--finish", type=float, default=1200.0, help="simulated seconds per assignment")
    parser.add_argument("--seconds", type=float, default=30.0, help="wall time per run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", choices=("leases", "ledger"),
                        help="a ceiling probe: only the lease and reader traffic (assignments frozen where "
                             "seeded), or only assignment steps back-to-back (no headroom then)")
    args = parser.parse_args()
    refuse_unless_offline()
    print("$", shlex.join([Path(sys.executable).name, *sys.argv]))
    print(f"{args.hosts} hosts x {args.agents} agents, tick {args.tick:g} s, poll {args.poll:g} s, "
          f"an assignment per agent per {args.finish:g} s; {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    runs = []
    with store_url(args.url) as url:
        for n in range(args.runs):
            runs.append(one_run(url, args))
            print(f"run {n + 1}: {runs[-1]['total']:.0f} ops/s, headroom {runs[-1]['headroom']:.1f}x "
                  f"(slowest host {runs[-1]['headroom_min']:.1f}x), {runs[-1]['ticks']} host ticks", flush=True)

    def med(key: str, kind: str) -> float:
        return statistics.median(r[key].get(kind, 0.0) for r in runs)

    print(f"\nmedians over {args.runs} runs of {args.seconds:g} s (ticks back-to-back):")
    print(f"{'kind':<22}{'ops/s':>9}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}")
    for kind in KINDS:
        if any(kind in r["rate"] for r in runs):
            print(f"{kind:<22}{med('rate', kind):>9.1f}{med('p50', kind):>9.2f}{med('p90', kind):>9.2f}"
                  f"{med('p99', kind):>9.2f}")
    total = statistics.median(r["total"] for r in runs)
    headroom = statistics.median(r["headroom"] for r in runs)
    slowest = statistics.median(r["headroom_min"] for r in runs)
    need = needed(args)
    print(f"{'all':<22}{total:>9.1f}")
    print(f"\nthe fleet at real rates needs {sum(need.values()):.1f} ops/s "
          f"({', '.join(f'{k} {v:.1f}' for k, v in need.items())})")
    if args.only == "ledger":
        print(f"ledger writes carried: {sum(med('rate', k) for k in KINDS if k.startswith('ledger.')):.1f}/s "
              f"(the fleet needs {need['ledger writes']:.1f}/s); no headroom in this mode")
        return
    print(f"headroom: {headroom:.1f}x real time (median host; slowest host {slowest:.1f}x); "
          f"{'keeps up' if slowest >= 1 else 'does NOT keep up'}")


if __name__ == "__main__":
    main()
