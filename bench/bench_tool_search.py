"""How many tool searches a lead needs to find fleet's tools, on a real Codex with a real model's catalog.

Run inside the loopback-only namespace, after `scripts/setup`:

    scripts/offline .venv/bin/python bench/bench_tool_search.py [--query Q --limit N]...

Every model in Codex 0.169's built-in catalog has `supports_search_tool`: Codex lists MCP servers only
as deferred namespaces, and the model must emit a `tool_search_call` (query, limit) to get a server's
tools. This starts one `codex exec` whose scripted model (a built-in model's catalog entry, fleet's
MCP server configured) issues each query in turn, then reports what Codex's `tool_search_output`
returned: the tools in rank order and which of the lead's core tools (`CORE`) they cover. Then it
counts the searches a scripted lead needs to reach every core tool: the fleet-lead skill's
recommended query (`RECOMMENDED`, the first `--query` if given), then one search by name for each
core tool still missing. Nothing is timed; the figures are counts, the same on any machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))

from bench_cli import CODEX_DEFAULT, refuse_unless_offline
from mockmodel import MockModel, MockServer
from mockrequests import searched
from mocksteps import Step
from offlinecodex import apply_patch_catalog, codex_offline_args

from fleet.agents.codex import resolve_binary
from fleet.mcp.server import SEARCH

#: The tools a lead needs for one assignment, from a look at the fleet to merging the result.
CORE = ("fleet_status", "assignment_create", "assignment_wait", "assignment_get", "assignment_merge")
#: The search the server's instructions and the fleet-lead skill recommend.
RECOMMENDED = (SEARCH, 8)
#: Other queries a model might try first, for comparison.
OTHERS = (("fleet assignment", 8), ("assign a task to an agent and wait for its report", 8),
          ("fleet_status assignment_create assignment_wait assignment_get assignment_merge", 5),
          ("status", 8))


def run_searches(codex: str, queries: list[tuple[str, int]], work: Path) -> list[tuple[str, int, dict[str, list[str]]]]:
    """One `codex exec` whose model issues `queries` one after another; what each returned. Searches
    made before fleet's MCP server had listed its tools (until one finds anything) are repeated, and
    left out."""
    last: dict[str, Any] = {}

    def driver(body: dict[str, Any]) -> Step:
        done = ready(searched(body))
        last["body"] = body
        if not done and searched(body):
            if len(searched(body)) > 100:
                return Step(text="fleet's MCP server never listed its tools.")
            return Step(search=queries[0], delay=0.2)
        return Step(search=queries[len(done)]) if len(done) < len(queries) else Step(text="Searched.")

    model = MockModel(default_text="Searched.")
    model.converse("SEARCH-BENCH", driver=driver)
    config = work / "fleet.toml"
    config.write_text(f'[fleet]\nname = "search"\nstate_dir = "{work / "state"}"\n\n'
                      f'[agents.a]\nhome = "{work / "a-home"}"\ncwd = "{work}"\n')
    catalog = apply_patch_catalog(codex, work / "catalog.json")
    server = {"command": sys.executable, "args": ["-P", "-m", "fleet", "--config", str(config), "mcp"],
              "default_tools_approval_mode": "approve"}
    table = "{" + ", ".join(f"{k}={json.dumps(v)}" for k, v in server.items()) + "}"
    home = work / "home"
    home.mkdir()
    with MockServer(model) as mock:
        args = [*codex_offline_args(mock.url), "-c", f"model_catalog_json={json.dumps(str(catalog))}",
                "-c", f"mcp_servers.fleet={table}"]
        proc = subprocess.run([str(resolve_binary(codex)), "exec", *args, "--skip-git-repo-check", "-C", str(work),
                               "SEARCH-BENCH: find fleet's tools."],
                              env={**os.environ, "CODEX_HOME": str(home)}, capture_output=True, text=True,
                              timeout=180, check=False, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise SystemExit(f"codex exec failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return ready(searched(last["body"]))


def ready(searches: list[tuple[str, int, dict[str, list[str]]]]) -> list[tuple[str, int, dict[str, list[str]]]]:
    """The searches from the first that found anything on (the earlier ones ran before the server was up)."""
    first = next((i for i, (_, _, spaces) in enumerate(searches) if spaces), len(searches))
    return searches[first:]


def searches_needed(results: dict[tuple[str, int], list[str]], first: tuple[str, int]) -> tuple[int, list[str]]:
    """Searches to reach every CORE tool: `first`, then one by name per tool it missed (and the misses)."""
    missing = [name for name in CORE if name not in results[first]]
    still = [name for name in missing if name not in results[(name, 8)]]
    return 1 + len(missing), still


def main(argv: list[str] | None = None, out: Callable[[str], None] = print) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--query", action="append", default=[], help="a query to try (repeatable)")
    parser.add_argument("--limit", action="append", type=int, default=[], help="its limit (default 8)")
    parser.add_argument("--codex", default=os.environ.get("FLEET_TEST_CODEX") or str(CODEX_DEFAULT))
    args = parser.parse_args(argv)
    refuse_unless_offline()
    out("scripts/offline .venv/bin/python bench/bench_tool_search.py " + " ".join(sys.argv[1:]))
    given = [(q, args.limit[i] if i < len(args.limit) else 8) for i, q in enumerate(args.query)]
    first = given[0] if given else RECOMMENDED
    queries = list(dict.fromkeys([first, *given, *([] if given else OTHERS), *((name, 8) for name in CORE)]))
    with tempfile.TemporaryDirectory(prefix="fleet-search-") as tmp:
        found = run_searches(args.codex, queries, Path(tmp))
    results = {(q, n): spaces.get("mcp__fleet", []) for q, n, spaces in found}
    for (query, limit), tools in results.items():
        got = [name for name in CORE if name in tools]
        out(f"\n{query!r} (limit {limit}): {len(tools)} tools, {len(got)}/{len(CORE)} core")
        out("  " + ", ".join(f"*{t}*" if t in CORE else t for t in tools))
    count, unreachable = searches_needed(results, first)
    out(f"\nsearches to reach {', '.join(CORE)}: {count}, starting with {first[0]!r} (limit {first[1]})"
        + (f"; not found by name: {', '.join(unreachable)}" if unreachable else ""))


if __name__ == "__main__":
    main()
