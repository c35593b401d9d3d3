"""What the control-plane guards cost: the trust check on a `./fleet.toml`, and the placement check
(`fleet.agents.writable.exposures`) that `up` and `doctor` run.

    .venv/bin/python bench/bench_control.py [--runs 200] [--agents 10 100]

Measures, in-process, medians over `--runs` calls:
  1. `load_config()` of a trusted `./fleet.toml` (lookup, trust check, parse) against `load_config(path)`
     of the same file named with --config (no trust check), and the difference;
  2. `exposures(config)` for fleets of N workspace-write agents (each home's config.toml read,
     roots and protected paths resolved).
Nothing runs Codex; everything lives in a temp dir with its own HOME and XDG dirs, removed at the end.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from bench_ledger import timed


def median_ms(fn: Callable[[], object], runs: int) -> float:
    return statistics.median(timed(fn, runs))


def write_fleet(root: Path, agents: int) -> Path:
    lines = ["[fleet]", 'name = "bench"', f'state_dir = "{root / "state"}"', "", "[defaults]",
             'sandbox = "workspace-write"', 'role = "worker"']
    for i in range(agents):
        (root / "work" / f"a{i}").mkdir(parents=True, exist_ok=True)
        lines += ["", f"[agents.a{i}]", f'home = "{root / "homes" / f"a{i}"}"', f'cwd = "{root / "work" / f"a{i}"}"']
    path = root / "fleet.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--agents", type=int, nargs="+", default=[10, 100])
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fleet-bench-control-") as tmp:
        base = Path(tmp)
        for var, sub in (("HOME", "home"), ("XDG_STATE_HOME", "state-home"), ("XDG_CONFIG_HOME", "config-home")):
            (base / sub).mkdir()
            os.environ[var] = str(base / sub)
        os.environ.pop("FLEET_CONFIG", None)
        from fleet.agents.writable import exposures
        from fleet.config import load_config
        from fleet.config.trust import trust

        print(f"python {sys.version.split()[0]}, medians over {opts.runs} calls")
        for n in opts.agents:
            root = base / f"fleet-{n}"
            root.mkdir()
            path = write_fleet(root, n)
            trust(path)
            os.chdir(root)
            found = median_ms(load_config, opts.runs)
            config = load_config(path)
            named = median_ms(functools.partial(load_config, path), opts.runs)
            placed = median_ms(functools.partial(exposures, config), opts.runs)
            print(f"{n:>4} agents: load ./fleet.toml (trusted) {found:6.2f} ms, --config {named:6.2f} ms, "
                  f"trust check {found - named:+5.2f} ms; exposures() {placed:6.2f} ms")


if __name__ == "__main__":
    main()
