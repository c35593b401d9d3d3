"""Lease throughput and hand-over latency on the PostgreSQL store (a script, not a test).

    python bench/bench_store.py [--url postgresql://...] [--runs 5] [--cycles 2000] [--workers 8] [--seconds 5]

Without `--url` it starts a throwaway cluster (tests/pgcluster.py: Debian's PostgreSQL, a temp dir,
loopback, `fsync=off`, as the tests run it) and removes it afterwards; with `--url` it uses that
database (initialising fleet's schema there) under a fresh namespace, and leaves its rows behind.

1. Uncontended: claim + release cycles per second on one agent through `PgLeaseStore`, one
   connection, median of several runs (target >= 500/s).
2. Contended: `--workers` processes take turns on one agent (claim with wait, hold ~1 ms, release
   with the token, pause 5-15 ms), as bench/bench_leases.py does for the lock files. The hand-over
   latency is the time from just before a release call to just after the next holder's claim
   returned (CLOCK_MONOTONIC, shared by the processes), so it over-states the true free->grant gap
   by the cost of the two calls. Reported as p50/p99, medians over the runs (target p99 <= 20 ms).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from fleet.config.store import StoreSettings  # noqa: E402 -- after the path set-up above
from fleet.leases.pg import PgLeaseStore  # noqa: E402
from fleet.store.admin import init_schema  # noqa: E402
from fleet.store.db import Database  # noqa: E402

WORKER = textwrap.dedent(
    """
    import json, os, random, sys, time
    from fleet.config.store import StoreSettings
    from fleet.leases.pg import PgLeaseStore
    from fleet.store.db import Database

    url, namespace, state_dir, journal, holder, seconds = sys.argv[1:7]
    store = PgLeaseStore(Database(StoreSettings(url=url, namespace=namespace)), state_dir, surface="bench")
    store.info("a1")  # connect before the clock starts
    rng = random.Random(holder)
    fd = os.open(journal, os.O_WRONLY | os.O_APPEND)
    end_at = time.monotonic() + float(seconds)
    while time.monotonic() < end_at:
        got = store.claim("a1", holder, ttl=30, wait=10)
        granted = time.monotonic()
        time.sleep(0.001)
        released = time.monotonic()
        store.release("a1", holder, token=got["token"])
        line = {"holder": holder, "token": got["token"], "granted": granted, "released": released}
        os.write(fd, (json.dumps(line) + "\\n").encode())
        time.sleep(rng.uniform(0.005, 0.015))
    """
)


def uncontended(url: str, cycles: int) -> float:
    db = Database(StoreSettings(url=url, namespace=f"bench-{uuid.uuid4().hex[:8]}"))
    with tempfile.TemporaryDirectory() as tmp:
        store = PgLeaseStore(db, Path(tmp), surface="bench")
        store.info("a1")
        start = time.perf_counter()
        for _ in range(cycles):
            got = store.claim("a1", "bench")
            store.release("a1", "bench", token=got["token"])
        elapsed = time.perf_counter() - start
    db.close()
    return cycles / elapsed


def contended(url: str, workers: int, seconds: float) -> tuple[list[float], int]:
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as tmp:
        journal = Path(tmp) / "holds.jsonl"
        journal.touch()
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        procs = [subprocess.Popen([sys.executable, "-c", WORKER, url, namespace, str(Path(tmp) / f"host{i}"),
                                   str(journal), f"w{i}", str(seconds)], env=env) for i in range(workers)]
        for proc in procs:
            if proc.wait(timeout=seconds + 60) != 0:
                raise SystemExit(f"worker failed with status {proc.returncode}")
        holds = sorted((json.loads(x) for x in journal.read_text().splitlines()), key=lambda h: h["granted"])
    gaps = []
    for before, after in itertools.pairwise(holds):
        if after["granted"] < before["released"] or after["token"] <= before["token"]:
            raise SystemExit(f"exclusion broken: {before} {after}")
        gaps.append(after["granted"] - before["released"])
    return gaps, len(holds)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@contextlib.contextmanager
def store_url(url: str | None) -> Iterator[str]:
    """A database with fleet's schema for a bench: `url` as given, else a throwaway cluster (closed at
    the end, even on error)."""
    cluster = None
    if url is None:
        from pgcluster import PgCluster

        cluster = PgCluster()
        url = cluster.url()
    try:
        db = Database(StoreSettings(url=url, namespace="bench"), check_schema=False)
        init_schema(db)
        db.close()
        yield url
    finally:
        if cluster is not None:
            cluster.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a PostgreSQL database to use (default: a throwaway cluster)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cycles", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    print("$", shlex.join([Path(sys.executable).name, *sys.argv]))
    with store_url(args.url) as url:
        rates = [uncontended(url, args.cycles) for _ in range(args.runs)]
        print(f"uncontended claim+release (PostgreSQL): median {statistics.median(rates):.0f}/s over {args.runs} "
              f"runs of {args.cycles} (min {min(rates):.0f}, max {max(rates):.0f})")
        p50s, p99s, counts = [], [], []
        for _ in range(max(1, args.runs // 2)):
            gaps, holds = contended(url, args.workers, args.seconds)
            p50s.append(percentile(gaps, 0.50) * 1000)
            p99s.append(percentile(gaps, 0.99) * 1000)
            counts.append(holds)
        print(f"{args.workers} contending processes, release->next grant: "
              f"median p50 {statistics.median(p50s):.2f} ms, median p99 {statistics.median(p99s):.2f} ms "
              f"(runs: p99 {', '.join(f'{p:.1f}' for p in p99s)} ms; holds per run {', '.join(map(str, counts))})")


if __name__ == "__main__":
    main()
