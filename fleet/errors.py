"""The one error hierarchy: every expected failure is a `FleetError` with a stable `code`.

Each surface translates these exactly once (CLI: one line on stderr and an exit status; MCP: a tool
result with `isError` and the structured error). Anything that is not a `FleetError` is a bug and is
reported as `internal_error` without taking a server down.
"""

from __future__ import annotations

from typing import Any, ClassVar, Final

#: Exit statuses of the CLI. 3 is reserved for lease conflicts so scripts can retry on it alone.
EXIT_ERROR: Final = 1
EXIT_USAGE: Final = 2
EXIT_LEASE: Final = 3
EXIT_ENVIRONMENT: Final = 4


class FleetError(Exception):
    """An expected failure with a stable code, a full-sentence message and a hint for the next step.

    `data` carries machine-readable details (holder, expires_in, ...) that go out with the error.
    """

    code: ClassVar[str] = "fleet_error"
    exit_status: ClassVar[int] = EXIT_ERROR
    retryable: ClassVar[bool] = False

    def __init__(self, message: str, *, hint: str = "", **data: Any) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.data = data

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message, "hint": self.hint}
        if self.retryable:
            out["retryable"] = True
        out.update(self.data)
        return out


class InvalidInput(FleetError, ValueError):
    code = "invalid_input"
    exit_status = EXIT_USAGE


def invalid_value(what: str, raw: str, kind: str, why: str, *, hint: str, limit: int) -> InvalidInput:
    """`what` (a field) given `raw` is not a valid `kind` because `why`; `raw` shown up to `limit`
    characters (the parsers of durations and token counts)."""
    shown = raw if len(raw) <= limit else raw[:limit] + "..."
    return InvalidInput(f"The {what} {shown!r} is not a valid {kind}: {why}.", hint=hint, field=what, value=shown,
                        why=why)


class NotFinite(InvalidInput):
    """A NaN or an infinity where a number goes: every bound compares false against NaN, so a schema
    would let it through and a timeout of `min(nan, 50)` would never end."""

    code = "number_not_finite"


class HolderReserved(InvalidInput):
    """A caller named itself as one of fleet's own holders (`watchdog`, `assignment:<id>`, ...)."""

    code = "holder_reserved"


class ConfigError(FleetError):
    code = "config_invalid"
    exit_status = EXIT_USAGE


class ConfigNotFound(ConfigError):
    code = "config_not_found"


class ConfigUntrusted(ConfigError):
    """A `./fleet.toml` found in the current directory that the user never trusted (`fleet trust`),
    or that changed since: a cloned repository must not choose what fleet runs."""

    code = "config_untrusted"


class UnknownAgent(FleetError, LookupError):
    code = "unknown_agent"
    exit_status = EXIT_USAGE


class EnvironmentFault(FleetError):
    """The machine lacks something fleet needs (tmux, codex, a writable state dir)."""

    code = "environment"
    exit_status = EXIT_ENVIRONMENT


class TmuxMissing(EnvironmentFault):
    code = "tmux_missing"


class TmuxUnavailable(EnvironmentFault):
    """tmux is installed but the fleet's server cannot be used (hung, socket unusable, a command
    failed): agent states are unknown, which is never the same as "stopped"."""

    code = "tmux_unavailable"
    retryable = True


class CodexMissing(EnvironmentFault):
    code = "codex_missing"


class StateDirError(EnvironmentFault):
    code = "state_dir_unusable"


class ControlPlaneExposed(FleetError):
    """fleet's own files (state dir, a Codex home, its install, the config) lie where an agent
    that is not full-access can write: that agent could forge what fleet trusts."""

    code = "control_plane_exposed"
    exit_status = EXIT_USAGE


class AgentNotRunning(FleetError):
    code = "agent_not_running"


class AgentBusy(FleetError):
    code = "agent_busy"
    retryable = True


class StartFailed(FleetError):
    code = "start_failed"


class HooksUntrusted(FleetError):
    """The agent's Codex home has hooks its owner never trusted: Codex would stop at "Hooks need
    review" (fleet trusts only its own handlers, never the user's on their behalf)."""

    code = "hooks_untrusted"


