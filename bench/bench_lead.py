"""Lead benches: what a lead Codex pays for fleet's tools, and how fast its assignments reach a worker.

Run inside the loopback-only namespace, after `scripts/setup`:

    scripts/offline .venv/bin/python bench/bench_lead.py [--runs 15] [--assignments 10]

Measures:
  1. `fleet mcp` start-up: from spawning the server to its answer to the first `tools/list`
     (after `initialize`), speaking MCP's newline-delimited JSON-RPC over stdio, medians of --runs;
  2. the tool list as the model sees it: the `mcp__fleet` namespace in the `tools` of the request
     a real Codex (0.169, `codex exec`, the mock model) sends, in bytes and in rough tokens
     (bytes / 4), per tool and in total, and its share of all the tools Codex offers (compact JSON,
     as Codex sends it);
  3. assignment_create -> receipt: a lead Codex TUI (`role = "lead"`, with a real model's catalog entry,
     so Codex defers fleet's tools behind `tool_search` as for every real model) whose scripted model
     searches once with the query fleet's instructions give, then calls `assignment_create`; the time
     from the mock handing out that tool call to the worker's Codex
     recording the assignment prompt (the worker journal's `turn_started`), medians over
     --assignments (target <= 1.5 s). Skipped when the assignment operations are not in the registry.

Everything it starts lives in a temp dir with its own HOME, state dir and tmux socket dir; agents
are stopped and its tmux server killed at the end, even on error.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import selectors
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))

from bench_cli import CODEX_DEFAULT, Bench, fleet_argv, refuse_unless_offline, stats, wait_until
from mockmodel import MockModel, MockServer
from mocksteps import Step
from offlinecodex import apply_patch_catalog, codex_offline_args

#: The issue's bound from the lead's `assignment_create` to the worker's receipt.
ASSIGN_TARGET_MS = 1500
#: A rough rule for English and JSON: about four bytes per token.
BYTES_PER_TOKEN = 4
WORKER_REPORT = ('Nothing to change.\n```fleet-report\n{"status":"done","summary":"Checked; nothing to change.",'
                 '"changed":[],"tests":"","risks":""}\n```')


def rpc(proc: subprocess.Popen[bytes], message: dict[str, Any]) -> None:
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(message).encode() + b"\n")
    proc.stdin.flush()


def read_reply(proc: subprocess.Popen[bytes], want_id: int, timeout: float) -> dict[str, Any]:
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not sel.select(max(0.0, deadline - time.monotonic())):
            continue
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError("fleet mcp closed its stdout")
        msg = json.loads(line)
        if msg.get("id") == want_id:
            return msg  # type: ignore[no-any-return]
    raise TimeoutError(f"no reply to request {want_id} within {timeout} s")


def bench_mcp_startup(config: Path, env: dict[str, str], runs: int) -> None:
    samples = []
    tools = 0
    for _ in range(runs):
        started = time.perf_counter()
        proc = subprocess.Popen([*fleet_argv(), "--config", str(config), "mcp"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
        try:
            rpc(proc, {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {},
                "clientInfo": {"name": "bench", "version": "0"}}})
            read_reply(proc, 1, 30)
            rpc(proc, {"jsonrpc": "2.0", "method": "notifications/initialized"})
            rpc(proc, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
            reply = read_reply(proc, 2, 30)
            samples.append((time.perf_counter() - started) * 1000)
            tools = len(reply["result"]["tools"])
        finally:
            assert proc.stdin is not None
            proc.stdin.close()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    print(f"{'fleet mcp: spawn -> first tools/list answer':<48} {stats(samples)}   ({tools} tools)", flush=True)


def compact(value: Any) -> bytes:
    """JSON as Codex sends it (serde's compact form: no spaces)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def lead_server_override(config: Path) -> str:
    table = (f'{{command={json.dumps(sys.executable)}, args=["-m", "fleet", "--config", {json.dumps(str(config))}, '
             '"mcp"], default_tools_approval_mode="approve"}')
    return f"mcp_servers.fleet={table}"


def bench_tool_list(config: Path, env: dict[str, str], codex: str, root: Path) -> None:
    """Ask a real Codex once and read the tools it offered the model (retrying the first call if the
    server had not listed its tools yet, as a model would)."""
    model = MockModel(default_text="Done.", retry_unsupported=True)
    model.script(Step(tool=("fleet_status", {}), namespace="mcp__fleet"), Step(text="Done."))
    home = root / "exec-home"
    home.mkdir()
    with MockServer(model) as server:
        proc = subprocess.run([codex, "exec", *codex_offline_args(server.url), "-c", lead_server_override(config),
                               "--skip-git-repo-check", "-C", str(root), "Look at the fleet."],
                              env={**env, "CODEX_HOME": str(home)}, capture_output=True, text=True, timeout=120,
                              stdin=subprocess.DEVNULL, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"codex exec failed: {proc.stderr[-1500:]}")
    body = model.requests[-1]
    spaces = [t for t in body.get("tools", []) if t.get("name") == "mcp__fleet"]
    if not spaces:
        raise RuntimeError("Codex offered no mcp__fleet tools")
    namespace = spaces[0]
    total = len(compact(body["tools"]))
    size = len(compact(namespace))
    described = len(namespace.get("description", "").encode())
    print(f"tool list as the model sees it: mcp__fleet = {size} bytes (~{size // BYTES_PER_TOKEN} tokens), "
          f"{len(namespace['tools'])} tools; {100 * size / total:.0f}% of all tools offered ({total} bytes); "
          f"server instructions {described} bytes", flush=True)
    for tool in sorted(namespace["tools"], key=lambda t: -len(compact(t))):
        n = len(compact(tool))
        print(f"  {tool['name']:<20} {n:5d} bytes  ~{n // BYTES_PER_TOKEN:4d} tokens  "
              f"(description {len(tool.get('description', '').encode())})", flush=True)


class StampingModel(MockModel):
    """Records when each `assignment_create` call is handed to the lead's Codex (repeats included)."""

    def __init__(self) -> None:
        super().__init__(default_text="Done.", retry_unsupported=True)
        self.create_calls: list[float] = []

    def next_step(self, body: dict[str, Any]) -> Step:
        step = super().next_step(body)
        if step.tool is not None and step.tool[0] == "assignment_create":
            self.create_calls.append(time.time())
        return step


def bench_assign(codex: str, root: Path, n: int) -> None:
    from fleet import ops

    if "assignment_create" not in ops.REGISTRY:
        print("assignment_create -> receipt: skipped (the assignment operations are not in this build)")
        return
    from fleet.mcp.server import SEARCH

    model = StampingModel()
    lead_steps = [Step(search=(SEARCH, 8))]  # found once, the tools stay loaded for the session
    for i in range(n):
        lead_steps += [Step(tool=("assignment_create", {"task": f"WORK-ITEM {i}: check the README; change nothing.",
                                                        "to": "agent-1", "request_id": f"bench-{i}"}),
                            namespace="mcp__fleet"), Step(text=f"Assigned {i}.")]
    model.converse("LEAD-BENCH", *lead_steps)
    model.converse("WORK-ITEM", default_text=WORKER_REPORT)
    with MockServer(model) as server:
        b = Bench(root, 1, codex, server.url)
        catalog = apply_patch_catalog(codex, root / "catalog.json")
        lead_args = [*codex_offline_args(server.url, plugins=True),
                     "-c", f"model_catalog_json={json.dumps(str(catalog))}"]
        (root / "work" / "boss").mkdir(parents=True)
        with b.config.open("a") as f:
            f.write(f'\n[agents.boss]\nhome = "{root / "homes" / "boss"}"\ncwd = "{root / "work" / "boss"}"\n'
                    f'role = "lead"\nargs = {json.dumps(lead_args)}\n')
        with b.config.open("r+") as f:  # the worker writes
            text = f.read().replace("[agents.agent-1]\n", '[agents.agent-1]\nrole = "worker"\n')
            f.seek(0)
            f.write(text)
            f.truncate()
        try:
            b.json("up", timeout=180)
            journal = root / "state" / "agents" / "agent-1" / "events.jsonl"
            samples = []
            for i in range(n):
                b.json("send", "boss", f"LEAD-BENCH round {i}: assign the next item.")
                wait_until(lambda i=i: len(model.create_calls) > i, timeout=60)

                def received(i: int = i) -> float | None:
                    for line in journal.read_text().splitlines() if journal.exists() else []:
                        ev = json.loads(line)
                        if ev.get("event") == "turn_started" and f"WORK-ITEM {i}:" in str(ev.get("prompt")):
                            return float(ev["time"])
                    return None

                got = wait_until(received, timeout=60)
                # the last call handed out before the receipt: earlier ones were answered `unsupported
                # call` (the lead's MCP server still starting) and repeated, as a model would
                called = max(t for t in model.create_calls if t <= got)
                samples.append((got - called) * 1000)
                settle(b)
            audit = [json.loads(line) for line in (root / "state" / "audit.jsonl").read_text().splitlines()]
            handler = [float(a["ms"]) for a in audit if a.get("event") == "assignment_create" and "ms" in a]
            if handler:
                print(f"{'  of which the assignment_create handler (audit)':<48} {stats(handler)}", flush=True)
            verdict = "within" if statistics.median(samples) <= ASSIGN_TARGET_MS else "OVER"
            print(f"{'assignment_create call -> worker receipt':<48} {stats(samples)}   "
                  f"target <= {ASSIGN_TARGET_MS} ms: {verdict}", flush=True)
        finally:
            for item in b.json("assignments", "--open")[1]["assignments"]:
                b.run("cancel", item["id"], "--interrupt")
            b.cleanup()


def settle(b: Bench) -> None:
    """Let every open assignment end (verified or not) and every agent go idle before the next round,
    so one round's verification never lands inside the next round's measurement."""
    for item in b.json("assignments", "--open")[1]["assignments"]:
        b.json("wait", item["id"], "--timeout", "90", timeout=120)

    def idle() -> bool:
        return all(a["state"] == "idle" for a in b.json("status")[1]["agents"])

    wait_until(idle, timeout=90, interval=0.2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--assignments", type=int, default=10)
    parser.add_argument("--codex", default=os.environ.get("FLEET_TEST_CODEX") or str(CODEX_DEFAULT))
    args = parser.parse_args()
    refuse_unless_offline()
    print(f"# scripts/offline {sys.executable} {' '.join(sys.argv)}", flush=True)
    with tempfile.TemporaryDirectory(prefix="fleet-bench-lead-") as tmp:
        root = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLEET_") or k == "FLEET_OFFLINE"}
        env.update(HOME=str(root), XDG_STATE_HOME=str(root / "xdg-state"), XDG_DATA_HOME=str(root / "xdg-data"),
                   XDG_CONFIG_HOME=str(root / "xdg-config"))
        os.environ.update(XDG_DATA_HOME=env["XDG_DATA_HOME"])  # the lead's plugin renders into the temp dir
        (root / "w").mkdir()
        config = root / "fleet.toml"
        config.write_text("".join(f'[agents.agent-{i}]\nhome = "{root / "h"}"\ncwd = "{root / "w"}"\n'
                                  for i in range(1, 4)))
        bench_mcp_startup(config, env, args.runs)
        bench_tool_list(config, env, args.codex, root)
        with contextlib.suppress(KeyboardInterrupt):
            (root / "assign").mkdir()
            bench_assign(args.codex, root / "assign", args.assignments)
    return 0


if __name__ == "__main__":
    sys.exit(main())
