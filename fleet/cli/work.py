"""The work commands of the `fleet` CLI: skills, assign, assignments, show, wait, cancel, events,
dispatch, and ledger-repair.

Same conventions as every command (`fleet.cli.base`): each command is one registry operation with
the same argument names, `--json` prints exactly one JSON document, errors go through the CLI's one
error renderer. `fleet wait` exits 5 when something is still pending at the timeout, so a script
can tell "not yet" from a failure.
"""

from __future__ import annotations

import sys
import time
from typing import Annotated, Any, Final

import typer

from fleet.untrusted import one_line

from .base import AgentsArg, HolderOpt, JsonOpt, TokenOpt, run
from .usage import budget_line

#: `fleet wait` exit status when some assignments are still open at the timeout.
EXIT_PENDING: Final = 5

def _when(ts: float | None) -> str:
    if not ts:
        return "-"
    left = ts - time.time()
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) + (f" (in {int(left // 60)}m)" if left > 0 else "")


def _render_skills(r: dict[str, Any]) -> None:
    for agent in r["agents"]:
        print(f"{agent['name']}:")
        for s in agent["skills"]:
            mark = f"  [error: {one_line(s['error'])}]" if s.get("error") else ""
            print(f"  {one_line(s['name']):<32} {s['source']:<10} {one_line(s['description'][:60])}{mark}")
        if not agent["skills"]:
            print("  (no skills)")
        for w in agent.get("warnings", []):
            print(f"  warning: {one_line(w)}")


def skills_cmd(agents: AgentsArg = None, as_json: JsonOpt = False) -> None:
    """List the skills each agent's Codex would load (name, source, description); broken ones with their error."""
    run("skill_list", {"agents": agents}, as_json, _render_skills)


def _render_created(r: dict[str, Any]) -> None:
    if r["state"] == "queued":
        why = "; ".join(f"{x['agent']}: {x['why']}" for x in r.get("reasons", [])) or "waiting for an agent"
        print(f"{r['assignment']}: queued ({why})")
        return
    dup = " [already created earlier]" if r["duplicate"] else ""
    print(f"{r['assignment']}: {r['state']} to {r['agent']}, turn {r['turn_id']}, deadline {_when(r['deadline'])}{dup}")


def assign_cmd(
    task: Annotated[str, typer.Argument(help="The task; `-` reads it from stdin.")],
    to: Annotated[str | None, typer.Option("--to", help="Send it to this agent (default: fleet routes it).")] = None,
    skills: Annotated[list[str] | None, typer.Option(
        "--skill", help="A skill the agent must have (repeatable); the prompt mentions it.")] = None,
    write_paths: Annotated[list[str] | None, typer.Option(
        "--write", help="A path it may change, relative to its cwd (repeatable; none: read-only).")] = None,
    read_paths: Annotated[list[str] | None, typer.Option(
        "--read", help="A path it should read (repeatable; default: its whole cwd).")] = None,
    checks: Annotated[list[str] | None, typer.Option(
        "--check", help="A shell command run in its cwd after the report; must exit 0 (repeatable).")] = None,
    deadline: Annotated[str | None, typer.Option(
        "--deadline", help="How long it has: 30m, 2h, 1h30m (default 1h).")] = None,
    queue: Annotated[bool | None, typer.Option(
        "--queue", help="If no agent can take it now, keep it queued instead of failing.")] = None,
    request_id: Annotated[str | None, typer.Option(
        "--request-id", help="Idempotency key: a retry returns the same assignment, never a second prompt.")] = None,
    repo: Annotated[str | None, typer.Option(
        "--repo", help="Only agents working in worktrees of this repository (a path).")] = None,
    budget: Annotated[str | None, typer.Option(
        "--budget", help="Token budget: 200k, 1.5m, 250000 (input + output tokens, cached input included, of "
                         "all its turns). Past it the watchdog interrupts the turn and asks for the report; none "
                         "within report_grace: failed, over_budget. Default: the agent's `budget` in "
                         "fleet.toml.")] = None,
    holder: HolderOpt = None, token: TokenOpt = None, as_json: JsonOpt = False,
) -> None:
    """Give a task to an agent: route it, send the prompt, return once Codex recorded it."""
    if task == "-":
        task = sys.stdin.read()
    run("assignment_create", {"task": task, "to": to, "skills": skills, "write_paths": write_paths,
                              "read_paths": read_paths, "checks": checks, "deadline": deadline, "queue": queue,
                              "request_id": request_id, "repo": repo, "budget": budget, "holder": holder,
                              "token": token}, as_json, _render_created)


def _row(a: dict[str, Any]) -> str:
    verdict = one_line(str(a.get("verdict") or a.get("report_status") or ""))
    task = a["task"].replace("\n", " ")
    return f"{a['id']}  {(a.get('agent') or '-'):<12} {a['state']:<9} {verdict:<9} {task[:60]}"


