"""fleet's shared words: name patterns, agent states, journal event kinds, holder ids and token usage.

Dependency-free on purpose (stdlib `typing` only, nothing from fleet), so every layer can import it,
the hook receiver's process included, and nothing here can start an import circle. Each set is
declared once, here; a module that needs a smaller set names it here too, so that two modules never
mean different things by one name.
"""

from __future__ import annotations

# `typing`'s aliases, not collections.abc: this module imports nothing but typing (a test pins it)
from typing import Final, Iterable, Literal, Mapping, TypedDict  # noqa: UP035

# --- Name patterns -------------------------------------------------------------------------------
# Schema patterns are matched with `re.search`, where `$` also matches before a final newline:
# `(?!\n)$` (valid in ECMA-262 too) keeps "mila\n" out.

#: Agent names become tmux session names and file names: keep them short, lowercase and shell-safe.
AGENT_NAME: Final = r"^[a-z][a-z0-9-]{0,31}(?!\n)$"
#: The agent-name rule in words, for messages.
AGENT_NAME_RULE: Final = "1-32 lowercase letters, digits or '-', starting with a letter"
#: Holder names go into audit records and error messages: printable, short, no spaces.
HOLDER_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._:@+/-]{0,63}(?!\n)$"
#: Host names (`[hosts.NAME]`, an agent's `host`): the agent-name rule.
HOST_NAME: Final = AGENT_NAME
#: The host-name rule in words, for messages.
HOST_NAME_RULE: Final = AGENT_NAME_RULE
#: Fleet names name the tmux socket (with the state dir: `tmux_socket`) and the default state dir.
FLEET_NAME: Final = r"^[a-z][a-z0-9-]{0,31}(?!\n)$"
#: A branch name fleet uses as a base (`base`, `--into`): git's rules, minus anything option-like or exotic.
BRANCH_NAME: Final = r"^(?!.*(?:\.\.|//|@\{|\.lock/|/\.))[A-Za-z0-9_][A-Za-z0-9._/+-]{0,199}(?<![./])(?<!\.lock)(?!\n)$"

# --- Agent states --------------------------------------------------------------------------------

#: What `fleet status` says an agent is doing (`fleet.agents.state.classify` decides it).
#: `unreachable`: a remote agent whose host did not answer in time (`fleet.hosts`): its state is
#: unknown, which is never the same as `stopped`.
AgentState = Literal["stopped", "starting", "idle", "working", "waiting_approval", "limited", "exited",
                     "unreachable"]
#: Every agent state, in the order `fleet status` explains them.
AGENT_STATES: Final[tuple[AgentState, ...]] = (
    "stopped", "starting", "idle", "working", "waiting_approval", "limited", "exited", "unreachable")
#: States of an agent in the middle of a turn: routing calls it busy rather than naming the state.
BUSY_AGENT_STATES: Final[frozenset[AgentState]] = frozenset({"working", "waiting_approval"})
#: States of an agent with no live Codex: routing refuses it as down.
DOWN_AGENT_STATES: Final[frozenset[AgentState]] = frozenset({"stopped", "exited", "unreachable"})

# --- Journal event kinds (the `event` field of `events.jsonl`) -----------------------------------

#: Codex hook name -> the journal kind the hook receiver writes for it (any other hook: `hook`).
#: `fleet.hooks.receiver` keeps its own copy to stay import-free; a test keeps the two equal.
HOOK_EVENT_KINDS: Final[dict[str, str]] = {
    "SessionStart": "session_started",
    "UserPromptSubmit": "turn_started",
    "Stop": "turn_completed",
    "PreToolUse": "tool_started",
    "PostToolUse": "tool_completed",
}
#: Journal events fleet writes itself; everything else in a journal comes from Codex.
FLEET_EVENTS: Final = frozenset({"launched", "ready", "send", "receipt", "not_delivered", "stopped", "request",
                                 "compacted", "resumed"})
