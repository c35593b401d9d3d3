"""Assignment benches (issue 7), medians over several runs; speed is measured here, never in tests.

    scripts/offline .venv/bin/python bench/bench_assign.py [--runs 10] [--rows 10000] [--no-codex]

1. The hook receiver's start-up: `python -S fleet/hooks/receiver.py hook DIR` with a payload on
   stdin, median of 20 runs each: a PreToolUse with no assignment open (the common case), a Stop
   with an open assignment and a valid report (imports `fleet.hooks.gates`), and a PreToolUse
   apply_patch outside the write paths (denied).
2. `fleet assignments --json` over a ledger of `--rows` assignments (filled as bench_ledger.py does;
   target <= 200 ms) and `fleet events --since CURSOR --json` (target <= 50 ms): the operation
   in-process (what an MCP call costs) and the CLI call's wall time (which adds Python's start-up).
3. With real Codex against the mock model (needs the loopback-only namespace; `--no-codex` skips):
   CLI `fleet send` vs `fleet assign --to` wall time to the receipt, alternating on one worker
   (target: assign <= send + 100 ms), and `fleet wait`'s wake-up: the time from the Stop hook's
   journal record of the reporting turn to `fleet wait` returning with the verdict (target <= 0.5 s).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "bench"), str(REPO / "examples")]

from bench_ledger import timed  # noqa: E402 -- after the path set-up

RECEIVER = REPO / "fleet" / "hooks" / "receiver.py"
AS_ID = "as-01JABCDEFGHJKMNPQRSTVWXYZ0"
REPORT = ('Done.\n```fleet-report\n{"status":"done","summary":"Looked.","changed":[],"tests":"",'
          '"risks":"none"}\n```')


def show(name: str, ms: list[float], target: str = "") -> None:
    goal = f"   target {target}" if target else ""
    print(f"{name:<58} median {statistics.median(ms):8.1f} ms   min {min(ms):8.1f}   max {max(ms):8.1f}"
          f"   (n={len(ms)}){goal}", flush=True)


# -- 1. hook receiver ---------------------------------------------------------------------------------

def bench_receiver(root: Path) -> None:
    from fleet.hooks.gates import HookContext, write_context

    idle, busy, work = root / "idle", root / "busy", root / "work"
    for d in (idle, busy, work):
        d.mkdir(parents=True)
    write_context(busy, HookContext(assignment=AS_ID, role="worker", cwd=str(work), write_paths=("docs/",)))
    base = {"session_id": "s", "turn_id": "t1", "transcript_path": "", "cwd": str(work)}
    cases = [
        ("receiver PreToolUse, no assignment open", idle,
         {**base, "hook_event_name": "PreToolUse", "tool_name": "Bash", "tool_input": {"command": "ls"}}),
        ("receiver Stop, assignment open, valid report", busy,
         {**base, "hook_event_name": "Stop", "stop_hook_active": False, "last_assistant_message": REPORT}),
        ("receiver PreToolUse apply_patch out of scope (denied)", busy,
         {**base, "hook_event_name": "PreToolUse", "tool_name": "apply_patch",
          "tool_input": {"command": "*** Begin Patch\n*** Add File: src/x.py\n+x\n*** End Patch\n"}}),
    ]
    for label, agent_dir, payload in cases:
        data = json.dumps(payload).encode()
        argv = [sys.executable, "-S", str(RECEIVER), "hook", str(agent_dir)]

        def once(argv: list[str] = argv, data: bytes = data) -> None:
            subprocess.run(argv, input=data, capture_output=True, check=True)

        show(label, timed(once, 20))
        (agent_dir / "events.jsonl").unlink(missing_ok=True)


# -- 2. listing and events over a big ledger -------------------------------------------------------------

def bench_ledger_ops(root: Path, rows: int, runs: int) -> None:
    from bench_ledger import fill

    from fleet import ops
    from fleet.service import Service

    state = root / "state"
    fill(state, rows)
    lines = ["[fleet]", 'name = "benchledger"', f'state_dir = "{state}"']
    for i in range(12):  # the agents bench_ledger's rows name (all stopped here)
        (root / "work" / f"agent-{i}").mkdir(parents=True)
        lines += [f"[agents.agent-{i}]", f'home = "{root / "homes" / f"agent-{i}"}"',
                  f'cwd = "{root / "work" / f"agent-{i}"}"']
    config = root / "fleet.toml"
    config.write_text("\n".join(lines) + "\n")
    svc = Service(config_path=str(config), surface="mcp")
    started = time.perf_counter()
    ops.invoke(svc, "assignment_list", {})
    print(f"(first list reconciled {rows // 100} open assignments of stopped agents to failed in "
          f"{(time.perf_counter() - started) * 1000:.0f} ms; not counted)")
    cursor = svc.ledger.latest_cursor() - 20
    show(f"assignment_list in-process over {rows} rows", timed(lambda: ops.invoke(svc, "assignment_list", {}), runs),
         "<= 200 ms")
    show("fleet_events since (20 new) in-process",
         timed(lambda: ops.invoke(svc, "fleet_events", {"since": cursor}), runs), "<= 50 ms")
    svc.close()
    env = {**os.environ, "HOME": str(root), "TMUX_TMPDIR": str(root)}
    from bench_cli import fleet_argv

    fleet = [*fleet_argv(), "--config", str(config)]  # the console script, as a user runs it

    def cli(*args: str) -> Callable[[], None]:
        return lambda: subprocess.run([*fleet, *args, "--json"], capture_output=True, check=True, env=env)

    show(f"CLI fleet assignments --json over {rows} rows", timed(cli("assignments"), runs), "<= 200 ms")
    show("CLI fleet events --since --json (20 new)", timed(cli("events", "--since", str(cursor)), runs),
         "<= 50 ms in-process; the CLI adds start-up")


# -- 3. with Codex --------------------------------------------------------------------------------------

def bench_codex(root: Path, runs: int) -> None:
    from bench_cli import CODEX_DEFAULT, Bench, refuse_unless_offline, wait_until
    from mockmodel import MockModel, MockServer
    from mocksteps import Step

    refuse_unless_offline()
    root.mkdir(parents=True)
    codex = os.environ.get("FLEET_TEST_CODEX") or str(CODEX_DEFAULT)
    model = MockModel(default_text=REPORT)
    with MockServer(model) as server:
        b = Bench(root, 1, codex, server.url)
        b.config.write_text(b.config.read_text() + 'role = "worker"\n')
        agent = b.agents[0]
        try:
            b.json("up", timeout=120)

            def idle() -> bool:
                [entry] = b.json("status", agent)[1]["agents"]
                return bool(entry["state"] == "idle" and entry["lease"]["state"] == "free")

            sends, assigns = [], []
            for i in range(runs):
                ms, _ = b.json("send", agent, f"Plain prompt {i}: reply briefly.")
                sends.append(ms)
                wait_until(idle, 60, 0.1)
                ms, created = b.json("assign", "--to", agent, f"Task {i}: look around and report.")
                assigns.append(ms)
                b.json("wait", created["assignment"], "--timeout", "60")
                wait_until(idle, 60, 0.1)
            show("CLI fleet send -> receipt", sends)
            extra = statistics.median(assigns) - statistics.median(sends)
            show("CLI fleet assign --to -> receipt", assigns, f"<= send + 100 ms (medians differ by {extra:.0f} ms)")

            wakes = []
            journal = root / "state" / "agents" / agent / "events.jsonl"
            for i in range(runs):
                model.script(Step(text=REPORT, delay=1.5))
                _, created = b.json("assign", "--to", agent, f"Wake test {i}.")
                turn = created["turn_id"]
                _, waited = b.json("wait", created["assignment"], "--timeout", "60")
                returned = time.time()
                if waited["pending"]:
                    raise RuntimeError(f"wait returned pending: {waited}")
                ends = [json.loads(line) for line in journal.read_text().splitlines()
                        if '"turn_completed"' in line and turn in line]
                wakes.append((returned - float(ends[-1]["time"])) * 1000)
                wait_until(idle, 60, 0.1)
            show("fleet wait wake-up after the report (Stop hook -> wait exits)", wakes, "<= 500 ms")
        finally:
            b.cleanup()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--no-codex", action="store_true", help="skip the benches that run Codex")
    opts = parser.parse_args()
    print(f"$ bench/bench_assign.py --runs {opts.runs} --rows {opts.rows}   (cpus: {os.cpu_count()}, "
          f"python {sys.version.split()[0]})", flush=True)
    root = Path(tempfile.mkdtemp(prefix="fleet-bench-assign-"))
    try:
        bench_receiver(root / "hooks")
        bench_ledger_ops(root / "ledger", opts.rows, opts.runs)
        if not opts.no_codex:
            bench_codex(root / "codex", opts.runs)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
