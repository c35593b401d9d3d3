"""How results read to a model over MCP: the same facts as the CLI's `--json`, in fewer bytes.

Every byte of a tool result is a token in the lead's context, on every call. So the MCP surface
sends a compact view (the CLI's `--json` stays complete):

- every result: no `null`s, no empty strings, lists or objects (absent means "none");
- `fleet_status`: a table, `columns` once and one row per agent: `[agent, state, role, lease, last,
  for_s]`, where `lease` is the holder when held (the token is the holder's business: `agent_claim`
  returns it), `last` the last turn's outcome and `for_s` the seconds in this state. Per agent, only
  the facts that are not routine go in `notes` (`detail`, an exited agent's exit status, a failed
  last turn's `last_error` code, a usage limit's `resets_in_s`, anything other parts of fleet add).
  Rate-limit headroom reads `5h 42% used, 7d 13% used`: once, as `rate_limits`, when every agent
  reports the same (one account), else per agent in `notes`. Paths, pids and timestamps stay out:
  the lead names agents, not paths, and `fleet status --json` has them all (20 busy agents: ~1.9 KB),
  the session's token totals too (`fleet_usage` has them for a lead);
- `fleet_leases`: a table too.

Agent-written text (`UNTRUSTED_PATHS`) goes out only inside `{"untrusted": ...}` (`fleet.untrusted`):
an approval's command and justification, the pane, reports, summaries, changed paths, check output,
reasons, event details, skills read from an agent's home, action reasons that may quote any of it,
a worktree's diff and its dirty file names.
A path that could carry an agent's words is marked even when fleet wrote the words this time.

Pure: `now` is an argument. The tables' schemas are in `STATUS_COLUMNS` / `LEASE_COLUMNS`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Final

from fleet.untrusted import mark_paths

STATUS_COLUMNS: Final = ("agent", "state", "role", "lease", "last", "for_s")
#: Inserted after `role` when any agent's account is known (`fleet.agents.account`); else left out.
ACCOUNT_COLUMN: Final = "account"
LEASE_COLUMNS: Final = ("agent", "state", "holder", "token", "expires_in")
#: Status fields the table carries, or that are for people and scripts (paths, pids, exact times;
#: `usage`, the session's tokens: a lead asks `fleet_usage`).
_STATUS_ROUTINE: Final = frozenset({"name", "state", "role", "lease", "last_turn", "since", "home", "cwd",
                                    "sandbox", "pid", "exit_signal", "exit_status", "resets_at", "rate_limits",
                                    "rate_limits_at", "usage", "account"})


def prune(value: Any) -> Any:
    """`value` without nulls and empty containers or strings, recursively (False and 0 are kept)."""
    if isinstance(value, dict):
        out = {k: prune(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, "", [], {})}
    if isinstance(value, list):
        return [prune(v) for v in value]
    return value


def _lease(lease: Any) -> str | None:
    if not isinstance(lease, dict):
        return None
    if lease.get("state") == "held":
        return str(lease.get("holder"))
    return "corrupt" if lease.get("state") == "corrupt" else None


def _window(minutes: Any) -> str:
    if not isinstance(minutes, int) or minutes <= 0:
        return "window"
    if minutes % 1440 == 0:
        return f"{minutes // 1440}d"
    return f"{minutes // 60}h" if minutes % 60 == 0 else f"{minutes}m"


def headroom(limits: Any) -> str | None:
    """Rate-limit headroom in a few characters: `5h 42% used, 7d 13% used` (None when unknown)."""
    if not isinstance(limits, dict):
        return None
    parts = [f"{_window(w.get('window_minutes'))} {float(w['used_percent']):.0f}% used"
             for w in (limits.get("primary"), limits.get("secondary"))
             if isinstance(w, dict) and isinstance(w.get("used_percent"), (int, float))]
    return ", ".join(parts) or None


def status_view(result: dict[str, Any], now: float) -> dict[str, Any]:
    rows: list[list[Any]] = []
    notes: dict[str, dict[str, Any]] = {}
    limits: dict[str, str] = {}
    for a in result.get("agents", []):
        name = str(a.get("name"))
        last = a.get("last_turn") or {}
        since = a.get("since")
        rows.append([a.get("name"), a.get("state"), a.get("role"), _lease(a.get("lease")), last.get("outcome"),
                     max(0, int(now - since)) if isinstance(since, (int, float)) else None])
        extra = prune({k: v for k, v in a.items() if k not in _STATUS_ROUTINE})
        if a.get("state") == "exited":  # how it died matters only while it lies dead
            extra.update(prune({"exit_status": a.get("exit_status"), "exit_signal": a.get("exit_signal")}))
        if isinstance(a.get("resets_at"), (int, float)):
            extra["resets_in_s"] = max(0, int(a["resets_at"] - now))
        if last.get("outcome") == "failed" and isinstance(last.get("error"), dict):
            extra["last_error"] = last["error"].get("code")
        room = headroom(a.get("rate_limits"))
        if room:
            limits[name] = room
        if extra:
            notes[name] = extra
    if len(set(limits.values())) > 1:  # agents on different accounts: per agent
        for name, room in limits.items():
            notes.setdefault(name, {})["rate_limits"] = room
    out: dict[str, Any] = prune({k: v for k, v in result.items() if k != "agents"})
    if len(set(limits.values())) == 1:  # one account, one line
        out["rate_limits"] = next(iter(limits.values()))
    columns = list(STATUS_COLUMNS)
    accounts = [a.get("account") for a in result.get("agents", [])]
    if any(accounts):
        at = columns.index("role") + 1
        columns.insert(at, ACCOUNT_COLUMN)
        rows = [[*row[:at], account, *row[at:]] for row, account in zip(rows, accounts, strict=True)]
    return out | {"columns": columns, "agents": rows} | ({"notes": notes} if notes else {})


def leases_view(result: dict[str, Any], now: float) -> dict[str, Any]:
    rows = []
    notes = {}
    for lease in result.get("leases", []):
        expires = lease.get("expires_in")
        rows.append([lease.get("agent"), lease.get("state"), lease.get("holder"), lease.get("token"),
                     int(expires) if isinstance(expires, (int, float)) else None])
        if lease.get("error"):
            notes[str(lease.get("agent"))] = prune(lease["error"])
    return {"columns": list(LEASE_COLUMNS), "leases": rows} | ({"notes": notes} if notes else {})


#: Per operation, where agent-written text sits in its (compact) result; `*` is every list item.
UNTRUSTED_PATHS: Final[dict[str, tuple[tuple[str, ...], ...]]] = {
    "fleet_status": (("notes", "*", "approval", "command"), ("notes", "*", "approval", "justification"),
                     ("notes", "*", "detail"), ("notes", "*", "last_message")),  # detail quotes the command
    "agent_tail": (("lines",),),
    "skill_list": (("agents", "*", "skills", "*", "name"), ("agents", "*", "skills", "*", "description"),
                   ("agents", "*", "skills", "*", "error"), ("agents", "*", "warnings")),
    "assignment_get": (("report",), ("reason",), ("verification", "changed"),
                       ("verification", "reasons", "*", "message"), ("verification", "reasons", "*", "paths"),
                       ("verification", "checks", "*", "output_tail"), ("verification", "notes"),
                       ("verification", "denied", "paths"), ("events", "*", "details")),
    "assignment_list": (("assignments", "*", "reason"),),
    "assignment_wait": (("done", "*", "summary"), ("done", "*", "reason"), ("pending", "*", "summary"),
                        ("pending", "*", "reason")),
    "fleet_events": (("events", "*", "details"),),
    "watchdog_tick": (("actions", "*", "reason"), ("actions", "*", "detail")),
    "watchdog_status": (("last_tick", "actions", "*", "reason"), ("recent", "*", "actions", "*", "reason"),
                        ("agents", "*", "fatal_reason")),
    "agent_approve": (("command",),),
    "agent_deny": (("command",),),
    # the agent's work itself: file names and contents
    "assignment_diff": (("stat",), ("patch",)),
    "assignment_merge": (("checkout_errors",),),
    "worktree_list": (("worktrees", "*", "dirty"),),
}

_VIEWS: Final[dict[str, Callable[[dict[str, Any], float], dict[str, Any]]]] = {
    "fleet_status": status_view,
    "fleet_leases": leases_view,
}


def view(operation: str, result: dict[str, Any], now: float, keep: Iterable[str] = ()) -> dict[str, Any]:
    """The compact form of `operation`'s result for a model. Top-level keys in `keep` (the output
    schema's required ones) stay even when empty: `{"actions": []}` is an answer, not noise."""
    shaped = _VIEWS.get(operation)
    out: dict[str, Any] = shaped(result, now) if shaped is not None else prune(result)
    for key in keep:
        if key not in out and key in result:
            out[key] = result[key]
    return dict(mark_paths(out, UNTRUSTED_PATHS.get(operation, ())))
