"""The operation registry: each operation declared once, served by the CLI and the MCP server.

An `Operation` has a name (the MCP tool name), the CLI command that runs it, a one-line summary, a
tier (readonly / mutating / destructive: MCP annotations come from it), one JSON Schema for its input
(draft 2020-12, no unknown keys, bounded; defaults declared here and nowhere else), an output schema,
and its handler in `fleet.service`. `invoke` is the one entry point of both adapters: validate with
the operation's compiled `jsonschema` validator (no coercion: `"5"` is not `5`), fill in the schema's
defaults, run the handler, audit mutating operations.

Importing this module must stay cheap, because every CLI call does: a handler is named by its
dotted path (`"fleet.service.leases:agent_claim"`) and imported on its first call, so the registry
never loads what other operations need; a valid input passes `fleet.schemacheck`'s pre-check and
jsonschema is imported only to judge and explain an input the pre-check does not pass.
"""

from __future__ import annotations

import importlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Final, Literal

from .errors import FleetError, InvalidInput, LedgerError, NotFinite
from .prompttext import MAX_TEXT
from .schemacheck import compile_check, non_finite
from .vocab import AGENT_NAME, AGENT_NAME_RULE, BRANCH_NAME, HOLDER_PATTERN
from .work.lifecycle import ASSIGNMENT_ID_PATTERN

if TYPE_CHECKING:
    from .schemacheck import Check
    from .service.core import Service

Tier = Literal["readonly", "mutating", "destructive"]
Handler = Callable[..., dict[str, Any]]

AGENT: Final = {"type": "string", "pattern": AGENT_NAME, "description": "Agent name."}
AGENTS: Final = {"type": "array", "items": AGENT, "maxItems": 100, "uniqueItems": True,
                 "description": "Agent names (default: all)."}
APPROVAL_REQUEST: Final = {
    "type": "string", "pattern": "^ap-[0-9a-f]{16}$",
    "description": "The approval request you looked at (fleet_status: the agent's approval.request); "
                   "refused with approval_changed if the agent now waits on another one. Give it."}
HOLDER: Final = {"type": "string", "pattern": HOLDER_PATTERN,
                 "description": "Lease holder (default: you)."}
TOKEN: Final = {"type": "integer", "minimum": 1, "maximum": 2**53,
                "description": "Token from agent_claim; a stale one is refused (lease_lost)."}
LEASED: Final = {"holder": HOLDER, "token": TOKEN}
REQUEST_ID: Final = {"type": "string", "pattern": r"^[A-Za-z0-9._:-]{1,128}(?!\n)$",
                     "description": "Your idempotency key: a retry returns the first result."}

ASSIGNMENT: Final = {"type": "string", "pattern": ASSIGNMENT_ID_PATTERN,
                     "description": "Assignment id (as-...)."}
#: The prompt's own limits (`fleet.work.prompt`): a task is instructions, checks are commands.
_TASK_CHARS: Final = 16_000
_STRINGS: Final = {"type": "string", "minLength": 1, "maxLength": 4096}


def _list(items: dict[str, Any], most: int, what: str) -> dict[str, Any]:
    return {"type": "array", "items": items, "maxItems": most, "description": what}


