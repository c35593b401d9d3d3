"""The detached verifier: `python -m fleet.service.verifier CONFIG ASSIGNMENT`.

Started by `fleet.service.tracking` for an assignment with `--check` commands once its report is in,
so that the process that saw the report (a CLI call, the MCP server, a `wait`) does not block on the
checks. It verifies the assignment if it is still `reported` and records the verdict; the ledger's
compare-and-set makes a race with a later takeover harmless (one of them records it). Its output
goes to `<state_dir>/verify.log`.
"""

from __future__ import annotations

import sys
import time

from fleet.errors import FleetError, StateConflict

from .core import Service
from .tracking import finish


def verify_one(config_path: str, assignment: str) -> str:
    """Verify `assignment` if it is still `reported`; returns the state it is left in."""
    svc = Service(config_path=config_path, surface="verifier")
    try:
        a = svc.ledger.get(assignment)
        spec = svc.config.agents.get(a.agent or "")
        if a.state != "reported" or spec is None:  # already verified, or for reconcile to fail
            return a.state
        try:
            return str(finish(svc, a, spec)["to"])
        except StateConflict:
            return svc.ledger.get(assignment).state
    finally:
        svc.close()


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: python -m fleet.service.verifier CONFIG ASSIGNMENT", file=sys.stderr)
        return 2
    started = time.time()
    try:
        state = verify_one(argv[1], argv[2])
    except FleetError as exc:
        print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {argv[2]}: {exc.code}: {exc.message}", file=sys.stderr)
        return 1
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {argv[2]}: {state} in {time.time() - started:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
