"""Lease throughput and hand-over latency through the Python API (a script, not a test).

    python bench/bench_leases.py [--runs 5] [--cycles 2000] [--workers 8] [--seconds 5] [--compare-writes]

1. Uncontended: claim + release cycles per second on one agent, median of several runs. With
   `--compare-writes`, also with the record written the two other ways `fleet/leases/records.py`
   weighed (temp file + fsync + rename; temp file + rename), runs interleaved, same process.
2. Contended: `--workers` processes take turns on one agent (claim with wait, hold ~1 ms, release,
   pause 5-15 ms). The hand-over latency is the time from just before a release call to just after
   the next holder's claim returned (CLOCK_MONOTONIC, shared by all processes on Linux), so it
   over-states the true free->grant gap by the cost of the two calls. Reported as p50/p99.
"""

from __future__ import annotations

import argparse
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
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fleet.leases import LeaseStore, records  # noqa: E402 -- after the path set-up above

WORKER = textwrap.dedent(
    """
    import json, os, random, sys, time
    from fleet.leases import LeaseStore

    state_dir, journal, holder, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    store = LeaseStore(state_dir, surface="bench")
    rng = random.Random(holder)
    fd = os.open(journal, os.O_WRONLY | os.O_APPEND)
    end_at = time.monotonic() + seconds
    while time.monotonic() < end_at:
        got = store.claim("a1", holder, ttl=30, wait=10)
        granted = time.monotonic()
        time.sleep(0.001)
        released = time.monotonic()
        store.release("a1", holder)
        line = {"holder": holder, "token": got["token"], "granted": granted, "released": released}
        os.write(fd, (json.dumps(line) + "\\n").encode())
        time.sleep(rng.uniform(0.005, 0.015))
    """
)


def _temp_rename_write(fsync: bool) -> object:
    """A record write by temp file (+ fsync) + rename, for comparison with fleet's own."""
    def write(paths: records.RecordPaths, obj: dict[str, object]) -> None:
        tmp = paths.record.with_name(f".{paths.record.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, records.encode_record(obj))
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, paths.record)
    return write


def compare_writes(runs: int, cycles: int) -> None:
    ways = {"fleet (spare inode + exchange)": records.write_record,
            "temp + fsync + rename": _temp_rename_write(fsync=True),
            "temp + rename, no fsync": _temp_rename_write(fsync=False)}
    rates: dict[str, list[float]] = {name: [] for name in ways}
    original = records.write_record
    try:
        for _ in range(runs):
            for name, write in ways.items():
                records.write_record = write  # type: ignore[assignment]
                rates[name].append(uncontended(cycles))
    finally:
        records.write_record = original
    for name, values in rates.items():
        print(f"  record write {name:<32} median {statistics.median(values):6.0f} claim+release/s "
              f"(min {min(values):.0f}, max {max(values):.0f})")


def uncontended(cycles: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        store = LeaseStore(Path(tmp))
        store.claim("a1", "warmup")
        store.release("a1", "warmup")
        started = time.perf_counter()
        for _ in range(cycles):
            store.claim("a1", "bench")
            store.release("a1", "bench")
        return cycles / (time.perf_counter() - started)


def contended(workers: int, seconds: float) -> tuple[list[float], int]:
    with tempfile.TemporaryDirectory() as tmp:
        journal = Path(tmp) / "holds.jsonl"
        journal.touch()
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", WORKER, tmp, str(journal), f"w{i}", str(seconds)], env=env
            )
            for i in range(workers)
        ]
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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cycles", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--compare-writes", action="store_true")
    args = parser.parse_args()
    print("$", shlex.join([Path(sys.executable).name, *sys.argv]))

    rates = [uncontended(args.cycles) for _ in range(args.runs)]
    print(
        f"uncontended claim+release: median {statistics.median(rates):.0f}/s "
        f"over {args.runs} runs of {args.cycles} (min {min(rates):.0f}, max {max(rates):.0f})"
    )
    if args.compare_writes:
        compare_writes(args.runs, args.cycles)

    p50s, p99s, counts = [], [], []
    for _ in range(max(1, args.runs // 2)):
        gaps, holds = contended(args.workers, args.seconds)
        p50s.append(percentile(gaps, 0.50) * 1000)
        p99s.append(percentile(gaps, 0.99) * 1000)
        counts.append(holds)
    print(
        f"{args.workers} contending processes, release->next grant: "
        f"median p50 {statistics.median(p50s):.2f} ms, "
        f"median p99 {statistics.median(p99s):.2f} ms (runs: p99 {', '.join(f'{p:.1f}' for p in p99s)} ms; "
        f"holds per run {', '.join(map(str, counts))})"
    )


if __name__ == "__main__":
    main()