ASSIGN_PROPS: Final = {
    "task": {"type": "string", "minLength": 1, "maxLength": _TASK_CHARS,
             "description": "What the agent should do, in plain words; point at files for long material."},
    "to": {**AGENT, "description": "Send it to this agent; without it fleet routes to the best idle agent."},
    "skills": _list({"type": "string", "minLength": 1, "maxLength": 200}, 32,
                    "Skills the agent must have (names as `skill_list` shows them); the prompt mentions each."),
    "write_paths": _list(_STRINGS, 64, "Paths the agent may change, relative to its cwd (a trailing / means a "
                                       "directory); none means read-only. Writes elsewhere are denied and reject it."),
    "read_paths": _list(_STRINGS, 64, "Paths to read, relative to its cwd (default: all of it)."),
    "checks": _list({"type": "string", "minLength": 1, "maxLength": 1000}, 16,
                    "Shell commands fleet runs in the agent's cwd after the report; each must exit 0."),
    "deadline": {"type": "string", "minLength": 1, "maxLength": 32, "default": "1h",
                 "description": "How long the agent has, e.g. 30m, 2h, 1h30m (default 1h, at most ~1 day)."},
    "queue": {"type": "boolean", "default": False,
              "description": "If no agent can take it now, keep it queued (sent by dispatch) instead of failing."},
    "budget": {"type": ["string", "integer"], "minLength": 1, "maxLength": 32, "minimum": 1,
               "description": "Token budget, e.g. 200k, 1.5m or 250000: input + output tokens (cached input "
                              "included) of all its turns. Past it the watchdog interrupts the turn and asks "
                              "for the report; none within report_grace fails it as over_budget. Default: the "
                              "agent's budget in fleet.toml, if any."},
    "request_id": REQUEST_ID,
    "repo": {"type": "string", "minLength": 1, "maxLength": 4096,
             "description": "Only agents working in worktrees of this repository (a path); inferred when every "
                            "candidate shares one."},
    **LEASED,
}
#: A branch to merge into (`--into`): the names fleet uses as a base.
BRANCH: Final = {"type": "string", "pattern": BRANCH_NAME, "description": "A local branch."}

#: What a failed `pattern` means, by the property it failed on; messages name the real rule.
_PATTERN_MEANING: Final = {
    "holder": "a valid holder (1-64 of A-Z a-z 0-9 . _ : @ + / -, starting with a letter or digit)",
    "agent": f"a valid agent name ({AGENT_NAME_RULE})",
    "agents": f"a valid agent name ({AGENT_NAME_RULE})",
    "request_id": "a valid request id (1-128 of A-Z a-z 0-9 . _ : -)",
    "assignment": "an assignment id (as- and 26 characters)",
    "assignments": "an assignment id (as- and 26 characters)",
    "to": f"a valid agent name ({AGENT_NAME_RULE})",
    "into": "a branch name fleet uses as a base (letters, digits and . _ / + -, not starting with - or .)",
}


def _obj(props: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": list(required), "additionalProperties": False}


def _out(*required: str) -> dict[str, Any]:
    return {"type": "object", "required": list(required)}


@dataclass(frozen=True)
class Operation:
    """One operation. `handler` is `"module:function"`, a function `(svc, **args)` in the service
    layer, imported on first use (`run`); tests check every one resolves and takes the schema's keys."""

    name: str
    cli: str
    summary: str
    tier: Tier
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]
    handler: str

    @cached_property
    def run(self) -> Handler:
        module, _, function = self.handler.partition(":")
        fn: Handler = getattr(importlib.import_module(module), function)
        return fn

    @cached_property
    def precheck(self) -> Check:
        return compile_check(self.input_schema)

    @cached_property
    def validator(self) -> Any:
        from jsonschema import Draft202012Validator  # noqa: PLC0415 (heavy: only to judge or explain what the fast check refused)

        return Draft202012Validator(self.input_schema)

    @cached_property
    def defaults(self) -> dict[str, Any]:
        return {k: v["default"] for k, v in self.input_schema["properties"].items() if "default" in v}

    def validate(self, args: dict[str, Any]) -> dict[str, Any]:
        """Check `args` against the schema; raise InvalidInput naming the key path and the rule.
        A NaN or an infinity anywhere is refused first (`number_not_finite`): no bound catches it."""
        bad = non_finite(args)
        if bad is not None:
            raise NotFinite(f"{self.name}: {bad[0]}: {bad[1]!r} is not a finite number.",
                            hint=f"Pass a plain number; see `fleet {self.cli} --help` for the range.",
                            operation=self.name, key=bad[0])
        if self.precheck(args):
            return args
        from jsonschema.exceptions import relevance  # noqa: PLC0415 (heavy: only to judge or explain what the fast check refused)

        errors = sorted(self.validator.iter_errors(args), key=relevance, reverse=True)
        if errors:
            err = errors[0]
            where = err.json_path
            prop = next((p for p in reversed(err.absolute_path) if isinstance(p, str)), "")
            if err.validator == "additionalProperties":
                message = f"unknown argument ({err.message})"
            elif err.validator == "pattern" and prop in _PATTERN_MEANING:
                message = f"{err.instance!r} is not {_PATTERN_MEANING[prop]}"
            else:
                message = err.message
            raise InvalidInput(
                f"{self.name}: {where}: {message}.",
                hint=f"See `fleet {self.cli} --help` for the arguments.", operation=self.name, key=where,
            )
        return args


