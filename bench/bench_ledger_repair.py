"""`fleet ledger-repair` timings over a damaged ledger (a script, not a test).

    python bench/bench_ledger_repair.py [--rows 2000] [--runs 5] [--bad-pages 3]

Each run fills a temp ledger with `--rows` assignments (a 400-character task and a 2 KB prompt each,
5 events each) through the bench_ledger fill, overwrites `--bad-pages` leaf pages of `assignments`
and of `events` with random bytes (the same pages each run), and times, median of `--runs` (plus min
and max), in this process:

- `fault()` (SQLite's quick_check) on the damaged file: what telling damage from a sound file costs;
- the whole repair (`fleet.service.ledgerrepair.ledger_repair`: check, move aside, salvage table by
  table past the bad pages, build and swap in the fresh ledger), with the rows salvaged and lost.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "bench")]

from bench_ledger import fill  # noqa: E402 -- after the path set-up

from fleet.service import Service  # noqa: E402
from fleet.service.ledgerrepair import ledger_repair  # noqa: E402
from fleet.work.ledger import DB_NAME  # noqa: E402
from fleet.work.salvage import fault  # noqa: E402

PAGE = 4096


def smash(db: Path, tables: tuple[str, ...], per_table: int) -> int:
    conn = sqlite3.connect(db)
    pages: list[int] = []
    for table in tables:
        leaves = [int(r[0]) for r in conn.execute(
            "SELECT pageno FROM dbstat WHERE name = ? AND pagetype = 'leaf' ORDER BY pageno", (table,))]
        step = max(1, len(leaves) // (per_table + 1))
        pages += leaves[step::step][:per_table]
    conn.close()
    rnd = random.Random(12)
    with db.open("r+b") as fh:
        for page in pages:
            fh.seek((page - 1) * PAGE)
            fh.write(rnd.randbytes(PAGE))
    return len(pages)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--bad-pages", type=int, default=3)
    opts = ap.parse_args()
    print(f"python bench/bench_ledger_repair.py --rows {opts.rows} --runs {opts.runs} --bad-pages {opts.bad_pages}")
    with tempfile.TemporaryDirectory() as tmp:
        template = Path(tmp) / "template"
        fill(template, opts.rows)
        bad = smash(template / DB_NAME, ("assignments", "events"), opts.bad_pages)
        size = (template / DB_NAME).stat().st_size
        checks, repairs, last = [], [], {}
        for run in range(opts.runs):
            state = Path(tmp) / f"run{run}"
            shutil.copytree(template, state)
            cfg = Path(tmp) / f"fleet{run}.toml"
            cfg.write_text(f'[fleet]\nname = "bench"\nstate_dir = "{state}"\n\n[agents.a]\nhome = "{tmp}/h"\n'
                           f'cwd = "{tmp}"\n')
            started = time.perf_counter()
            problem = fault(state / DB_NAME)
            checks.append(time.perf_counter() - started)
            assert problem is not None
            svc = Service(config_path=str(cfg), surface="bench", holder="bench")
            started = time.perf_counter()
            last = ledger_repair(svc)
            repairs.append(time.perf_counter() - started)
            svc.close()
    print(f"ledger: {opts.rows} assignments, {size / 1e6:.1f} MB, {bad} leaf pages overwritten")
    for name, samples in (("quick_check on the damaged file", checks), ("whole repair", repairs)):
        print(f"{name}: median {statistics.median(samples) * 1000:.0f} ms "
              f"(min {min(samples) * 1000:.0f}, max {max(samples) * 1000:.0f}, {len(samples)} runs)")
    print(f"salvaged {last['salvaged']}, lost {last['lost']}")


if __name__ == "__main__":
    main()
