"""The `fleet watchdog ...` commands and `fleet approve` / `fleet deny`; `fleet.cli` registers them.

`tick`, `status`, `approve` and `deny` are registry operations (also MCP tools); `run`, `install` and
`uninstall` are CLI-only: a foreground loop and the systemd user units, which a remote MCP client has
no business changing on this machine.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from typing import Annotated, Any, Final

import typer

from fleet.untrusted import one_line

from .base import AgentArg, HolderOpt, JsonOpt, TokenOpt, fail, run, service

#: The help text of the `fleet watchdog` group.
HELP: Final = "The watchdog: report requests, escalation, restarts, usage-limit resumes."

EveryOpt = Annotated[str | None, typer.Option(
    "--every", help="Tick period, e.g. 60s or 5m (default: [watchdog] every in fleet.toml).")]


def _render_tick(r: dict[str, Any]) -> None:
    if r.get("skipped"):
        print(r["skipped"])
        return
    verb = "would" if r["dry_run"] else "did"
    if not r["actions"]:
        print(f"watchdog: nothing to do ({r['ms']} ms).")
    for a in r["actions"]:
        who = a["agent"] or "fleet"
        rung = f" (rung {a['rung']})" if a["rung"] is not None else ""
        failed = f" FAILED: {a['error']['code']}: {a['error']['message']}" if a.get("error") else ""
        print(f"{who}: {verb} {a['action']}{rung}{failed} -- {one_line(a['reason'])}")
    for e in r.get("errors") or []:
        print(f"watchdog: {e.get('code')}: {e.get('message')}", file=sys.stderr)


def tick_cmd(dry_run: Annotated[bool | None, typer.Option(
        "--dry-run", help="Decide and show what would be done, without doing anything.")] = None,
        as_json: JsonOpt = False) -> None:
    """Run one tick now: ask idle agents for reports, escalate, restart, resume, dispatch."""
    run("watchdog_tick", {"dry_run": dry_run}, as_json, _render_tick)


def status_cmd(ticks: Annotated[int | None, typer.Option(
        "--ticks", help="How many recent ticks that acted to show (default 10).")] = None,
        as_json: JsonOpt = False) -> None:
    """The timer (from systemd when a user manager answers), the last tick and what recent ticks did."""
    def render(r: dict[str, Any]) -> None:
        print(r["timer"]["message"])
        last = r["last_tick"]
        print(f"last tick: {_when(last['at'])}, {len(last['actions'])} action(s), {last['ms']} ms" if last
              else "last tick: never")
        for t in r["recent"]:
            for a in t["actions"]:
                print(f"  {_when(t['at'])} {a['agent'] or 'fleet'}: {a['action']} {a['outcome']} -- "
                      f"{one_line(a['reason'])}")
        for a in r["agents"]:
            fatal = f", FATAL since {_when(a['fatal_at'])}: {a['fatal_reason']}" if a["fatal_at"] else ""
            print(f"  {a['agent']}: {a['restarts']} restart(s) in its crash streak{fatal}")
    run("watchdog_status", {"ticks": ticks}, as_json, render)


def run_cmd(every: EveryOpt = None, as_json: JsonOpt = False) -> None:
    """Tick every period in the foreground (for hosts without systemd); Ctrl-C stops it."""
    from fleet.durations import parse_duration
    from fleet.errors import FleetError
    from fleet.service.tick import run_forever
    from fleet.untrusted import escaping_stdout, json_text

    try:
        svc = service()
        period = parse_duration(every, what="--every") if every else svc.config.watchdog.every
    except Exception as exc:
        fail(exc, as_json)

    def report(result: Any) -> None:
        if isinstance(result, Exception):
            detail = f"{result.code}: {result.message}" if isinstance(result, FleetError) else repr(result)
            print(f"fleet watchdog: tick failed: {detail}", file=sys.stderr)
        elif as_json:
            print(json_text(result, indent=None), flush=True)
        elif result["actions"] or result["skipped"]:
            with escaping_stdout():  # reasons may quote an agent's words
                _render_tick(dict(result))
            sys.stdout.flush()

    # Ctrl-C (SIGINT) and a supervisor's SIGTERM stop the loop between ticks' statements. Set both
    # here: a process started from a script's background job inherits SIGINT ignored, and Python then
    # installs no KeyboardInterrupt for it (`fleet watchdog run &` could only be killed).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    print(f"fleet watchdog: ticking every {period:g}s over fleet {svc.config.name!r}; Ctrl-C stops.", file=sys.stderr)
    try:
        run_forever(svc, period, report)
    except KeyboardInterrupt:
        print("fleet watchdog: stopped.", file=sys.stderr)


def install_cmd(every: EveryOpt = None, as_json: JsonOpt = False) -> None:
    """Write the systemd user units (service + timer) and enable the timer when a user manager answers.

    $FLEET_STORE_URL and $PGPASSWORD, when set, go to a 0600 environment file beside the units."""
    from fleet.durations import parse_duration
    from fleet.watchdog import systemd

    try:
        config = service().config
        period = parse_duration(every, what="--every") if every else config.watchdog.every
        result: dict[str, Any] = dict(systemd.install(fleet=config.name, config=config.path, every=period))
    except Exception as exc:
        fail(exc, as_json)
    _show_units(result, as_json)


def uninstall_cmd(as_json: JsonOpt = False) -> None:
    """Disable the timer and remove the watchdog's unit files (only files fleet wrote)."""
    from fleet.watchdog import systemd

    try:
        result: dict[str, Any] = dict(systemd.uninstall(fleet=service().config.name))
    except Exception as exc:
        fail(exc, as_json)
    _show_units(result, as_json)


def _show_units(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(result, indent=2))
        return
    print(result["message"])
    for command in result["commands"]:
        print(f"  {command}")


RequestOpt = Annotated[str | None, typer.Option(
    "--request", "-r", help="The approval request id you saw (`fleet status AGENT`): refused with approval_changed "
    "if the agent now waits on another command.")]


def approve_cmd(agent: AgentArg, request: RequestOpt = None, holder: HolderOpt = None, token: TokenOpt = None,
                as_json: JsonOpt = False) -> None:
    """Allow the command the agent waits on (held by fleet's approval hook); no keystrokes."""
    run("agent_approve", {"agent": agent, "request": request, "holder": holder, "token": token}, as_json,
        _render_answer)


def deny_cmd(agent: AgentArg, message: Annotated[str | None, typer.Option(
        "--message", "-m", help="Why; the model reads it.")] = None, request: RequestOpt = None,
        holder: HolderOpt = None, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """Deny the command the agent waits on; the model sees the message."""
    run("agent_deny", {"agent": agent, "message": message, "request": request, "holder": holder, "token": token},
        as_json, _render_answer)


def _render_answer(r: dict[str, Any]) -> None:
    verb = "allowed" if r["decision"] == "allow" else "denied"
    state = "" if r["applied"] else " (answer written; the hook has not confirmed it yet)"
    print(f"{r['agent']}: {verb} {r['tool']} `{one_line(str(r['command']))}`{state}")


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))