def _op(name: str, cli: str, summary: str, tier: Tier, props: dict[str, Any], required: tuple[str, ...],
        out: dict[str, Any], handler: str) -> Operation:
    return Operation(name, cli, summary, tier, _obj(props, required), out, handler)


_AGENTS_OPS: Final = "fleet.service.agents:"
_LEASE_OPS: Final = "fleet.service.leases:"
_ASSIGN_OPS: Final = "fleet.service.assign:"
_CREATE_OPS: Final = "fleet.service.assigncreate:"
_ASSIGNMENTS_OPS: Final = "fleet.service.assignments:"
_WATCHDOG_OPS: Final = "fleet.service.watchdog:"
_WORKTREE_OPS: Final = "fleet.service.worktrees:"
_USAGE_OPS: Final = "fleet.service.usage:"


def _seconds(minimum: float, maximum: float, default: float, what: str) -> dict[str, Any]:
    return {"type": "number", "minimum": minimum, "maximum": maximum, "default": default,
            "description": f"{what} (seconds, {minimum:g}..{maximum:g}, default {default:g})."}


REGISTRY: Final[dict[str, Operation]] = {
    op.name: op
    for op in (
        _op("fleet_status", "status",
            "Who is idle, working, limited or stopped, its last turn and lease holder: look before assigning.",
            "readonly",
            {"agents": AGENTS}, (), _out("agents"), _AGENTS_OPS + "fleet_status"),
        _op("fleet_hosts", "hosts",
            "Each remote host ([hosts] in fleet.toml): reachable, latency, its fleet version, its agents.",
            "readonly", {}, (), _out("hosts"), "fleet.service.hosts:fleet_hosts"),
        _op("agent_start", "up",
            "Start agents (Codex in tmux); returns when each is ready, one result per agent.",
            "mutating", {"agents": AGENTS, **LEASED,
                         "timeout": _seconds(1, 300, 30, "How long the whole call may take, readiness included")},
            (), _out("ok", "agents"), _AGENTS_OPS + "agent_start"),
        _op("agent_stop", "down",
            "Stop agents (quit Codex, kill if it must).",
            "destructive", {"agents": AGENTS, **LEASED}, (), _out("ok", "agents"), _AGENTS_OPS + "agent_stop"),
        _op("agent_send", "send",
            "Ad-hoc prompt outside assignments; returns once Codex recorded it (receipt) or not_delivered.",
            "mutating",
            {"agent": AGENT, "text": {"type": "string", "minLength": 1, "maxLength": MAX_TEXT},
             "request_id": REQUEST_ID,
             "timeout": _seconds(1, 120, 10, "How long to wait for Codex to record the prompt"), **LEASED},
            ("agent", "text"), _out("agent", "delivered", "turn_id"), _AGENTS_OPS + "agent_send"),
        _op("agent_interrupt", "interrupt",
            "Interrupt an agent's running turn (like Esc).",
            "mutating",
            {"agent": AGENT, **LEASED}, ("agent",), _out("agent", "interrupted"), _AGENTS_OPS + "agent_interrupt"),
        _op("agent_tail", "tail",
            "An agent's last screen lines: what it is doing, or why it is stuck.",
            "readonly",
            {"agent": AGENT, "lines": {"type": "integer", "minimum": 1, "maximum": 2000, "default": 40}},
            ("agent",), _out("agent", "lines"), _AGENTS_OPS + "agent_tail"),
        _op("fleet_doctor", "doctor",
            "When agents fail to start: checks tmux, Codex, the config, the state dir, the plugin.",
            "readonly",
            {}, (), _out("ok", "checks"), "fleet.service.doctor:fleet_doctor"),
        _op("agent_claim", "claim",
            "Claim or renew an agent for ad-hoc agent_send; others are refused until it expires. With token: "
            "renew only that lease.",
            "mutating",
            {"agent": AGENT, "holder": HOLDER, "token": TOKEN,
             "ttl": _seconds(1, 86400, 1800, "Lease length"),
             "wait": _seconds(0, 600, 0, "How long to wait for a held lease")},
            ("agent",), _out("agent", "holder", "token", "expires_at", "status"), _LEASE_OPS + "agent_claim"),
        _op("agent_release", "release",
            "Release your lease on an agent (force: anyone's, audited; token: only that lease).",
            "mutating",
            {"agent": AGENT, "holder": HOLDER, "token": TOKEN, "force": {"type": "boolean", "default": False}},
            ("agent",), _out("agent", "released"), _LEASE_OPS + "agent_release"),
        _op("fleet_leases", "leases",
            "Who holds each agent and for how long.",
            "readonly",
            {}, (), _out("leases"), _LEASE_OPS + "fleet_leases"),
        _op("lease_repair", "lease-repair",
            "Only after a lease_corrupt error: move the bad record aside.",
            "destructive", {"agent": AGENT, "holder": HOLDER}, ("agent",), _out("agent"), _LEASE_OPS + "lease_repair"),
        _op("store_init", "store init",
            "Create or upgrade the shared PostgreSQL store's schema ([store] url); idempotent, safe from many hosts.",
            "mutating", {}, (), _out("backend", "version", "applied"), "fleet.service.store:store_init"),
        _op("store_status", "store status",
            "Which store holds the leases and the ledger (embedded files or PostgreSQL), and whether it "
            "answers with the right schema.",
            "readonly", {}, (), _out("backend", "ok"), "fleet.service.store:store_status"),
        _op("ledger_repair", "ledger-repair",
            "Only after a ledger_unusable error: move a damaged fleet.db aside (kept), salvage its rows into a "
            "fresh ledger, say what was lost.",
            "destructive", {"holder": HOLDER}, (), _out("repaired", "moved", "salvaged", "lost"),
            "fleet.service.ledgerrepair:ledger_repair"),
        _op("skill_list", "skills",
            "Skills each agent can use (what to pass as assignment_create's skills); broken ones with their "
            "error.",
            "readonly",
            {"agents": AGENTS}, (), _out("agents"), _ASSIGNMENTS_OPS + "skill_list"),
        _op("assignment_create", "assign",
            "Hand one self-contained task to an agent (routed by skills, or `to`) with its scope, checks and "
            "report contract; returns once its Codex received it. Then assignment_wait.",
            "mutating",
            ASSIGN_PROPS, ("task",), _out("assignment", "state", "duplicate"), _CREATE_OPS + "assignment_create"),
        _op("assignment_list", "assignments",
            "Assignments, newest first: id, agent, state, report status, verdict.",
            "readonly",
            {"open_only": {"type": "boolean", "default": False, "description": "Only open ones."},
             "agent": AGENT, "limit": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 100}},
            (), _out("assignments"), _ASSIGNMENTS_OPS + "assignment_list"),
        _op("assignment_get", "show",
            "One assignment in full: report, verification (why it was rejected), receipt, events.",
            "readonly",
            {"assignment": ASSIGNMENT}, ("assignment",), _out("id", "state", "events"),
            _ASSIGNMENTS_OPS + "assignment_get"),
        _op("assignment_wait", "wait",
            "Wait until assignments end (verified, rejected, failed, cancelled); over MCP at most 50 s: call "
            "again while any is pending.",
            "readonly",
            {"assignments": {"type": "array", "items": ASSIGNMENT, "minItems": 1, "maxItems": 100,
                             "uniqueItems": True, "description": "Assignment ids to wait for."},
             "timeout": _seconds(0, 3600, 25, "How long to wait (over MCP at most 50)")},
            ("assignments",), _out("done", "pending"), _ASSIGNMENTS_OPS + "assignment_wait"),
        _op("assignment_cancel", "cancel",
            "Drop an open assignment and free its agent; interrupt also stops its running turn.",
            "destructive",
            {"assignment": ASSIGNMENT, "interrupt": {"type": "boolean", "default": False,
                                                     "description": "Also interrupt the agent's turn (like Esc)."},
             "holder": HOLDER},
            ("assignment",), _out("assignment", "cancelled", "state"), _ASSIGN_OPS + "assignment_cancel"),
        _op("fleet_usage", "usage",
            "Tokens used (input, cached input, output, reasoning, turns) per agent and per assignment.",
            "readonly",
            {"agent": AGENT, "since": {"type": "string", "minLength": 1, "maxLength": 32,
                                       "description": "Only turns and assignments since this long ago "
                                                      "(e.g. 1h, 2d; default: all fleet still holds)."}},
            (), _out("agents", "assignments", "total"), _USAGE_OPS + "fleet_usage"),
        _op("fleet_events", "events",
            "What changed since a cursor (oldest first), and the cursor to pass next.",
            "readonly",
            {"since": {"type": "integer", "minimum": 0, "maximum": 2**53, "default": 0,
                       "description": "Return events after this cursor (0: from the start)."},
             "limit": {"type": "integer", "minimum": 1, "maximum": 5000, "default": 200},
             "assignment": ASSIGNMENT},
            (), _out("events", "cursor"), _ASSIGNMENTS_OPS + "fleet_events"),
        _op("assignment_diff", "diff",
            "What a worktree assignment's branch changes against the commit it started from: a stat and the "
            "patch, cut at max_bytes. Read it before merging.",
            "readonly",
            {"assignment": ASSIGNMENT,
             "max_bytes": {"type": "integer", "minimum": 0, "maximum": 4 * 1024 * 1024, "default": 64 * 1024,
                           "description": "Cut the patch here (default 64 KiB; the stat is always whole)."}},
            ("assignment",), _out("assignment", "stat", "patch", "truncated"), _WORKTREE_OPS + "assignment_diff"),
        _op("assignment_merge", "merge",
            "Merge verified worktree assignments, in the order given, into their base branch (or `into`): "
            "fast-forward or a merge commit; a conflict (merge_conflict) changes nothing: re-assign that work.",
            "mutating",
            {"assignments": {"type": "array", "items": ASSIGNMENT, "minItems": 1, "maxItems": 100,
                             "description": "Assignment ids, in the order to merge them."},
             "into": {**BRANCH, "description": "The branch to merge into (default: the one they started from)."},
             "holder": HOLDER},
            ("assignments",), _out("into", "old", "new", "steps"), _WORKTREE_OPS + "assignment_merge"),
        _op("worktree_list", "worktrees",
            "Each repo agent's worktree: path, branch, clean/dirty, and its verified assignments not merged yet.",
            "readonly", {}, (), _out("worktrees"), _WORKTREE_OPS + "worktree_list"),
        _op("worktree_prune", "worktree-prune",
            "Remove worktrees of agents no longer configured and branches of merged or cancelled assignments; "
            "nothing unmerged unless force.",
            "destructive",
            {"force": {"type": "boolean", "default": False,
                       "description": "Also delete work the base does not contain, and uncommitted files."},
             "holder": HOLDER},
            (), _out("worktrees", "branches", "kept"), _WORKTREE_OPS + "worktree_prune"),
        _op("fleet_dispatch", "dispatch",
            "Send queued assignments to agents that are free now (oldest first).",
            "mutating",
            {}, (), _out("dispatched", "queued"), _ASSIGN_OPS + "fleet_dispatch"),
        _op("fleet_install", "install",
            "Add fleet's Codex plugin (these tools, the lead skills) to a Codex home, or remove it; "
            "idempotent.",
            "mutating",
            {"codex_home": {"type": "string", "minLength": 1, "maxLength": 4096,
                            "description": "The Codex home (default: $CODEX_HOME, else ~/.codex); over MCP only "
                                           "that one or an agent home of the fleet."},
             "uninstall": {"type": "boolean", "default": False, "description": "Remove the plugin instead."}},
            (), _out("codex_home", "installed", "changed", "changes"), "fleet.service.install:fleet_install"),
        _op("watchdog_tick", "watchdog tick",
            "Run one watchdog tick: report requests, escalation, restarts, resumes after usage limits, dispatch.",
            "mutating", {"dry_run": {"type": "boolean", "default": False,
                                     "description": "Decide and show what would be done, without doing it."}},
            (), _out("at", "actions"), _WATCHDOG_OPS + "watchdog_tick"),
        _op("watchdog_status", "watchdog status", "Show the watchdog's timer, its last ticks and what it did.",
            "readonly", {"ticks": {"type": "integer", "minimum": 1, "maximum": 100, "default": 10,
                                   "description": "How many recent ticks that acted to show."}},
            (), _out("fleet", "last_tick", "recent"), _WATCHDOG_OPS + "watchdog_status"),
        _op("agent_approve", "approve", "Allow the command the agent waits on (held by fleet's approval hook).",
            "mutating", {"agent": AGENT, "request": APPROVAL_REQUEST, **LEASED}, ("agent",),
            _out("agent", "request", "decision"), _WATCHDOG_OPS + "agent_approve"),
        _op("agent_deny", "deny", "Deny the command the agent waits on; the model sees the message.", "mutating",
            {"agent": AGENT, "message": {"type": "string", "maxLength": 2000, "default": "",
                                         "description": "Why: the model reads it."},
             "request": APPROVAL_REQUEST, **LEASED},
            ("agent",), _out("agent", "request", "decision"), _WATCHDOG_OPS + "agent_deny"),
    )
}


