"""What Codex's session rollout says about turn ends and rate limits, pure: records in, facts out.

The rollout (`$CODEX_HOME/sessions/.../rollout-*.jsonl`, one JSON record a line) is the only place a
failed turn shows up: no failed turn fires the Stop hook or `notify` (usage limit, HTTP 429 or 500, a
dropped stream), but every turn ends with an `event_msg` `task_complete`, which carries `error` when
the turn failed; an interrupted turn ends with `turn_aborted`. Every `token_count` carries the latest
`rate_limits` snapshot that Codex built from the model server's `x-codex-*` headers (Codex 0.169,
measured: see the notes on failed turns). Reading the file is `codex.read_rollout`'s job.

A turn's token usage is Codex's own per-turn figure: the `turn_token_usage` of the turn's last
`token_usage_record` (Codex writes one per model response, keyed by `turn_id`, running within the
turn). A rollout without those records gets the sum of the `last_token_usage` of every `token_count`
after the turn's `task_started` (one per response, the same numbers); never the session totals.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any, Final, NamedTuple, TypedDict

from fleet.vocab import TokenUsage, TurnOutcome, add_usage

#: `codex_error_info` of a turn that hit the account's usage limit (HTTP 429 `usage_limit_reached`,
#: `usage_not_included`, in-stream `insufficient_quota`). Codex never retries it by itself.
USAGE_LIMIT: Final = "usage_limit_exceeded"


class TurnError(TypedDict):
    """Why a turn failed. `code` is Codex's `codex_error_info` (`usage_limit_exceeded`,
    `internal_server_error`, `other`, or the key of its object form such as
    `response_too_many_failed_attempts`); `resets_at` (epoch seconds) is set for a usage limit when
    the rate-limit snapshot names the exhausted window's reset, else None."""

    code: str
    message: str
    http_status: int | None
    resets_at: float | None


class RateWindow(TypedDict):
    used_percent: float
    window_minutes: int | None
    resets_at: float | None


class RateLimits(TypedDict):
    """Headroom as the model server last reported it: `primary` (e.g. the 5 h window) and
    `secondary` (e.g. the weekly one); a window is None when no header named it."""

    primary: RateWindow | None
    secondary: RateWindow | None


class TurnEnd(NamedTuple):
    """One turn's end as the rollout records it, with the rate-limit snapshot current at that point."""

    turn_id: str
    outcome: TurnOutcome
    at: float | None
    error: TurnError | None = None
    last_message: str | None = None
    rate_limits: RateLimits | None = None
    usage: TokenUsage | None = None


class RolloutFacts(NamedTuple):
    """`usage`: each turn's running token usage so far (ended or not), Codex's figure as above: what
    a budget counts for a turn still open."""

    ends: Mapping[str, TurnEnd]
    rate_limits: RateLimits | None
    usage: Mapping[str, TokenUsage] = MappingProxyType({})


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _window(raw: object) -> RateWindow | None:
    if not isinstance(raw, dict):
        return None
    used = _number(raw.get("used_percent"))
    if used is None:
        return None
    minutes = _number(raw.get("window_minutes"))
    return RateWindow(used_percent=used, window_minutes=int(minutes) if minutes is not None else None,
                      resets_at=_number(raw.get("resets_at")))


def parse_rate_limits(raw: object) -> RateLimits | None:
    """Codex's `rate_limits` object (or an already parsed one) as `RateLimits`; None when it names
    no window. Idempotent: parsing a parsed value gives it back."""
    if not isinstance(raw, dict):
        return None
    primary, secondary = _window(raw.get("primary")), _window(raw.get("secondary"))
    if primary is None and secondary is None:
        return None
    return RateLimits(primary=primary, secondary=secondary)


def exhausted_until(limits: RateLimits | None) -> float | None:
    """When the exhausted windows (used_percent >= 100) reset: the latest of their resets, since all
    must reset before a turn can succeed. None when no window is exhausted or a reset is unknown."""
    if limits is None:
        return None
    windows = [w for w in (limits["primary"], limits["secondary"]) if w is not None and w["used_percent"] >= 100]
    if not windows or any(w["resets_at"] is None for w in windows):
        return None
    return max(float(w["resets_at"] or 0) for w in windows)


