"""The `fleet` command line: a thin adapter over the operation registry.

Each command turns its arguments into the operation's input, calls `ops.invoke` and renders the
result: a readable form on stdout, or with `--json` exactly one JSON document on stdout. Errors are
rendered once, in `_report`: one line on stderr, a non-zero exit (3 for lease conflicts) and, with
`--json`, `{"error": {...}}` on stdout. typer's own usage errors (a bad value, a missing argument,
an unknown option) go through the same function as `invalid_input`, exit 2.

Start-up is most of a CLI call, so this module imports typer and nothing heavy: commands are
`cliparams.PlainCommand`s (no pydantic), the registry loads only the handler it runs, and mcp,
libtmux, filelock and jsonschema load inside the code paths that need them.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Annotated, Any, NoReturn, TypeVar

import typer

from . import __version__
from .cliparams import PlainCommand, PlainGroup, usage_error

app = typer.Typer(
    cls=PlainGroup,
    name="fleet",
    help="Supervise a fleet of named Codex CLI agents in tmux: exact state, receipts, leases, MCP tools.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

_state: dict[str, Any] = {"config": None}

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
HolderOpt = Annotated[str | None, typer.Option(
    "--holder", help="Lease holder (default: $FLEET_HOLDER, else cli:<user>).")]
TokenOpt = Annotated[int | None, typer.Option(
    "--token", help="Fencing token from `fleet claim`; a stale token is refused (lease_lost).")]
AgentsArg = Annotated[list[str] | None, typer.Argument(help="Agent names (default: all).", show_default=False)]
AgentArg = Annotated[str, typer.Argument(help="Agent name.")]


_F = TypeVar("_F", bound=Callable[..., Any])


def _command(name: str) -> Callable[[_F], _F]:
    return app.command(name, cls=PlainCommand)


def _version(value: bool) -> None:
    if value:
        print(f"fleet {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    config: Annotated[str | None, typer.Option(
        "--config", "-c", help="Path to fleet.toml (default: $FLEET_CONFIG, else ./fleet.toml once you "
        "ran `fleet trust`, else ~/.config/fleet/fleet.toml).")] = None,
    version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version and exit.")] = False,
) -> None:
    """Global options come before the command: `fleet --config f.toml status`."""
    _state["config"] = config


def _service() -> Any:
    from .service import Service

    return Service(config_path=_state["config"], surface="cli")


def _invoke(op: str, args: dict[str, Any]) -> dict[str, Any]:
    from . import ops

    svc = _service()
    try:
        return ops.invoke(svc, op, args)
    finally:
        svc.close()


def _report(exc: Exception, as_json: bool) -> int:
    """Print `exc` the one way the CLI prints errors; return the exit status."""
    from .errors import FleetError, InternalError

    err = exc if isinstance(exc, FleetError) else InternalError(
        f"Unexpected {type(exc).__name__}: {exc}.",
        hint="This is a bug in fleet; rerun with FLEET_DEBUG=1 for a traceback and report it.")
    if os.environ.get("FLEET_DEBUG") and not isinstance(exc, FleetError):
        import traceback

        traceback.print_exception(exc)
    from .untrusted import escape_terminal, json_text  # an error may quote an agent's words

    if as_json:
        print(json_text({"error": err.to_dict()}))
    hint = f" ({err.hint})" if err.hint else ""
    print(escape_terminal(f"fleet: {err.code}: {err.message}{hint}"), file=sys.stderr)
    return err.exit_status


def _fail(exc: Exception, as_json: bool) -> NoReturn:
    raise typer.Exit(_report(exc, as_json))


def _run(op: str, args: dict[str, Any], as_json: bool, render: Any = None) -> dict[str, Any]:
    args = {k: v for k, v in args.items() if v is not None and v != []}
    try:
        result: dict[str, Any] = _invoke(op, args)
    except typer.Exit:
        raise
    except Exception as exc:
        _fail(exc, as_json)
    from .untrusted import escaping_stdout, json_text  # agent text never reaches a terminal raw

    if as_json or render is None:
        print(json_text(result))
    else:
        with escaping_stdout():
            render(result)
    return result


def _ago(ts: float | None) -> str:
    if not ts:
        return "-"
    secs = max(0, int(time.time() - ts))
    return f"{secs}s" if secs < 120 else f"{secs // 60}m" if secs < 7200 else f"{secs // 3600}h"


def _last_message(message: str | None) -> str:
    """The head of a turn's last message for the status table: its report's status and summary when
    it ends with a valid fleet-report (never the raw fence), else its first words. Escaped."""
    from .untrusted import one_line

    if not message:
        return "-"
    if "fleet-report" in message:  # the parser only when there may be a report: status stays light
        from .work.report import extract_report

        found = extract_report(message)
        if found.report is not None:
            return one_line(f"report {found.report.status}: {found.report.summary}"[:60])
    return repr(one_line(message[:40]))


def _render_status(result: dict[str, Any]) -> None:
    from .untrusted import one_line

    rows = [("AGENT", "STATE", "ROLE", "PID", "SINCE", "LEASE", "LAST TURN")]
    for a in result["agents"]:
        lease = a.get("lease") or {}
        held = lease.get("state", "-")
        if held == "held":
            held = f"{lease.get('holder')}#{lease.get('token')}"
        last = a.get("last_turn")
        last_s = f"{last['outcome']}: {_last_message(last.get('last_message'))}" if last else "-"
        state = a["state"] + (f" ({one_line(a['detail'])})" if a.get("detail") else "")  # may quote a command
        rows.append((a["name"], state, a["role"], str(a["pid"] or "-"), _ago(a["since"]), held, last_s))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1])
    full = [a["name"] for a in result["agents"] if a.get("sandbox") == "danger-full-access"]
    if full:
        print(f"note: {', '.join(full)} run(s) in danger-full-access: such an agent can write anything fleet "
              "reads, so its verified reports are worth no more than its own word (README: Threat model)")


@_command("status")
def status_cmd(agents: AgentsArg = None, as_json: JsonOpt = False) -> None:
    """Show each agent's exact state (from Codex's own signals), last turn and lease."""
    _run("fleet_status", {"agents": agents}, as_json, _render_status)


@_command("up")
def up_cmd(agents: AgentsArg = None, holder: HolderOpt = None, token: TokenOpt = None,
           timeout: Annotated[float | None, typer.Option(
               help="Seconds the whole call may take, readiness included (default 30).")] = None,
           as_json: JsonOpt = False) -> None:
    """Start agents and return once each is ready for a prompt; exit 1 if any failed.

    Refuses to start anything (control_plane_exposed) while the state dir, a Codex home, the config
    or fleet's install lies where a sandboxed agent can write (its cwd, /tmp, $TMPDIR, extra roots).
    Warns (stderr; `warnings` in --json) about agents that can reach the fleet's tmux server."""
    result = _run("agent_start", {"agents": agents, "holder": holder, "token": token, "timeout": timeout},
                  as_json, _render_agents)
    if not result["ok"]:
        raise typer.Exit(1)


