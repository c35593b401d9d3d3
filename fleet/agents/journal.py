"""The agent's journal, `<state_dir>/agents/<name>/events.jsonl`: append, read, find a request, compact.

Two kinds of writer share it: fleet (`launched`, `ready`, `send`, `receipt`, `turn_failed`, `stopped`,
...) and Codex's hooks and notify through `fleet.hooks.receiver` (`turn_started`, `turn_completed`, tools). Each
append is one `write` of one line on an `O_APPEND` descriptor while holding a shared flock on
`events.lock`; compaction holds that lock exclusively, so no append can land in a file that is being
replaced. Readers take no lock: the file is replaced by an atomic rename, so they see the old or the
new one, both complete.

Bounded size: when an append leaves the file over `JOURNAL_MAX` bytes, that writer compacts it. The
old file is kept as `events.jsonl.1` (one generation: for people, and for a send waiting across the
compaction) and `events.jsonl` is replaced by
what still decides anything: the latest launch with its `ready` and `stopped`, the last turn's start
and end, the open turn's last tool event, one `request` record per request id sent in the last
`REQUEST_TTL` (the newest within `REQUEST_BYTES`, each where its send was, or first if it was sent
before the latest launch), and a `compacted` marker carrying the transcript path and the latest rate
limits and `usage_carried`, the token usage of the session's turns it dropped (so the session's
totals, `session_usage`, stay exact). Deliveries are matched by position in the journal, never by time (`find_request`).
`read_journal` (state) and `find_request` (receipts) answer the same before and after
(property-tested); a request older than `REQUEST_TTL` is forgotten.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final, TypedDict

from fleet.fsutil import FILE_MODE, open_lock_file, read_jsonl_tail, write_atomic
from fleet.vocab import TURN_END_EVENTS, USAGE_KEYS, TokenUsage, add_usage

from .text import normalize

#: Compaction threshold. The reader reads the whole file each status, so this bounds status cost too.
JOURNAL_MAX: Final = 256 * 1024
#: How much a reader reads: the whole file, with room for appends that race a compaction.
READ_MAX: Final = 4 * JOURNAL_MAX
#: How long a request id is remembered across compactions (the ledger will keep them for longer).
REQUEST_TTL: Final = 24 * 3600.0
#: Request records surviving a compaction take at most this many bytes (newest first, ~200 bytes
#: each, so ~300 of them), which keeps a compacted journal well under its bound.
REQUEST_BYTES = JOURNAL_MAX // 4
#: The hook's facts about an assignment (a refused out-of-scope patch, an asked-for report): the
#: ledger copies them at its next reconcile, which may come after two compactions, so a compaction
#: keeps the newest of them, as long as request ids (~300 bytes each: ~20 KiB at most).
HOOK_FACTS: Final = ("tool_denied", "report_asked")
MAX_HOOK_FACTS: Final = 64

EVENTS: Final = "events.jsonl"
#: The generation before the last compaction.
PREVIOUS: Final = f"{EVENTS}.1"
LOCK: Final = "events.lock"


class Delivery(TypedDict):
    turn_id: str | None
    session_id: str | None
    delivered_at: float


class RequestRecord(TypedDict):
    """What the journal knows about one request id: the text's digest, when it was sent, and the
    turn Codex started with it (from the receipt, or a matching prompt that Codex took late)."""

    request_id: str
    sha: str | None
    sent_at: float
    delivery: Delivery | None


def journal_file(state_dir: Path, agent: str) -> Path:
    """Where agent `agent`'s journal lives under a fleet's state dir (the one place that spells it)."""
    return state_dir / "agents" / agent / EVENTS


def text_sha(text: str) -> str:
    """Digest of a prompt as Codex records it (newlines normalized, ends stripped)."""
    import hashlib  # noqa: PLC0415 (~5 ms at start-up, for sends only)

    return hashlib.sha256(normalize(text).encode()).hexdigest()[:32]


def _time(ev: dict[str, Any]) -> float:
    value = ev.get("time")
    return float(value) if isinstance(value, int | float) else 0.0


def _delivery(raw: object) -> Delivery | None:
    if not isinstance(raw, dict):
        return None
    at = raw.get("delivered_at")
    return Delivery(turn_id=raw.get("turn_id"), session_id=raw.get("session_id"),
                    delivered_at=float(at) if isinstance(at, int | float) else 0.0)


def find_request(events: list[dict[str, Any]], request_id: str) -> RequestRecord | None:
    """The first send with `request_id` and its delivery, from events oldest first; pure.

    A delivery is the first `receipt` for the id, or the first `turn_started` with the same text,
    that comes after the send in the journal's order. Times are never compared: each writer stamps
    its own wall clock, and a clock stepped back would put Codex's record of the prompt "before" the
    send and lose it, so a retry would type the prompt twice."""
    rec: RequestRecord | None = None
    for ev in events:
        kind = ev.get("event")
        if rec is None:
            if kind in ("send", "request") and ev.get("request_id") == request_id:
                sent = ev.get("sent_at", ev.get("time"))
                rec = RequestRecord(request_id=request_id, sha=ev.get("text_sha"),
                                    sent_at=float(sent) if isinstance(sent, int | float) else 0.0,
                                    delivery=_delivery(ev.get("delivery")))
            continue
        if rec["delivery"] is not None:
            break
        if kind == "receipt" and ev.get("request_id") == request_id:
            at = ev.get("delivered_at", ev.get("time"))
            rec["delivery"] = Delivery(turn_id=ev.get("turn_id"), session_id=ev.get("session_id"),
                                       delivered_at=float(at) if isinstance(at, int | float) else _time(ev))
        elif kind == "turn_started" and rec["sha"] and text_sha(str(ev.get("prompt", ""))) == rec["sha"]:
            rec["delivery"] = Delivery(turn_id=ev.get("turn_id"), session_id=ev.get("session_id"),
                                       delivered_at=_time(ev))
    return rec


def turn_after_send(events: list[dict[str, Any]], send_id: str, text: str) -> tuple[dict[str, Any] | None, bool]:
    """The first `turn_started` with exactly `text` after the `send` event carrying `send_id`, and
    whether that send is in `events` at all (a compaction since may have dropped it); pure. Matched
    by position in the journal, never by time (see `find_request`)."""
    want = normalize(text)
    anchored = False
    for ev in events:
        if not anchored:
            anchored = ev.get("event") == "send" and ev.get("send_id") == send_id
        elif ev.get("event") == "turn_started" and normalize(str(ev.get("prompt", ""))) == want:
            return ev, True
    return None, anchored


def turn_usages(events: list[dict[str, Any]]) -> dict[str, tuple[float | None, TokenUsage]]:
    """Each turn's token usage (turn id -> time of its latest record, usage): the latest `usage` a
    journal event carries for the turn, since a turn's Stop hooks record its running figure."""
    out: dict[str, tuple[float | None, TokenUsage]] = {}
    for ev in events:
        usage, turn = ev.get("usage"), ev.get("turn_id")
        if isinstance(usage, dict) and isinstance(turn, str) and turn:
            out[turn] = (ev.get("time"), add_usage([usage]))
    return out


