"""The operation registry: each operation declared once, served by the CLI and the MCP server.

An `Operation` has a name (the MCP tool name), the CLI command that runs it, a one-line summary, a
tier (readonly / mutating / destructive: MCP annotations come from it), one JSON Schema for its input
(draft 2020-12, no unknown keys, bounded) and an output schema. Validation happens here, once, with
one compiled `jsonschema` validator per operation, before any handler runs: no coercion, so `"5"` is
not `5`. Handlers live in `service.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, Final, Literal

from .config import AGENT_NAME
from .errors import InvalidInput
from .runtime import MAX_TEXT

Tier = Literal["readonly", "mutating", "destructive"]

#: Holder names go into audit records and error messages: printable, short, no spaces.
HOLDER_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._:@+/-]{0,63}$"

AGENT: Final = {"type": "string", "pattern": AGENT_NAME, "description": "Agent name from fleet.toml."}
AGENTS: Final = {"type": "array", "items": AGENT, "maxItems": 100, "uniqueItems": True,
                 "description": "Agent names; empty or omitted means every configured agent."}
HOLDER: Final = {"type": "string", "pattern": HOLDER_PATTERN,
                 "description": "Lease holder identity; defaults to the caller's (see README, Leases)."}
TOKEN: Final = {"type": "integer", "minimum": 1, "maximum": 2**53,
                "description": "Fencing token from `claim`; the call is refused with lease_lost if it is stale."}
LEASED: Final = {"holder": HOLDER, "token": TOKEN}


def _obj(props: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": list(required), "additionalProperties": False}


def _out(*required: str) -> dict[str, Any]:
    return {"type": "object", "required": list(required)}


@dataclass(frozen=True)
class Operation:
    name: str
    cli: str
    summary: str
    tier: Tier
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]

    @cached_property
    def validator(self) -> Any:
        from jsonschema import Draft202012Validator

        Draft202012Validator.check_schema(self.input_schema)
        return Draft202012Validator(self.input_schema)

    def validate(self, args: dict[str, Any]) -> dict[str, Any]:
        """Check `args` against the schema; raise InvalidInput naming the key path and the rule."""
        from jsonschema.exceptions import relevance

        errors = sorted(self.validator.iter_errors(args), key=relevance, reverse=True)
        if errors:
            err = errors[0]
            where = err.json_path
            if err.validator == "additionalProperties":
                message = f"unknown argument ({err.message})"
            elif err.validator == "pattern" and where.endswith("holder"):
                message = f"{err.instance!r} is not a valid holder (1-64 of A-Z a-z 0-9 . _ : @ + / -)"
            elif err.validator == "pattern":
                message = f"{err.instance!r} is not a valid agent name ({AGENT_NAME})"
            else:
                message = err.message
            raise InvalidInput(
                f"{self.name}: {where}: {message}.",
                hint=f"See `fleet {self.cli} --help` for the arguments.", operation=self.name, key=where,
            )
        return args


REGISTRY: Final[dict[str, Operation]] = {
    op.name: op
    for op in (
        Operation("fleet_status", "status", "Show each agent's exact state, last turn and lease.", "readonly",
                  _obj({"agents": AGENTS}), _out("agents")),
        Operation("agent_start", "up", "Start agents (the Codex TUI in tmux) and wait until each is ready.",
                  "mutating", _obj({"agents": AGENTS, **LEASED,
                                    "timeout": {"type": "number", "minimum": 1, "maximum": 300}}),
                  _out("agents")),
        Operation("agent_stop", "down", "Stop agents: quit Codex cleanly, kill if it must; no process left.",
                  "destructive", _obj({"agents": AGENTS, **LEASED}), _out("agents")),
        Operation("agent_send", "send",
                  "Send a prompt; returns a receipt once Codex recorded it, else a not_delivered error.",
                  "mutating",
                  _obj({"agent": AGENT,
                        "text": {"type": "string", "minLength": 1, "maxLength": MAX_TEXT},
                        "request_id": {"type": "string", "pattern": r"^[A-Za-z0-9._:-]{1,128}$",
                                       "description": "Idempotency key: a retry with the same id never "
                                                      "types the prompt twice."},
                        "timeout": {"type": "number", "minimum": 1, "maximum": 120},
                        **LEASED}, ("agent", "text")),
                  _out("agent", "delivered", "turn_id")),
        Operation("agent_interrupt", "interrupt", "Interrupt the agent's running turn (like Esc).", "mutating",
                  _obj({"agent": AGENT, **LEASED}, ("agent",)), _out("agent", "interrupted")),
        Operation("agent_tail", "tail", "Show the last lines of the agent's screen (live or final).",
                  "readonly",
                  _obj({"agent": AGENT, "lines": {"type": "integer", "minimum": 1, "maximum": 2000}},
                       ("agent",)),
                  _out("agent", "lines")),
        Operation("fleet_doctor", "doctor", "Check tmux, Codex, the config and the state dir.", "readonly",
                  _obj({}), _out("ok", "checks")),
        Operation("agent_claim", "claim", "Claim (or renew) an agent's lease; others are refused until it "
                  "expires.", "mutating",
                  _obj({"agent": AGENT, "holder": HOLDER,
                        "ttl": {"type": "number", "minimum": 1, "maximum": 86400},
                        "wait": {"type": "number", "minimum": 0, "maximum": 600}}, ("agent",)),
                  _out("agent", "holder", "token", "expires_at", "status")),
        Operation("agent_release", "release", "Release an agent's lease (force breaks anyone's; audited).",
                  "mutating", _obj({"agent": AGENT, "holder": HOLDER, "force": {"type": "boolean"}}, ("agent",)),
                  _out("agent", "released")),
        Operation("fleet_leases", "leases", "List every agent's lease: free, held or expired.", "readonly",
                  _obj({}), _out("leases")),
        Operation("lease_repair", "lease-repair",
                  "Move a corrupt lease record aside (kept, audited) so the agent can be claimed again.",
                  "destructive", _obj({"agent": AGENT, "holder": HOLDER}, ("agent",)), _out("agent")),
    )
}


def get(name: str) -> Operation:
    try:
        return REGISTRY[name]
    except KeyError:
        raise InvalidInput(f"Unknown operation {name!r}.", hint="See `fleet --help`.") from None
