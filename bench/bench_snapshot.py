"""Snapshot and compare timings on a 10,000-file repository, ignored files included (a script, not a test).

    python bench/bench_snapshot.py [--files 10000] [--ignored 2000] [--runs 9] [--loose]

Builds a temp git repository of `--files` files in the work tree (~2 KB each, 50 per directory), of
which `--ignored` sit in an ignored `node_modules/`-like tree, commits the rest and packs it as a
clone would be (`--loose` keeps every object loose instead: ~files+dirs more entries to stat). Then
times, median of `--runs` (plus min and max), in one warm process (the page cache is warm too):

- git mode: the baseline `snapshot(cwd)` (what `assign` pays at send time), and the report-time
  `snapshot(cwd, since=before)` + `changed_files` after the "agent" edited 5 files, added one in the
  ignored tree and committed one of them (what the verifier pays), and the baseline's ledger round trip
  (`to_json` -> `json.dumps` -> `json.loads` -> `from_json`) with its size;
- tree mode: the same snapshot + compare on the same files with no `.git`.

Target from issue 12: snapshot + compare, ignored files included, on 10,000 files <= 1 s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fleet.work.snapshot import Snapshot, changed_files, snapshot  # noqa: E402 -- after the path set-up


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(cwd), "-c", "user.name=b", "-c", "user.email=b@example.invalid",
                    "-c", "gc.auto=0", *args],
                   check=True, stdout=subprocess.DEVNULL)


def fill(root: Path, files: int, ignored: int) -> None:
    root.mkdir(parents=True)
    (root / ".gitignore").write_text("node_modules/\n")
    body = ("x = 1  # some source line of a typical length, repeated to make a 2 KB file\n" * 26).encode()
    for i in range(files - 1):
        sub = root / ("node_modules" if i < ignored else "src") / f"d{i // 50:04d}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"f{i:05d}.py").write_bytes(body + str(i).encode())


def edit(root: Path, round_: int) -> None:
    """What the agent does between the snapshots: 5 edits, a file in the ignored tree, one commit."""
    dirs = sorted((root / "src").iterdir())
    for k in range(5):
        path = next(dirs[k % len(dirs)].glob("*.py"))
        path.write_text(f"edited {round_}\n")
    (root / "node_modules" / f"planted-{round_}.js").write_text("evil()\n")


def timed(fn: Callable[[], object], runs: int) -> list[float]:
    fn()
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        out.append((time.perf_counter() - started) * 1000)
    return out


def show(name: str, ms: list[float], target: float | None = None) -> None:
    goal = f"   (target <= {target:.0f} ms)" if target else ""
    print(f"{name:<58} median {statistics.median(ms):8.1f} ms   min {min(ms):8.1f}   max {max(ms):8.1f}{goal}")


def bench_mode(root: Path, runs: int, label: str, commit: bool) -> None:
    before = snapshot(root)
    print(f"{label}: {len(before.files)} entries recorded, notes: {list(before.notes) or 'none'}")
    show(f"{label}: baseline snapshot(cwd)", timed(lambda: snapshot(root), runs))
    rounds = iter(range(10_000))

    def report_time() -> list[str]:
        edit(root, next(rounds))
        if commit:
            git(root, "commit", "-q", "-am", "agent")
        return changed_files(before, snapshot(root, since=before))

    changed = report_time()
    print(f"{label}: {len(changed)} paths changed, e.g. {changed[:3]}")
    samples = []
    for _ in range(runs):  # the edit and the commit are outside the timed part
        edit(root, next(rounds))
        if commit:
            git(root, "commit", "-q", "-am", "agent")
        started = time.perf_counter()
        changed_files(before, snapshot(root, since=before))
        samples.append((time.perf_counter() - started) * 1000)
    show(f"{label}: snapshot(cwd, since) + changed_files", samples, 1000)
    text = json.dumps(before.to_json())
    show(f"{label}: baseline ledger round trip ({len(text) / 1e6:.1f} MB JSON)",
         timed(lambda: Snapshot.from_json(json.loads(json.dumps(before.to_json()))), runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--ignored", type=int, default=2_000)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--loose", action="store_true", help="keep the objects loose (no git gc)")
    args = parser.parse_args()
    print(f"$ python bench/bench_snapshot.py --files {args.files} --ignored {args.ignored} --runs {args.runs}"
          f"{' --loose' if args.loose else ''}   (cpus: {os.cpu_count()})")
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        fill(repo, args.files, args.ignored)
        git(repo, "init", "-q", "-b", "main")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "init")
        if not args.loose:
            git(repo, "gc", "-q")
        bench_mode(repo, args.runs, "git", commit=True)
        plain = Path(tmp) / "plain"
        fill(plain, args.files, args.ignored)
        bench_mode(plain, args.runs, "tree", commit=False)


if __name__ == "__main__":
    main()