@_command("down")
def down_cmd(agents: AgentsArg = None, holder: HolderOpt = None, token: TokenOpt = None,
             as_json: JsonOpt = False) -> None:
    """Stop agents: quit Codex cleanly, kill it if it must; leaves no process behind; exit 1 if any failed."""
    result = _run("agent_stop", {"agents": agents, "holder": holder, "token": token}, as_json, _render_agents)
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


@_command("send")
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
    _run("agent_send", {"agent": agent, "text": text, "request_id": request_id, "timeout": timeout,
                        "holder": holder, "token": token}, as_json,
         lambda r: print(f"{r['agent']}: delivered, turn {r['turn_id']} ({r['latency_ms']} ms)"
                         + (" [already delivered earlier]" if r["duplicate"] else "")))


@_command("interrupt")
def interrupt_cmd(agent: AgentArg, holder: HolderOpt = None, token: TokenOpt = None,
                  as_json: JsonOpt = False) -> None:
    """Interrupt the agent's running turn (like pressing Esc in its TUI)."""
    _run("agent_interrupt", {"agent": agent, "holder": holder, "token": token}, as_json,
         lambda r: print(f"{r['agent']}: " + (f"interrupted turn {r['turn_id']}" if r["interrupted"]
                                              else f"nothing to interrupt ({r['state']})")))


