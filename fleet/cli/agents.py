"""The agent commands of the `fleet` CLI: status, up, down, send, interrupt, tail, attach, doctor.

Each is one registry operation with the same argument names (`attach` aside: it execs tmux); the
conventions are `fleet.cli.base`'s.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from typing import Annotated, Any

import typer

from .base import AgentArg, AgentsArg, HolderOpt, JsonOpt, TokenOpt, fail, run, run_dash, service


def _ago(ts: float | None) -> str:
    if not ts:
        return "-"
    secs = max(0, int(time.time() - ts))
    return f"{secs}s" if secs < 120 else f"{secs // 60}m" if secs < 7200 else f"{secs // 3600}h"


def _last_message(message: str | None) -> str:
    """The head of a turn's last message for the status table: its report's status and summary when
    it ends with a valid fleet-report (never the raw fence), else its first words. Escaped."""
    from fleet.untrusted import one_line

    if not message:
        return "-"
    if "fleet-report" in message:  # the parser only when there may be a report: status stays light
        from fleet.work.report import extract_report

        found = extract_report(message)
        if found.report is not None:
            return one_line(f"report {found.report.status}: {found.report.summary}"[:60])
    return repr(one_line(message[:40]))


def agent_label(name: str, host: str | None) -> str:
    """An agent's name as the tables print it: a remote agent's with its host (`name@host`)."""
    return name + (f"@{host}" if host else "")


def _print_table(rows: Sequence[tuple[str, ...]]) -> None:
    """`rows` (the header first) in aligned columns; the last column is not padded."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1])


def _render_status(result: dict[str, Any]) -> None:
    from fleet.untrusted import one_line

    accounts = any(a.get("account") for a in result["agents"])  # the column only where accounts are known
    rows = [("AGENT", "STATE", "ROLE", *(("ACCOUNT",) if accounts else ()), "PID", "SINCE", "LEASE", "LAST TURN")]
    for a in result["agents"]:
        lease = a.get("lease") or {}
        held = lease.get("state", "-")
        if held == "held":
            held = f"{lease.get('holder')}#{lease.get('token')}"
        last = a.get("last_turn")
        last_s = f"{last['outcome']}: {_last_message(last.get('last_message'))}" if last else "-"
        state = a["state"] + (f" ({one_line(a['detail'])})" if a.get("detail") else "")  # may quote a command
        account = (one_line(str(a.get("account") or "-")),) if accounts else ()
        rows.append((agent_label(a["name"], a.get("host")), state, a["role"], *account, str(a["pid"] or "-"),
                     _ago(a["since"]), held, last_s))
    _print_table(rows)
    full = [a["name"] for a in result["agents"] if a.get("sandbox") == "danger-full-access"]
    if full:
        print(f"note: {', '.join(full)} run(s) in danger-full-access: such an agent can write anything fleet "
              "reads, so its verified reports are worth no more than its own word (README: Threat model)")


def status_cmd(agents: AgentsArg = None, as_json: JsonOpt = False) -> None:
    """Show each agent's exact state (from Codex's own signals), last turn and lease."""
    run("fleet_status", {"agents": agents}, as_json, _render_status)


def _render_hosts(result: dict[str, Any]) -> None:
    if not result["hosts"]:
        print("No hosts configured (add a [hosts.NAME] table to fleet.toml).")
        return
    rows = [("HOST", "REACHABLE", "LATENCY", "VERSION", "AGENTS")]
    for h in result["hosts"]:
        latency = f"{h['latency_ms']:.0f}ms" if h.get("latency_ms") is not None else "-"
        agents = ", ".join(h["agents"]) or "-"
        if h.get("missing"):
            agents += f" (not on the host: {', '.join(h['missing'])})"
        reach = "yes" if h["reachable"] else f"no: {(h.get('error') or {}).get('code', '?')}"
        rows.append((h["name"], reach, latency, str(h.get("version") or "-"), agents))
    _print_table(rows)
    for h in result["hosts"]:
        if h.get("error"):
            print(f"{h['name']}: {h['error'].get('message')} ({h['error'].get('hint')})")


def hosts_cmd(as_json: JsonOpt = False) -> None:
    """Check each remote host ([hosts] in fleet.toml) over ssh: reachable, latency, fleet version, agents."""
    run("fleet_hosts", {}, as_json, _render_hosts)


def up_cmd(agents: AgentsArg = None, holder: HolderOpt = None, token: TokenOpt = None,
           timeout: Annotated[float | None, typer.Option(
               help="Seconds the whole call may take, readiness included (default 30).")] = None,
           as_json: JsonOpt = False) -> None:
    """Start agents and return once each is ready for a prompt; exit 1 if any failed.

    Refuses to start anything (control_plane_exposed) while the state dir, a Codex home, the config
    or fleet's install lies where a sandboxed agent can write (its cwd, /tmp, $TMPDIR, extra roots).
    Warns (stderr; `warnings` in --json) about agents that can reach the fleet's tmux server."""
    result = run("agent_start", {"agents": agents, "holder": holder, "token": token, "timeout": timeout},
                 as_json, _render_agents)
    if not result["ok"]:
        raise typer.Exit(1)