#: Codex events that are the agent working (when their turn is not the watchdog's).
WORK_EVENTS: Final = frozenset({"turn_started", "tool_started", "tool_completed", "turn_completed", "turn_notified"})
#: How a turn ended (an open turn's outcome is `running`: `fleet.agents.state.Outcome`).
TurnOutcome = Literal["completed", "failed", "aborted"]
#: Journal events that end a turn, with the outcome each gives (Stop hook; rollout turn ends).
TURN_END_OUTCOME: Final[dict[str, TurnOutcome]] = {
    "turn_completed": "completed", "turn_failed": "failed", "turn_aborted": "aborted"}
#: Journal events that end a turn (the keys of `TURN_END_OUTCOME`).
TURN_END_EVENTS: Final = frozenset(TURN_END_OUTCOME)
#: Journal events that end a turn and carry its last assistant message (Stop hook, notify).
TURN_ENDS_WITH_MESSAGE: Final = frozenset({"turn_completed", "turn_notified"})
#: Journal events that end a turn without a message (an interrupt; a failed turn from the rollout).
TURN_ENDS_WITHOUT_MESSAGE: Final = frozenset({"turn_aborted", "turn_failed"})

# --- Holder ids ----------------------------------------------------------------------------------

#: The watchdog's lease holder (the tick acts under it); assignments hold `assignment_holder(id)`.
WATCHDOG_HOLDER: Final = "watchdog"
#: Who answered an approval when the `[watchdog] approve` policy did (hook or tick).
WATCHDOG_POLICY_HOLDER: Final = "watchdog:policy"
#: First words (before any `:`, any case) of the names fleet itself acts and records as: the
#: watchdog (`watchdog`, `watchdog:policy`), an assignment's own lease (`assignment:<id>`), and the
#: ledger actors of the work layer (`fleet`, `hook`, `dispatch`, `verifier`). A caller on the CLI or
#: MCP may not take one: the watchdog and the work layer treat these holders as their own.
RESERVED_HOLDER_WORDS: Final = frozenset({"watchdog", "assignment", "fleet", "hook", "dispatch", "verifier"})


def assignment_holder(assignment_id: str) -> str:
    """The lease holder an open assignment drives its agent as (`assignment:<id>`)."""
    return f"assignment:{assignment_id}"


# --- Why an assignment failed --------------------------------------------------------------------

#: Stable codes for a failed assignment's reason (in the `failed` event's details as `code`; the
#: reason itself starts with the code): `over_budget`, its tokens passed its budget and no report
#: came within the watchdog's grace (`fleet.watchdog.budget`).
FAIL_OVER_BUDGET: Final = "over_budget"
FAIL_CODES: Final = frozenset({FAIL_OVER_BUDGET})

# --- Token usage ---------------------------------------------------------------------------------

class TokenUsage(TypedDict):
    """Tokens as Codex counts them: `cached_input` is part of `input`, `reasoning` part of `output`."""

    input: int
    cached_input: int
    output: int
    reasoning: int


#: The figures of a `TokenUsage`, in the order every surface shows them.
USAGE_KEYS: Final = ("input", "cached_input", "output", "reasoning")


def add_usage(usages: Iterable[Mapping[str, object]]) -> TokenUsage:
    """The sum of `usages`, figure by figure (a missing or non-integer figure counts 0)."""
    total = dict.fromkeys(USAGE_KEYS, 0)
    for usage in usages:
        for key in USAGE_KEYS:
            value = usage.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                total[key] += value
    return TokenUsage(input=total["input"], cached_input=total["cached_input"], output=total["output"],
                      reasoning=total["reasoning"])

#: The variable read when the config has no `[store] url` (`fleet.config.store`).
STORE_URL_ENV: Final = "FLEET_STORE_URL"
#: Variables that can carry the store's credentials: `STORE_URL_ENV` and libpq's password. An agent's
#: environment never has them (`fleet.agents.codex.launch_command`); a lead's fleet server gets them
#: by name from its Codex, and its own shell commands do not (`fleet.agents.lead`).
STORE_SECRET_ENV: Final = (STORE_URL_ENV, "PGPASSWORD")