@_command("tail")
def tail_cmd(agent: AgentArg, lines: Annotated[int | None, typer.Option(
        "--lines", "-n", help="How many lines (default 40).")] = None, as_json: JsonOpt = False) -> None:
    """Print the last lines of the agent's screen (the final screen if it exited)."""
    _run("agent_tail", {"agent": agent, "lines": lines}, as_json, lambda r: print("\n".join(r["lines"])))


@_command("attach")
def attach_cmd(agent: AgentArg, read_only: Annotated[bool, typer.Option(
        "--read-only", "-r", help="Watch without being able to type.")] = False) -> None:
    """Join the agent's live tmux session (detach with C-b d)."""
    try:
        from .service.agents import attach_argv

        argv = attach_argv(_service(), agent, read_only)
    except Exception as exc:
        _fail(exc, False)
    env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}
    os.execvpe(argv[0], argv, env)


@_command("doctor")
def doctor_cmd(as_json: JsonOpt = False) -> None:
    """Check tmux, the Codex CLI, the config (and its trust), the state dir, and that fleet's files lie
    out of every sandboxed agent's reach; warn about agents that can reach the tmux server."""
    def render(r: dict[str, Any]) -> None:
        for c in r["checks"]:
            hint = f" -> {c['hint']}" if c["hint"] else ""
            print(f"{'ok  ' if c['ok'] else 'FAIL'} {c['name']}: {c['detail']}{hint}")
            for warning in c.get("warnings", []):
                print(f"warn {c['name']}: {warning}")
    result = _run("fleet_doctor", {}, as_json, render)
    if not result["ok"]:
        raise typer.Exit(1)


@_command("claim")
def claim_cmd(agent: AgentArg, holder: HolderOpt = None, token: TokenOpt = None,
              ttl: Annotated[float | None, typer.Option(
                  help="Lease length in seconds (1..86400, default 1800).")] = None,
              wait: Annotated[float | None, typer.Option(
                  help="Wait up to this many seconds for a held lease (<= 600).")] = None,
              as_json: JsonOpt = False) -> None:
    """Claim (or renew) an agent's lease. Others are refused (exit 3) until it is released or expires.

    With --token, only renew that lease: a stale token is refused (lease_lost) instead of claiming anew."""
    _run("agent_claim", {"agent": agent, "holder": holder, "token": token, "ttl": ttl, "wait": wait}, as_json,
         lambda r: print(f"{r['agent']}: {r['status']} by {r['holder']}, token {r['token']}, ttl {r['ttl']:.0f}s"))


@_command("release")
def release_cmd(agent: AgentArg, holder: HolderOpt = None, token: TokenOpt = None,
                force: Annotated[bool | None, typer.Option("--force", help="Break anyone's lease (audited).")] = None,
                as_json: JsonOpt = False) -> None:
    """Release an agent's lease. With --token, only that lease: a stale token is refused (lease_lost)."""
    _run("agent_release", {"agent": agent, "holder": holder, "token": token, "force": force}, as_json,
         lambda r: print(f"{r['agent']}: " + ("released" if r["released"] else "was not held")))


@_command("leases")
def leases_cmd(as_json: JsonOpt = False) -> None:
    """List every agent's lease: free, held (holder, token, expires in) or expired."""
    _run("fleet_leases", {}, as_json, _render_leases)


