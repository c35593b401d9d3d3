"""What judging an approval and a patch costs: the approve policy's judge, the program check, the
patch-header scan, and fleet's PermissionRequest hook end to end (a real `python -S fleet/hooks/receiver.py`
process answering from a policy file). Medians over several runs; nothing is asserted.

Usage: .venv/bin/python bench/bench_approve.py [--runs N]
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

from fleet.config.watchdog import ApprovalPolicy
from fleet.hooks.programs import agent_roots, program_problem
from fleet.watchdog import policyfile
from fleet.watchdog.approval import judge
from fleet.work.scope import patch_writes

REPO = Path(__file__).resolve().parent.parent
POLICY = ApprovalPolicy(allow=frozenset({"read-only"}), workspace_commands=(("make", "test"),), otherwise="ask")
COMMANDS = ["ls -la", "grep -rn 'fleet report' docs src", "make test", "cat\x0b./x.sh",
            "make test" + " " * 3980 + "; rm -rf ~"]
#: A HOME no agent can write, so the hook's check can allow (the bench's own temp dir would not).
SAFE_HOME = "/nonexistent-fleet-home"


def median_us(fn: Callable[[], object], runs: int, inner: int) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - start) / inner * 1e6)
    return statistics.median(samples)


def hook_ms(agent_dir: Path, command: str, runs: int) -> tuple[float, list[str]]:
    payload = json.dumps({"hook_event_name": "PermissionRequest", "tool_name": "Bash", "turn_id": "t1",
                          "cwd": str(agent_dir), "tool_input": {"command": command, "description": "bench"}})
    argv = [sys.executable, "-S", str(REPO / "fleet" / "hooks" / "receiver.py"), "hook", str(agent_dir),
            "--hold", "1"]
    env = {**os.environ, "HOME": SAFE_HOME}
    env.pop("TMPDIR", None)
    samples, outs = [], []
    for _ in range(runs):
        start = time.perf_counter()
        out = subprocess.run(argv, input=payload, capture_output=True, text=True, env=env, check=False).stdout
        samples.append((time.perf_counter() - start) * 1000)
        outs.append(out)
    return statistics.median(samples), outs


def wall_ms(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True)
    return (time.perf_counter() - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    print(f"# {sys.executable} bench/bench_approve.py --runs {args.runs}")
    check_env = {"PATH": os.environ.get("PATH", ""), "HOME": SAFE_HOME}
    roots = agent_roots([str(REPO)], check_env)
    for command in COMMANDS:
        us = median_us(lambda c=command: judge(POLICY, "Bash", c,  # type: ignore[misc]
                                               program_check=lambda p: program_problem(p, check_env, roots)),
                       args.runs, 200)
        print(f"judge {command[:30]!r:36} median {us:8.1f} us")
    print(f"program check (cat)                  median {median_us(lambda: program_problem('cat', check_env, roots), args.runs, 200):8.1f} us")  # noqa: E501
    patch = "*** Begin Patch\n" + "".join(f"*** Add File: docs/f{i}.md\n" + "+line\n" * 100 for i in range(1000))
    patch += "*** End Patch\n"
    ms = median_us(lambda: patch_writes(patch), args.runs, 1) / 1000
    print(f"patch_writes ({len(patch) / 1e6:.1f} MB, 1000 files)       median {ms:8.1f} ms")
    with tempfile.TemporaryDirectory(prefix="bench-approve-") as tmp:
        agent_dir = Path(tmp) / "state" / "agents" / "agent-1"
        agent_dir.mkdir(parents=True)
        policyfile.sync(agent_dir, ApprovalPolicy(allow=frozenset({"read-only"}), otherwise="deny"), agent_dir)
        bare = statistics.median(wall_ms([sys.executable, "-S", "-c", "pass"]) for _ in range(args.runs))
        for command in ("ls -la", "rm -rf build"):
            ms, outs = hook_ms(agent_dir, command, args.runs)
            decision = json.loads(outs[-1])["hookSpecificOutput"]["decision"]["behavior"] if outs[-1] else "none"
            print(f"hook end to end ({command!r}: {decision})        median {ms:8.1f} ms "
                  f"({ms / bare:.1f}x bare `python -S -c pass`, {bare:.1f} ms)")


if __name__ == "__main__":
    main()