def parse_error(raw: object, limits: RateLimits | None) -> TurnError:
    """A `task_complete` `error` object as `TurnError` (a usage limit gets `resets_at` from `limits`)."""
    err = raw if isinstance(raw, dict) else {}
    info = err.get("codex_error_info")
    status: int | None = None
    if isinstance(info, dict) and info:
        code = str(next(iter(info)))
        detail = info[code]
        if isinstance(detail, dict) and isinstance(detail.get("http_status_code"), int):
            status = int(detail["http_status_code"])
    elif isinstance(info, str) and info:
        code = info
    else:
        code = "unknown"
    return TurnError(code=code, message=str(err.get("message") or ""), http_status=status,
                     resets_at=exhausted_until(limits) if code == USAGE_LIMIT else None)


def parse_usage(raw: object) -> TokenUsage | None:
    """Codex's token usage object (`input_tokens`, `cached_input_tokens`, `output_tokens`,
    `reasoning_output_tokens`) as `TokenUsage`; None when it is not one."""
    if not isinstance(raw, dict) or not isinstance(raw.get("input_tokens"), int):
        return None
    return add_usage([{"input": raw.get("input_tokens"), "cached_input": raw.get("cached_input_tokens"),
                       "output": raw.get("output_tokens"), "reasoning": raw.get("reasoning_output_tokens")}])


def _timestamp(record: Mapping[str, Any]) -> float | None:
    raw = record.get("timestamp")
    if not isinstance(raw, str):
        return None
    try:
        return _dt.datetime.fromisoformat(raw).timestamp()
    except ValueError:
        return None


def facts(records: Iterable[Mapping[str, Any]]) -> RolloutFacts:
    """Fold rollout records (oldest first) into turn ends and the latest rate-limit snapshot."""
    ends: dict[str, TurnEnd] = {}
    limits: RateLimits | None = None
    recorded: dict[str, TokenUsage] = {}  # turn -> Codex's running per-turn figure
    summed: dict[str, list[TokenUsage]] = {}  # turn -> each response's `last_token_usage`
    current: str | None = None
    for rec in records:
        payload = rec.get("payload")
        if not isinstance(payload, dict):
            continue
        if rec.get("type") == "token_usage_record":
            usage, turn = parse_usage(payload.get("turn_token_usage")), payload.get("turn_id")
            if usage is not None and isinstance(turn, str) and turn:
                recorded[turn] = usage
            continue
        if rec.get("type") != "event_msg":
            continue
        kind = payload.get("type")
        if kind == "token_count":
            limits = parse_rate_limits(payload.get("rate_limits")) or limits
            info = payload.get("info")
            usage = parse_usage(info.get("last_token_usage")) if isinstance(info, dict) else None
            if usage is not None and current is not None:
                summed.setdefault(current, []).append(usage)
            continue
        turn = payload.get("turn_id")
        if not isinstance(turn, str) or not turn:
            continue
        used = recorded.get(turn) or (add_usage(summed[turn]) if turn in summed else None)
        if kind == "task_started":
            current = turn
        elif kind == "task_complete":
            at = _number(payload.get("completed_at")) or _timestamp(rec)
            if payload.get("error") is not None:
                ends[turn] = TurnEnd(turn, "failed", at, parse_error(payload["error"], limits), None, limits, used)
            else:
                message = payload.get("last_agent_message")
                ends[turn] = TurnEnd(turn, "completed", at, None, message if isinstance(message, str) else None,
                                     limits, used)
        elif kind == "turn_aborted":
            ends[turn] = TurnEnd(turn, "aborted", _timestamp(rec), None, None, limits, used)
    running = {turn: recorded.get(turn) or add_usage(summed.get(turn, [])) for turn in {*recorded, *summed}}
    return RolloutFacts(ends=ends, rate_limits=limits, usage=running)