def _render_leases(r: dict[str, Any]) -> None:
    for lease in r["leases"]:
        if lease["state"] == "corrupt":
            print(f"{lease['agent']}: CORRUPT ({lease['error']['message']})")
        elif lease["state"] == "free":
            print(f"{lease['agent']}: free")
        else:
            print(f"{lease['agent']}: {lease['state']} by {lease['holder']}, token {lease['token']}, "
                  f"expires in {lease['expires_in']:.0f}s")


@_command("lease-repair")
def lease_repair_cmd(agent: AgentArg, holder: HolderOpt = None, as_json: JsonOpt = False) -> None:
    """Move a corrupt lease record aside (kept and audited) so the agent can be claimed again."""
    _run("lease_repair", {"agent": agent, "holder": holder}, as_json)


@_command("ledger-repair")
def ledger_repair_cmd(holder: HolderOpt = None, as_json: JsonOpt = False) -> None:
    """Move a damaged fleet.db aside (kept and audited), salvage what SQLite can read into a fresh ledger."""
    _run("ledger_repair", {"holder": holder}, as_json, _render_ledger_repair)


def _render_ledger_repair(r: dict[str, Any]) -> None:
    if not r["repaired"]:
        print("The ledger is sound; nothing was changed.")
        return
    print(f"The ledger was damaged ({r['problem']}); moved aside: {', '.join(r['moved'])}.")
    for table, n in r["salvaged"].items():
        lost = r["lost"].get(table)
        print(f"  {table}: {n} row(s) salvaged, " + ("an unknown number lost" if lost is None else f"{lost} lost"))
    print(f"New events are numbered from {r['events_from']}.")


@_command("mcp")
def mcp_cmd() -> None:
    """Serve the team-lead tools over stdio (MCP). stdout carries only the protocol."""
    from .mcp_server import serve

    serve(_state["config"])


from . import cli_work  # noqa: E402  registers the work commands on `app`


def _wants_json(args: list[str]) -> bool:
    return "--json" in args[: args.index("--")] if "--" in args else "--json" in args


def _command_name(args: list[str]) -> str | None:
    """The command `args` run: the first word after the global options."""
    i = 0
    while i < len(args):
        if args[i] in ("--config", "-c"):
            i += 2
        elif args[i].startswith("-"):
            i += 1
        else:
            return args[i]
    return None


def _click_command(args: list[str]) -> Any:
    """The command line parser for `args`: when they name a command, a group holding only that
    one (typer builds each command from its signature, ~0.5 ms apiece, and a call runs one); with
    only global options (`--version`), none; otherwise (help, a typo) the whole CLI."""
    import copy

    import typer.main

    name = _command_name(args)
    chosen = [c for c in app.registered_commands if c.name == name]
    groups = [g for g in app.registered_groups if g.name == name]  # `fleet watchdog ...`
    if not chosen and not groups and (name is not None or not args or "--help" in args):
        return typer.main.get_command(app)  # help, a typo: everything
    one = copy.copy(app)
    one.registered_commands = chosen
    one.registered_groups = groups
    return typer.main.get_command(one)


def main(argv: list[str] | None = None) -> None:
    """The `fleet` console script: run the command, exit with its status. A usage error typer
    finds comes out as fleet's `invalid_input` error (exit 2), like every other error."""
    args = sys.argv[1:] if argv is None else argv
    command = _click_command(args)
    try:
        status = command.main(args=args, prog_name="fleet", standalone_mode=False)
    except typer.Abort:
        print("fleet: aborted.", file=sys.stderr)
        status = 1
    except typer.TyperException as exc:  # click's usage errors
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare `fleet`: the help text, exit 2
            print(exc.format_message() if hasattr(exc, "format_message") else exc, file=sys.stderr)
            status = 2
        else:
            status = _report(usage_error(exc), _wants_json(args))
    sys.exit(status if isinstance(status, int) else 0)


# Commands of other capabilities, in their own modules; importing them registers them on `app`.
from . import cli_install, cli_trust, cli_watchdog  # noqa: E402

__all__ = ["app", "cli_install", "cli_trust", "cli_watchdog", "cli_work", "main"]