def session_usage(events: list[dict[str, Any]], skip: str | None = None) -> TokenUsage:
    """The token usage of `events` (one session: since its launch): every turn's latest figure and
    what compactions carried; `skip` leaves one turn out."""
    carried = [ev["usage_carried"] for ev in events if ev.get("event") == "compacted"
               and isinstance(ev.get("usage_carried"), dict)]
    return add_usage([*(u for t, (_, u) in turn_usages(events).items() if t != skip), *carried])


def since_compaction(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events appended after the newest `compacted` marker (all of them if there is none)."""
    last = max((i for i, ev in enumerate(events) if ev.get("event") == "compacted"), default=-1)
    return events[last + 1:]


def compact(events: list[dict[str, Any]], now: float, request_bytes: int = REQUEST_BYTES) -> list[dict[str, Any]]:
    """The events that keep `read_journal` and `find_request` (for the ids it keeps: younger than
    `REQUEST_TTL`, newest first within `request_bytes`) answering exactly as on `events`, and the
    newest `MAX_HOOK_FACTS` hook facts younger than `REQUEST_TTL`, in their order; pure."""
    if not events:
        return []
    first: dict[str, int] = {}  # request id -> position of its first send: the order a match relies on
    for i, ev in enumerate(events):
        if ev.get("event") in ("send", "request") and isinstance(ev.get("request_id"), str):
            first.setdefault(ev["request_id"], i)
    found: list[tuple[int, dict[str, Any]]] = []
    for rid, at in first.items():
        rec = find_request(events, rid)
        if rec is not None and now - rec["sent_at"] <= REQUEST_TTL:
            found.append((at, {"time": rec["sent_at"], "event": "request", "request_id": rid, "text_sha": rec["sha"],
                               "sent_at": rec["sent_at"], "delivery": rec["delivery"]}))
    budget, newest = request_bytes, []
    for at, request in reversed(found):  # newest by journal position, not by anyone's clock
        budget -= len(json.dumps(request)) + 1
        if budget < 0:
            break
        newest.append((at, request))

    start = max((i for i, ev in enumerate(events) if ev.get("event") == "launched"), default=0)
    # A request sent before the latest launch goes first (every kept event is later than it); one sent
    # since stays where its send was, so an undelivered one is matched only by what came after it.
    requests = [r for at, r in reversed(newest) if at < start]
    inline = {at - start: r for at, r in newest if at >= start}
    tail = events[start:]
    facts = [i for i, ev in enumerate(events) if ev.get("event") in HOOK_FACTS and ev.get("assignment")
             and now - _time(ev) <= REQUEST_TTL][-MAX_HOOK_FACTS:]
    earlier = [events[i] for i in facts if i < start]  # state reading ignores them: any place will do
    keep: set[int] = {i - start for i in facts if i >= start}
    if tail[0].get("event") == "launched":
        keep.add(0)
    for kind in ("ready", "stopped"):
        indices = [i for i, ev in enumerate(tail) if ev.get("event") == kind]
        keep.update(indices[-1:])
    starts = [i for i, ev in enumerate(tail) if ev.get("event") == "turn_started" and ev.get("turn_id")]
    transcript = None
    for ev in tail:
        if ev.get("transcript_path"):
            transcript = ev["transcript_path"]
    if starts:
        begun = starts[-1]
        turn = tail[begun].get("turn_id")
        keep.add(begun)
        end = next((i for i in range(begun + 1, len(tail))
                    if tail[i].get("event") in TURN_END_EVENTS and tail[i].get("turn_id") == turn), None)
        if end is not None:
            keep.add(end)
        else:
            tools = [i for i in range(begun + 1, len(tail))
                     if tail[i].get("event") in ("tool_started", "tool_completed") and tail[i].get("turn_id") == turn]
            keep.update(tools[-1:])
    marker: dict[str, Any] = {"time": events[-1].get("time"), "event": "compacted", "at": round(now, 3),
                              "dropped": len(events) - len(keep) - len(earlier)}
    if transcript:
        marker["transcript_path"] = transcript
    _carry_usage(tail, starts[-1] if starts else None, keep, marker)
    for ev in reversed(events):
        if ev.get("rate_limits"):
            marker["rate_limits"] = ev["rate_limits"]
            marker["rate_limits_at"] = ev.get("rate_limits_at", ev.get("time"))
            break
    kept = [(i, 1, tail[i]) for i in keep] + [(i, 0, r) for i, r in inline.items()]
    return [*requests, *earlier, *(ev for _, _, ev in sorted(kept, key=lambda k: k[:2])), marker]


def _carry_usage(tail: list[dict[str, Any]], begun: int | None, keep: set[int], marker: dict[str, Any]) -> None:
    """Keep the last turn's latest usage record (later ones replace it) and put in `marker` what the
    dropped events counted towards `session_usage`, so that it answers the same."""
    turn = tail[begun].get("turn_id") if begun is not None else None
    if begun is not None:
        used = [i for i in range(begun, len(tail)) if "usage" in tail[i] and tail[i].get("turn_id") == turn]
        keep.update(used[-1:])
    # in journal order: a turn's latest record is the one that counts
    whole, kept = session_usage(tail, turn), session_usage([tail[i] for i in sorted(keep)], turn)
    carried = {k: whole[k] - kept[k] for k in USAGE_KEYS}
    if any(carried.values()):
        marker["usage_carried"] = carried


# ---- files ----------------------------------------------------------------------------------------

@contextlib.contextmanager
def _flock(agent_dir: Path, mode: int) -> Iterator[None]:
    fd = open_lock_file(agent_dir / LOCK)
    try:
        fcntl.flock(fd, mode)
        yield
    finally:
        os.close(fd)  # closing drops the flock


def append(agent_dir: Path, record: dict[str, Any]) -> None:
    """Append one event; compact the journal when this append took it past `JOURNAL_MAX`."""
    line = (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
    with _flock(agent_dir, fcntl.LOCK_SH):
        fd = os.open(agent_dir / EVENTS, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC,
                     FILE_MODE)
        try:
            os.write(fd, line)
            size = os.fstat(fd).st_size
        finally:
            os.close(fd)
    if size > JOURNAL_MAX:
        compact_file(agent_dir)


def read(agent_dir: Path) -> list[dict[str, Any]]:
    """Every event in the journal, oldest first (torn or foreign lines skipped)."""
    return read_jsonl_tail(agent_dir / EVENTS, READ_MAX)


def read_previous(agent_dir: Path) -> list[dict[str, Any]]:
    """The generation before the last compaction (`events.jsonl.1`), oldest first; empty if none."""
    return read_jsonl_tail(agent_dir / PREVIOUS, READ_MAX)


def compact_file(agent_dir: Path, now: float | None = None, limit: int | None = None) -> bool:
    """Compact the journal if it is over `limit` bytes (default `JOURNAL_MAX`; checked again under
    the exclusive lock, so concurrent writers compact once); the old file is kept as `events.jsonl.1`."""
    limit = JOURNAL_MAX if limit is None else limit
    path = agent_dir / EVENTS
    with _flock(agent_dir, fcntl.LOCK_EX):
        try:
            size = os.lstat(path).st_size
        except FileNotFoundError:
            return False
        if size <= limit:
            return False
        events = read_jsonl_tail(path, size + 1)
        kept = compact(events, time.time() if now is None else now, REQUEST_BYTES)
        data = b"".join((json.dumps(ev, ensure_ascii=False, separators=(",", ":")) + "\n").encode() for ev in kept)
        previous = agent_dir / PREVIOUS
        link = agent_dir / f".{PREVIOUS}.{os.getpid()}.tmp"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(link)
        os.link(path, link)  # the old generation stays reachable; `events.jsonl` never goes missing
        os.replace(link, previous)
        write_atomic(path, data)
    return True
