"""Ledger read and write timings over a ledger of 10,000 assignments (a script, not a test).

    python bench/bench_ledger.py [--rows 10000] [--runs 15]

Fills a temp ledger with `--rows` assignments (realistic sizes: a 400-character task, a 2 KB prompt,
a report and a verification; 5 events each; 1% still open) in one bulk transaction through the
ledger's own schema, then times, median of `--runs` (plus min and max):

- `summaries()` (the compact rows a list shows: one page of 100, newest first), with
  `open_only=True`, and every row (`limit=10000`); then the same with full rows (`assignments`, with
  prompts, reports and verifications decoded), in a warm process;
- the same first page in a cold process (`python -c`: import, open, list), what a CLI call pays;
- `events_since(cursor)` for the newest 200 events, from 0 (the oldest 200), and for one assignment;
- one `create` and one `transition` (each a `BEGIN IMMEDIATE` transaction with an fsync).

Targets from issue 7: `assignments` over 10,000 rows <= 200 ms, `events --since` <= 50 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fleet.work.ledger import DB_NAME, Ledger, new_assignment_id  # noqa: E402 -- after the path set-up


def fill(state: Path, rows: int) -> None:
    with Ledger(state):
        pass  # the schema
    db = sqlite3.connect(state / DB_NAME, isolation_level=None)
    now = time.time() - rows
    report = json.dumps({"status": "done", "summary": "s" * 300, "changed": ["docs/a.md", "src/b.py"],
                         "tests": "pytest -q: 40 passed", "risks": "none"})
    verification = json.dumps({"verdict": "verified", "reasons": [], "changed": ["docs/a.md", "src/b.py"],
                               "checks": [{"cmd": "pytest -q", "status": 0, "tail": "40 passed"}]})
    db.execute("BEGIN IMMEDIATE")
    for i in range(rows):
        t = now + i
        aid = new_assignment_id(t)
        is_open = i % 100 == 0
        state_ = "working" if is_open else "verified"
        db.execute(
            "INSERT INTO assignments (id, agent, holder, task, prompt, skills, read_paths, write_paths, checks, "
            "deadline, state, receipt, turn_id, report, verification, request_id, created_at, updated_at, sent_at, "
            "ended_at) VALUES (?, ?, 'lead', ?, ?, '[\"pdf\"]', '[]', '[\"docs/\"]', '[\"pytest -q\"]', ?, ?, ?, ?, "
            "?, ?, ?, ?, ?, ?, ?)",
            (aid, f"agent-{i % 12}", "t" * 400, "p" * 2000, t + 3600, state_, json.dumps({"turn_id": f"turn-{i}"}),
             f"turn-{i}", None if is_open else report, None if is_open else verification, f"req-{i}", t, t, t,
             None if is_open else t + 60),
        )
        steps = [(None, "queued"), ("queued", "sent"), ("sent", "working")]
        if not is_open:
            steps += [("working", "reported"), ("reported", "verified")]
        for frm, to in steps:
            db.execute("INSERT INTO events (time, assignment, agent, actor, kind, from_state, to_state, details) "
                       "VALUES (?, ?, ?, 'bench', ?, ?, ?, '{}')",
                       (t, aid, f"agent-{i % 12}", "created" if frm is None else "transition", frm, to))
    db.execute("COMMIT")
    db.close()


def timed(fn: Callable[[], object], runs: int) -> list[float]:
    fn()  # warm the page cache and the statement cache
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        out.append((time.perf_counter() - started) * 1000)
    return out


def show(name: str, ms: list[float], target: float | None = None) -> None:
    goal = f"   (target <= {target:.0f} ms)" if target else ""
    print(f"{name:<52} median {statistics.median(ms):8.2f} ms   min {min(ms):8.2f}   max {max(ms):8.2f}{goal}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    print(f"$ python bench/bench_ledger.py --rows {args.rows} --runs {args.runs}   (cpus: {os.cpu_count()})")
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "state"
        started = time.perf_counter()
        fill(state, args.rows)
        size = (state / DB_NAME).stat().st_size
        print(f"filled {args.rows} assignments, {state.joinpath(DB_NAME).name} {size / 1e6:.1f} MB, "
              f"in {time.perf_counter() - started:.1f} s")
        with Ledger(state) as led:
            latest = led.latest_cursor()
            one = led.assignments(limit=1)[0].id
            show("summaries() first page of 100", timed(led.summaries, args.runs), 200)
            show("summaries(open_only=True)", timed(lambda: led.summaries(open_only=True), args.runs), 200)
            show(f"summaries(limit={args.rows}) every row",
                 timed(lambda: led.summaries(limit=args.rows), max(3, args.runs // 3)), 200)
            show("assignments() first page of 100 (full rows)", timed(led.assignments, args.runs), 200)
            show("assignments(open_only=True)", timed(lambda: led.assignments(open_only=True), args.runs), 200)
            show(f"assignments(limit={args.rows}) every full row",
                 timed(lambda: led.assignments(limit=args.rows), max(3, args.runs // 3)), 200)
            show("events_since(newest 200)", timed(lambda: led.events_since(latest - 200), args.runs), 50)
            show("events_since(0) oldest 200", timed(lambda: led.events_since(0), args.runs), 50)
            show("events_since(0, assignment=one)", timed(lambda: led.events_since(0, assignment=one), args.runs), 50)
            made: list[str] = []
            show("create()", timed(lambda: made.append(led.create(task="x", holder="b", actor="b")[0].id), args.runs))
            show("transition() queued->cancelled",
                 timed(lambda: led.transition(made.pop(), "cancelled", actor="b"), min(args.runs, len(made) - 1)))
        code = ("import sys; sys.path.insert(0, sys.argv[2]); from pathlib import Path; "
                "from fleet.work.ledger import Ledger; led = Ledger(Path(sys.argv[1])); led.summaries(); led.close()")
        cold = []
        for _ in range(max(5, args.runs // 2)):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", code, str(state), str(REPO)], check=True)
            cold.append((time.perf_counter() - started) * 1000)
        show("cold process: start python, open, first page", cold)


if __name__ == "__main__":
    main()
