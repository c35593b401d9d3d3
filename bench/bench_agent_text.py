"""What escaping and marking agent text costs (issue 12, hole 7), medians over several runs, in-process.

    .venv/bin/python bench/bench_agent_text.py [--runs 21]

1. `escape_terminal` over a 64 KiB report of plain text (the common case: nothing to escape) and
   over the same with one control or format character in every 64 (a hostile one).
2. `json_text` vs plain `json.dumps(ensure_ascii=False)` of an `assignment_get`-sized result
   (that report, 100 events), as `fleet show --json` prints it.
3. The MCP view of that result with and without the `{"untrusted": ...}` marking (`view` vs
   `view` minus `mark_paths`), as every `assignment_get` over MCP pays it.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Callable

from bench_ledger import timed

from fleet.mcp.views import prune
from fleet.mcp.views import view as mcp_view
from fleet.untrusted import escape_terminal, json_text


def median_ms(fn: Callable[[], object], runs: int) -> float:
    return statistics.median(timed(fn, runs))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=21)
    runs = parser.parse_args().runs
    print(f"# .venv/bin/python bench/bench_agent_text.py --runs {runs}")
    plain = ("The change touches fleet/work/verify.py and its tests; all green. " * 1000)[: 64 * 1024]
    hostile = "".join(c + ("\x1b" if i % 64 == 0 else "") for i, c in enumerate(plain))[: 64 * 1024]
    print(f"escape_terminal, 64 KiB plain:    {median_ms(lambda: escape_terminal(plain), runs):7.3f} ms")
    print(f"escape_terminal, 64 KiB hostile:  {median_ms(lambda: escape_terminal(hostile), runs):7.3f} ms")
    result = {"id": "as-1", "state": "verified", "reason": None, "report": {
        "status": "done", "summary": plain[:2000], "changed": [f"src/m{i}.py" for i in range(50)],
        "tests": plain[:4000], "risks": "none"},
        "verification": {"verdict": "verified", "changed": [f"src/m{i}.py" for i in range(50)], "notes": [],
                         "reasons": [], "checks": [{"cmd": "pytest", "exit_status": 0, "output_tail": plain[:4000]}]},
        "events": [{"cursor": i, "kind": "sent", "details": {"summary": "x" * 100}} for i in range(100)]}
    dumps = median_ms(lambda: json.dumps(result, indent=2, ensure_ascii=False), runs)
    safe = median_ms(lambda: json_text(result), runs)
    print(f"json.dumps, assignment_get:       {dumps:7.3f} ms")
    print(f"json_text, assignment_get:        {safe:7.3f} ms  ({safe / dumps:.2f}x)")
    unmarked = median_ms(lambda: prune(result), runs)
    marked = median_ms(lambda: mcp_view("assignment_get", result, 0.0), runs)
    print(f"MCP view without marking (prune): {unmarked:7.3f} ms")
    print(f"MCP view with marking:            {marked:7.3f} ms  (+{marked - unmarked:.3f} ms)")


if __name__ == "__main__":
    main()