class NotDelivered(FleetError):
    code = "not_delivered"
    retryable = True


class TextTooLong(InvalidInput):
    code = "text_too_long"


class RequestIdConflict(InvalidInput):
    """A request id reused for a different text: the retry is not the same request."""

    code = "request_id_conflict"


class LeaseHeld(FleetError):
    code = "lease_held"
    exit_status = EXIT_LEASE
    retryable = True


class LeaseLost(FleetError):
    code = "lease_lost"
    exit_status = EXIT_LEASE


class NotLeaseHolder(FleetError):
    code = "not_holder"
    exit_status = EXIT_LEASE


class LeaseCorrupt(FleetError):
    code = "lease_corrupt"


class Timeout(FleetError, TimeoutError):
    code = "timeout"
    retryable = True


class StoreTimeout(Timeout):
    """The shared store held a row lock or ran a statement past its bound (a peer is wedged): the
    transaction was rolled back whole, as for `store_unavailable`; same code as any timeout."""


class InternalError(FleetError):
    code = "internal_error"


# -- work: assignments, the ledger, routing ------------------------------------------------------

class AssignmentNotFound(FleetError, LookupError):
    code = "assignment_not_found"


class InvalidTransition(FleetError):
    """The assignment lifecycle does not allow this move (e.g. out of an end state)."""

    code = "invalid_transition"


class StateConflict(FleetError):
    """A compare-and-set lost: the assignment is no longer in the state the caller expected."""

    code = "state_conflict"
    retryable = True


class LedgerBusy(FleetError):
    code = "ledger_busy"
    retryable = True


class LedgerError(StateDirError):
    """The ledger file is unusable: corrupt, a symlink, from a newer fleet, or not writable."""

    code = "ledger_unusable"


class NoAgentAvailable(FleetError):
    code = "no_agent_available"
    retryable = True


class SkillNotFound(FleetError):
    code = "skill_not_found"


class WorkNotMovable(FleetError):
    """A parked agent's assignment cannot go to another agent safely (`on_limit = "reassign"`): the
    new attempt would build on changes fleet cannot check. It stays with its agent."""

    code = "work_not_movable"


# --- fleet install --------------------------------------------------------------------------


class PluginBundleMissing(EnvironmentFault):
    """The plugin files are not beside the package (a broken install or a wheel without its package data)."""

    code = "plugin_bundle_missing"


class CodexHomeMissing(EnvironmentFault):
    """Codex refuses a `CODEX_HOME` that does not exist; so does fleet, rather than invent one."""

    code = "codex_home_missing"


class PluginCommandFailed(EnvironmentFault):
    """A `codex plugin ...` command failed, timed out, printed no JSON, or did not take effect."""

    code = "codex_plugin_failed"


class InstallHomeRefused(InvalidInput):
    """Over MCP, `fleet_install` writes only into the caller's own Codex home or one the fleet's config
    names: a model cannot have fleet write a plugin into an arbitrary directory."""

    code = "install_home_refused"


# --- launch: what fleet trusts ------------------------------------------------------------------


class ProjectConfigExposed(FleetError):
    """The agent's cwd has a `.codex/` folder that another agent can write. fleet trusts the cwd, so
    Codex would load that folder's config (MCP servers run outside the sandbox): it refuses instead."""

    code = "project_config_exposed"


# --- git worktrees and merges ---------------------------------------------------------------------


class RepoInvalid(ConfigError):
    """A `repo` that git cannot read as a repository with a work tree, or a base branch it lacks."""

    code = "repo_invalid"


class WorktreePlacement(ConfigError):
    """An agent's worktree would lie inside the repository's own work tree (or hold it)."""

    code = "worktree_placement"


class WorktreeUnusable(FleetError):
    """An agent's worktree exists but fleet can neither reuse nor repair it without risking work."""

    code = "worktree_unusable"


class WorktreeLocked(WorktreeUnusable):
    """git reports the worktree locked (`git worktree lock`): someone asked that it be left alone."""

    code = "worktree_locked"


class WorktreeForeign(WorktreeUnusable):
    """The agent's worktree path holds something else: a worktree of another repository, or files."""

    code = "worktree_foreign"


