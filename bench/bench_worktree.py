"""Worktree branch preparation and merge timings on a 10,000-file repository (a script, not a test).

    python bench/bench_worktree.py [--files 10000] [--runs 9]

Builds a temp repository of `--files` files (~2 KB each, 50 per directory) with `main` checked out
in the "user's" clone, packed as a clone is, and one agent worktree of it (made once, untimed). Then
times, median of `--runs` (plus min and max), in one warm process:

- `prepare_branch`: the worktree, on the previous assignment's branch (5 files edited and committed,
  not merged), goes onto a new `fleet/<id>` at main's tip: what `assign` pays before the prompt;
- `commit_verified` of 5 edited files and one new file: what a verdict of `verified` pays;
- merging one verified assignment into `main` (candidates + plan + merge, the user's clean checkout
  of `main` brought along): once as a fast-forward, once as a merge commit (the user committed to
  `main` after the branch was cut).

Targets from issue 14: prepare <= 300 ms, merge of a verified assignment <= 500 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fleet.work import merge as mg  # noqa: E402 -- after the path set-up
from fleet.work import worktrees as wt  # noqa: E402

_ID_CHARS = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(cwd), "-c", "user.name=b", "-c", "user.email=b@example.invalid",
                    "-c", "gc.auto=0", *args], check=True, stdout=subprocess.DEVNULL)


def fill(root: Path, files: int) -> None:
    root.mkdir(parents=True)
    body = ("x = 1  # some source line of a typical length, repeated to make a 2 KB file\n" * 26).encode()
    for i in range(files):
        sub = root / "src" / f"d{i // 50:04d}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"f{i:05d}.py").write_bytes(body + str(i).encode())


def new_id(n: int) -> str:
    return "as-01JF" + "0" * 16 + "".join(_ID_CHARS[(n >> (5 * i)) & 31] for i in range(6))[::-1]


def edit(root: Path, tag: str, k: int = 5) -> None:
    for j in range(k):
        (root / "src" / f"d{j:04d}" / f"f{j * 50:05d}.py").write_text(f"edited {tag}\n")


def show(name: str, ms: list[float], target: float | None = None) -> None:
    goal = f"   (target <= {target:.0f} ms)" if target else ""
    print(f"{name:<58} median {statistics.median(ms):8.1f} ms   min {min(ms):8.1f}   max {max(ms):8.1f}{goal}")


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) * 1000


def merge_one(repo: Path, aid: str, locks: Path) -> None:
    """What `fleet merge ID` does in git: read the branch, plan, merge."""
    mg.merge(repo, mg.plan_merge("main", mg.candidates(repo, [(aid, "verified")])), locks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    print(f"$ python bench/bench_worktree.py --files {args.files} --runs {args.runs}   (cpus: {os.cpu_count()})")
    with tempfile.TemporaryDirectory() as tmp:
        user = Path(tmp) / "user"
        fill(user, args.files)
        git(user, "init", "-q", "-b", "main")
        git(user, "add", "-A")
        git(user, "commit", "-q", "-m", "init")
        git(user, "gc", "-q")
        locks = Path(tmp) / "state" / "locks"
        path = Path(wt.ensure_worktree(user, Path(tmp) / "state" / "worktrees", "ada", base="main").path)
        n = 0
        prepare, commit, ff, merge = [], [], [], []
        for round_ in range(args.runs + 1):  # round 0 warms up and is not counted
            n += 1
            aid = new_id(n)
            ms = timed(partial(wt.prepare_branch, path, aid, "main"))
            edit(path, f"p{round_}")
            (path / f"new-{round_}.txt").write_text("new\n")
            ms_commit = timed(partial(wt.commit_verified, path, aid, "bench edits", "ada"))
            ms_ff = timed(partial(merge_one, user, aid, locks))
            n += 1
            aid = new_id(n)
            wt.prepare_branch(path, aid, "main")
            edit(path, f"m{round_}")
            wt.commit_verified(path, aid, "bench edits", "ada")
            (user / f"user-{round_}.txt").write_text("the user's commit\n")
            git(user, "add", f"user-{round_}.txt")
            git(user, "commit", "-q", "-m", "user")
            ms_merge = timed(partial(merge_one, user, aid, locks))
            if round_:
                prepare.append(ms)
                commit.append(ms_commit)
                ff.append(ms_ff)
                merge.append(ms_merge)
        show("prepare_branch (new fleet/<id> at main's tip)", prepare, 300)
        show("commit_verified (6 files)", commit)
        show("merge one assignment: fast-forward", ff, 500)
        show("merge one assignment: merge commit", merge, 500)
        git(user, "status", "--porcelain")


if __name__ == "__main__":
    main()