#: Operations only another host's fleet asks for, over its channel (`fleet remote-session`, which
#: invokes with `internal`): neither CLI commands nor MCP tools. Read-only, validated like the others.
INTERNAL: Final[dict[str, Operation]] = {
    op.name: op
    for op in (
        _op("assignment_route", "assign",
            "Which of this host's agents `assign` without `to` would pick now, with its rank key, or why none "
            "can; creates nothing.",
            "readonly", {k: ASSIGN_PROPS[k] for k in ("skills", "write_paths", "read_paths", "repo")}, (),
            _out("agent", "rank", "reasons"), "fleet.service.routing:assignment_route"),
    )
}


def get(name: str, *, internal: bool = False) -> Operation:
    """The operation `name`; an internal one (`INTERNAL`) only when asked for with `internal`."""
    op = REGISTRY.get(name) or (INTERNAL.get(name) if internal else None)
    if op is None:
        raise InvalidInput(f"Unknown operation {name!r}.", hint="See `fleet --help`.")
    return op


def invoke(svc: Service, name: str, args: dict[str, Any], *, internal: bool = False) -> dict[str, Any]:
    """Validate, fill defaults, run the handler; audit mutating operations (outcome and error code).
    `internal`: `name` may be one of the `INTERNAL` operations (a host's channel only)."""
    op = get(name, internal=internal)
    op.validate(args)
    call = {**op.defaults, **args}
    if op.tier == "readonly":
        return _run(op, svc, call)
    from .leases.rules import validate_caller_holder  # noqa: PLC0415 (the lease store's own module: mutating calls load it anyway)

    validate_caller_holder(args.get("holder") or svc.holder)
    started = time.monotonic()
    try:
        result = _run(op, svc, call)
    except FleetError as exc:
        svc.audit_operation(name, call, "error", exc.code, int((time.monotonic() - started) * 1000))
        raise
    outcome = "partial" if result.get("ok") is False else "ok"  # up/down: some agents failed
    svc.audit_operation(name, call, outcome, None, int((time.monotonic() - started) * 1000))
    return result


def _run(op: Operation, svc: Service, call: dict[str, Any]) -> dict[str, Any]:
    """Run the handler; a damaged ledger page (SQLite's plain `DatabaseError`: malformed, not a
    database) met anywhere in it becomes `ledger_unusable` with the repair hint, not an internal error."""
    try:
        return op.run(svc, **call)
    except Exception as exc:
        sqlite3 = sys.modules.get("sqlite3")  # loaded by whoever opened the ledger; never imported here
        if sqlite3 is not None and type(exc) is sqlite3.DatabaseError:
            raise LedgerError(f"The ledger is damaged: {exc}.", hint="Run `fleet ledger-repair`: it keeps the damaged "
                              "file, salvages what it can and starts a fresh ledger.") from exc
        raise