class WorktreeDirty(FleetError):
    """The worktree has uncommitted or untracked files that are not the assignment's: fleet neither
    stashes nor discards them. `files` names them."""

    code = "worktree_dirty"


class WorktreeOffBranch(FleetError):
    """The worktree is not on the assignment's branch, so fleet will not commit its files to it."""

    code = "worktree_off_branch"


class WorkChangedSinceVerified(FleetError):
    """What fleet was about to commit is not what verification saw: a file changed after the snapshot
    (a check or a process the agent left running wrote it), so nothing was committed. `files` names them."""

    code = "work_changed_since_verified"


class BranchMissing(FleetError, LookupError):
    """An assignment's branch (`fleet/<id>`) does not exist (pruned, or never prepared)."""

    code = "branch_missing"


class MergeNotVerified(FleetError):
    """Only verified work is merged."""

    code = "merge_not_verified"


class MergeConflict(FleetError):
    """The branches do not merge cleanly; `files` and `assignments` say where. Nothing changed."""

    code = "merge_conflict"


class MergeRaced(FleetError):
    """The base branch moved while fleet merged (twice): nothing changed; merge again."""

    code = "merge_raced"
    retryable = True


class MergeBusy(FleetError):
    """Another merge into the same repository holds its lock."""

    code = "merge_busy"
    retryable = True


class BaseCheckedOutDirty(FleetError):
    """The base branch is checked out in a work tree with uncommitted changes (or files a merge
    would overwrite): fleet would have to touch them to move the branch, so it does not merge."""

    code = "base_checked_out_dirty"


class UnmergedWork(FleetError):
    """A prune would delete work that is not merged into the base (or is uncommitted)."""

    code = "unmerged_work"


class GitFailed(EnvironmentFault):
    """git failed where fleet expected it to work (missing, timed out, a corrupt repository)."""

    code = "git_failed"


class ConfigExists(FleetError):
    """`fleet init` never overwrites a file: the user's config may hold edits nothing else has."""

    code = "config_exists"


class ConfirmationRequired(InvalidInput):
    """Asked to write without `--yes` where nobody can answer the question (no terminal)."""

    code = "confirmation_required"


class StoreUnavailable(EnvironmentFault):
    """The shared store (PostgreSQL, `[store] url`) cannot be reached, or the connection broke in
    the middle of a transaction. The transaction either committed whole or not at all: nothing is
    half written, and the operation can be retried once the database answers again."""

    code = "store_unavailable"
    retryable = True
    #: Set by the store when the failure hit a connection that had been idle (the server may have
    #: restarted since) before anything could have landed: safe to run again on a fresh connection.
    stale_connection: bool = False


class StoreNotConfigured(ConfigError):
    """This fleet keeps its state in the shared store (its state dir says so), but this process was
    started without the store's URL: it would otherwise read and write a second, empty set of leases
    and assignments of its own, unseen by the rest of the fleet."""

    code = "store_not_configured"


class StoreSchemaMismatch(EnvironmentFault):
    """The shared store's schema is missing (never initialised) or newer than this fleet knows."""

    code = "store_schema"
class AgentRemote(FleetError):
    """The agent runs on another host (`[agents.x] host`) and this command only acts on this one's."""

    code = "agent_remote"
    exit_status = EXIT_USAGE


class HostError(FleetError):
    """A remote host (`[hosts.NAME]`) could not be used."""

    code = "host_error"


class HostUnreachable(HostError):
    """ssh could not reach the host, or it did not answer within the bound."""

    code = "host_unreachable"
    retryable = True


class HostLost(HostError):
    """The channel to a host broke after a mutating request was sent and before its answer came: it
    may have run there. It is not run again unless its request id makes a retry safe."""

    code = "host_lost"


class HostVersionMismatch(HostError):
    """The remote fleet is another version or speaks another protocol: the host is refused."""

    code = "host_version_mismatch"
    exit_status = EXIT_ENVIRONMENT


class HostProtocolError(HostError):
    """The remote sent something that is not the remote-session protocol."""

    code = "host_protocol"