def assignments_cmd(
    open_only: Annotated[bool | None, typer.Option("--open", help="Only open assignments.")] = None,
    agent: Annotated[str | None, typer.Option("--agent", help="Only this agent's.")] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="At most this many, newest first (default 100).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List assignments from the ledger, newest first."""
    run("assignment_list", {"open_only": open_only, "agent": agent, "limit": limit}, as_json,
        lambda r: [print(_row(a)) for a in r["assignments"]] or (not r["assignments"] and print("(none)")))


def _render_show(r: dict[str, Any]) -> None:
    print(f"{r['id']}: {r['state']}" + (f" ({one_line(r['reason'])})" if r.get("reason") else ""))
    print(f"  agent {r['agent'] or '-'}, holder {r['holder']}, deadline {_when(r['deadline'])}")
    if r.get("budget") is not None:
        print(f"  budget: {budget_line(r['budget'], r.get('budget_use'))}")
    print("  task: " + r["task"].replace("\n", "\n        "))
    for key in ("skills", "write_paths", "read_paths", "checks"):
        if r[key]:
            print(f"  {key}: {', '.join(r[key])}")
    if r["receipt"]:
        print(f"  receipt: turn {r['receipt']['turn_id']} ({r['receipt']['latency_ms']} ms)")
    if r["report"]:
        report = r["report"]  # the agent's own words: one line each, escaped
        print(f"  report: {one_line(str(report.get('status')))}: {one_line(str(report.get('summary')))}")
    if r["verification"]:
        v = r["verification"]
        print(f"  verification: {v['verdict']}; changed {one_line(', '.join(v['changed'])) or 'nothing'}")
        if "sandbox" in v:  # what the work ran under; a full-access verdict's note says what it is worth
            print(f"    sandbox: {v['sandbox']}")
        for note in v.get("notes", []):
            print(f"    note: {one_line(note)}")
        for reason in v["reasons"]:
            print(f"    - {one_line(reason['message'])}")
        for check in v["checks"]:
            print(f"    check `{one_line(check['cmd'])}`: exit {check['exit_status']}")
    print("  events:")
    for e in r["events"]:
        move = (f" {e['from']} -> {e['to']}" if e["from"] else f" -> {e['to']}") if e["to"] else ""
        print(f"    #{e['cursor']} {time.strftime('%H:%M:%S', time.localtime(e['time']))} {e['kind']}{move} "
              f"by {e['actor']}")


def show_cmd(assignment: Annotated[str, typer.Argument(help="Assignment id (as-...).")],
             as_json: JsonOpt = False) -> None:
    """Show one assignment: task, prompt, receipt, report, verification and every event."""
    run("assignment_get", {"assignment": assignment}, as_json, _render_show)


def wait_cmd(
    assignments: Annotated[list[str], typer.Argument(help="Assignment ids.", show_default=False)],
    timeout: Annotated[float | None, typer.Option(
        "--timeout", help="Seconds to wait (default 25, at most 3600).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Wait until the assignments have ended; exit 0 if all did, 5 if some are still pending."""
    def render(r: dict[str, Any]) -> None:
        for a in r["done"]:
            extra = f" ({one_line(a['reason'])})" if a.get("reason") else ""
            print(f"{a['id']}: {a['state']}{extra}")
        for a in r["pending"]:
            print(f"{a['id']}: still {a['state']}")

    result = run("assignment_wait", {"assignments": assignments, "timeout": timeout}, as_json, render)
    if result["pending"]:
        raise typer.Exit(EXIT_PENDING)


def cancel_cmd(
    assignment: Annotated[str, typer.Argument(help="Assignment id (as-...).")],
    interrupt: Annotated[bool | None, typer.Option(
        "--interrupt", help="Also interrupt the agent's running turn.")] = None,
    holder: HolderOpt = None, as_json: JsonOpt = False,
) -> None:
    """End an open assignment and free its agent (with --interrupt, stop its turn too)."""
    run("assignment_cancel", {"assignment": assignment, "interrupt": interrupt, "holder": holder}, as_json,
        lambda r: print(f"{r['assignment']}: " + (("cancelled" + (", turn interrupted" if r["interrupted"] else ""))
                                                   if r["cancelled"] else f"already {r['state']}")))


def events_cmd(
    since: Annotated[int | None, typer.Option("--since", help="Only events after this cursor.")] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="At most this many (default 200).")] = None,
    assignment: Annotated[str | None, typer.Option("--assignment", help="Only this assignment's.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Print ledger events after a cursor, oldest first, and the next cursor."""
    def render(r: dict[str, Any]) -> None:
        for e in r["events"]:
            move = (f" {e['from']} -> {e['to']}" if e["from"] else f" -> {e['to']}") if e["to"] else ""
            print(f"#{e['cursor']} {e['assignment'] or '-'} {e['kind']}{move} by {e['actor']}")
        print(f"cursor {r['cursor']}")

    run("fleet_events", {"since": since, "limit": limit, "assignment": assignment}, as_json, render)


def dispatch_cmd(as_json: JsonOpt = False) -> None:
    """Send queued assignments to agents that can take them now (one pass)."""
    def render(r: dict[str, Any]) -> None:
        for a in r["dispatched"]:
            print(f"{a['id']}: sent to {a['agent']}")
        for a in r["queued"]:
            print(f"{a['id']}: still queued")
        for a in r["failed"]:
            print(f"{a['id']}: failed ({one_line(a['message'])})")

    run("fleet_dispatch", {}, as_json, render)


def ledger_repair_cmd(holder: HolderOpt = None, as_json: JsonOpt = False) -> None:
    """Move a damaged fleet.db aside (kept and audited), salvage what SQLite can read into a fresh ledger."""
    run("ledger_repair", {"holder": holder}, as_json, _render_ledger_repair)


def _render_ledger_repair(r: dict[str, Any]) -> None:
    if not r["repaired"]:
        print("The ledger is sound; nothing was changed.")
        return
    print(f"The ledger was damaged ({r['problem']}); moved aside: {', '.join(r['moved'])}.")
    for table, n in r["salvaged"].items():
        lost = r["lost"].get(table)
        print(f"  {table}: {n} row(s) salvaged, " + ("an unknown number lost" if lost is None else f"{lost} lost"))
    print(f"New events are numbered from {r['events_from']}.")