def down_cmd(agents: AgentsArg = None, holder: HolderOpt = None, token: TokenOpt = None,
             as_json: JsonOpt = False) -> None:
    """Stop agents: quit Codex cleanly, kill it if it must; leaves no process behind; exit 1 if any failed."""
    result = run("agent_stop", {"agents": agents, "holder": holder, "token": token}, as_json, _render_agents)
    if not result["ok"]:
        raise typer.Exit(1)


def _render_agents(result: dict[str, Any]) -> None:
    """One line per agent for `up` and `down`; failures name their error code."""
    for a in result["agents"]:
        err = a.get("error")
        if err:
            line = f"{a['agent']}: {a['result'].replace('_', ' ')}: {err['code']}: {err['message']}"
        elif "started" in a:
            line = f"{a['agent']}: {a['result']}, {a['state']} (pid {a['pid']})"
        else:
            line = f"{a['agent']}: {a['state']}" + (" (killed)" if a["forced"] else "") + (
                f", exit status {a['exit_status']}" if a["exit_status"] is not None else "")
        print(line)
    for warning in result.get("warnings", []):
        print(f"warning: {warning}", file=sys.stderr)


def send_cmd(agent: AgentArg,
             text: Annotated[str, typer.Argument(help="The prompt; `-` reads it from stdin.")],
             request_id: Annotated[str | None, typer.Option(
                 "--request-id", help="Idempotency key: a retry with the same id never sends twice.")] = None,
             timeout: Annotated[float | None, typer.Option(
                 help="Seconds to wait for the receipt (default 10).")] = None,
             holder: HolderOpt = None, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """Send a prompt and wait for Codex to record it; prints the receipt (agent, turn id)."""
    if text == "-":
        text = sys.stdin.read()
    run("agent_send", {"agent": agent, "text": text, "request_id": request_id, "timeout": timeout,
                       "holder": holder, "token": token}, as_json,
        lambda r: print(f"{r['agent']}: delivered, turn {r['turn_id']} ({r['latency_ms']} ms)"
                        + (" [already delivered earlier]" if r["duplicate"] else "")))


def interrupt_cmd(agent: AgentArg, holder: HolderOpt = None, token: TokenOpt = None,
                  as_json: JsonOpt = False) -> None:
    """Interrupt the agent's running turn (like pressing Esc in its TUI)."""
    run("agent_interrupt", {"agent": agent, "holder": holder, "token": token}, as_json,
        lambda r: print(f"{r['agent']}: " + (f"interrupted turn {r['turn_id']}" if r["interrupted"]
                                             else f"nothing to interrupt ({r['state']})")))


def tail_cmd(agent: AgentArg, lines: Annotated[int | None, typer.Option(
        "--lines", "-n", help="How many lines (default 40).")] = None, as_json: JsonOpt = False) -> None:
    """Print the last lines of the agent's screen (the final screen if it exited)."""
    run("agent_tail", {"agent": agent, "lines": lines}, as_json, lambda r: print("\n".join(r["lines"])))


def attach_cmd(agent: Annotated[str | None, typer.Argument(
        help="Agent name (none: pick one in the dashboard's table, Enter attaches).", show_default=False)] = None,
        read_only: Annotated[bool, typer.Option(
        "--read-only", "-r", help="Watch without being able to type.")] = False) -> None:
    """Join the agent's live tmux session (detach with C-b d); without AGENT, pick one first."""
    if agent is None:
        raise typer.Exit(run_dash(picker=True))
    try:
        from fleet.service.agents import attach_argv

        argv = attach_argv(service(), agent, read_only)
    except Exception as exc:
        fail(exc, False)
    env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}
    os.execvpe(argv[0], argv, env)


def doctor_cmd(as_json: JsonOpt = False) -> None:
    """Check tmux, each agent's Codex CLI and its release, the config (and its trust), the state dir, and
    that fleet's files lie out of every sandboxed agent's reach; warn about a Codex release fleet is not
    tested with and about agents that can reach the tmux server."""
    def render(r: dict[str, Any]) -> None:
        for c in r["checks"]:
            hint = f" -> {c['hint']}" if c["hint"] else ""
            print(f"{'ok  ' if c['ok'] else 'FAIL'} {c['name']}: {c['detail']}{hint}")
            for warning in c.get("warnings", []):
                print(f"warn {c['name']}: {warning}")
    result = run("fleet_doctor", {}, as_json, render)
    if not result["ok"]:
        raise typer.Exit(1)
