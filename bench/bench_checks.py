"""The overhead of running a check in the agent's Codex sandbox against running it bare.

    scripts/offline .venv/bin/python bench/bench_checks.py [--runs 15] [--codex PATH]

For each check (`true`, and a small `python -S -c` that imports json and prints), times in the same
rounds (interleaved, so load hits both alike):
- bare: `/bin/sh -c CMD` as fleet ran checks before (its own process group, output to a temp file);
- sandboxed: `fleet.work.checks.run_check` with the Sandbox fleet builds for a workspace-write agent
  (`codex sandbox ... -- /bin/sh -c <starter> CMD`, the built environment), as verification runs it.
Reported: median, p90, min and max wall time of each, and the median overhead (sandboxed - bare).
Refuses to run outside the loopback-only namespace (it starts the Codex binary). Its Codex home and
cwd are made in a temp dir under the user's home (Codex will not make its helper links under /tmp)
and removed at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fleet.agents.codex import sandbox_argv  # noqa: E402 -- after the path set-up above
from fleet.config import AgentSpec  # noqa: E402
from fleet.work.checks import Sandbox, check_env, run_check  # noqa: E402

#: `true`, and a small Python check (this interpreter by absolute path: a PATH shim would dominate).
CHECKS = {"true": "true",
          "python -c": f"{sys.executable} -S -c 'import json; print(json.dumps({{\"ok\": 1}}))'"}


def bare(cmd: str, cwd: Path) -> float:
    with tempfile.TemporaryFile() as out:
        began = time.perf_counter()
        proc = subprocess.Popen(["/bin/sh", "-c", cmd], cwd=cwd, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        status = proc.wait()
        elapsed = time.perf_counter() - began
    if status != 0:
        raise SystemExit(f"bare check {cmd!r} failed with {status}")
    return elapsed


def sandboxed(cmd: str, cwd: Path, sandbox: Sandbox) -> float:
    began = time.perf_counter()
    result = run_check(cmd, cwd, 60, sandbox)
    elapsed = time.perf_counter() - began
    if not result.passed:
        raise SystemExit(f"sandboxed check {cmd!r} failed: {result.output_tail}")
    return elapsed


def summary(xs: list[float]) -> str:
    ms = sorted(x * 1000 for x in xs)
    p90 = ms[min(len(ms) - 1, int(len(ms) * 0.9))]
    return f"median {statistics.median(ms):6.1f} ms  p90 {p90:6.1f}  min {ms[0]:6.1f}  max {ms[-1]:6.1f}"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--codex", default=str(REPO / ".codex-cli" / "node_modules" / ".bin" / "codex"))
    args = parser.parse_args()
    print(f"scripts/offline .venv/bin/python bench/bench_checks.py --runs {args.runs}")
    if os.environ.get("FLEET_OFFLINE") != "1":
        print("run me inside scripts/offline (I start the Codex binary)", file=sys.stderr)
        return 70
    root = Path(tempfile.mkdtemp(prefix=".fleet-bench-checks-", dir=Path.home()))
    try:
        (root / "home").mkdir()
        (root / "cwd").mkdir()
        spec = AgentSpec(name="bench", home=root / "home", cwd=root / "cwd", role="worker", sandbox="workspace-write",
                         codex=args.codex)
        sandbox = Sandbox(argv=tuple(sandbox_argv(spec)), env={**check_env(os.environ), "CODEX_HOME": str(spec.home)},
                          mode="workspace-write")
        for cmd in CHECKS.values():  # warm the page cache and Codex's helper links once
            bare(cmd, spec.cwd)
            sandboxed(cmd, spec.cwd, sandbox)
        for label, cmd in CHECKS.items():
            plain: list[float] = []
            boxed: list[float] = []
            for _ in range(args.runs):
                plain.append(bare(cmd, spec.cwd))
                boxed.append(sandboxed(cmd, spec.cwd, sandbox))
            over = statistics.median(boxed) - statistics.median(plain)
            print(f"{label:10s} bare       {summary(plain)}")
            print(f"{label:10s} sandboxed  {summary(boxed)}")
            print(f"{label:10s} overhead   median {over * 1000:6.1f} ms per check "
                  f"({statistics.median(boxed) / statistics.median(plain):.1f}x)")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
