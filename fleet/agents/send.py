"""Sending a prompt with a receipt: typed into Codex's composer, delivered once Codex records it.

A send is delivered when the agent's journal shows the `turn_started` Codex's hook wrote for exactly
this text after fleet's own `send` event (by journal position, so a stepped clock cannot fake it);
the caller gets a `Receipt` or `not_delivered`, never a silent success. A `request_id` makes a retry
answer with the first receipt instead of typing again. Nothing here checks leases or the operation
lock: the service layer holds both before calling in.
"""

from __future__ import annotations

import os
import time
from typing import Any, Final, TypedDict

from fleet.config import AgentSpec
from fleet.errors import AgentBusy, AgentNotRunning, NotDelivered, RequestIdConflict
from fleet.prompttext import check_text

from . import journal
from .observe import Observer, wait_until
from .screen import EMPTY_COMPOSER, FIRST_RUN_MARKERS, TURN_START_FAILED, composer_text
from .text import DELIVERY_TIMEOUT

#: States in which the composer takes a prompt (after a usage limit, "continue" is how to resume).
SENDABLE: Final = ("idle", "limited")
#: A prompt Codex failed to start a turn for (`TURN_START_FAILED`) reached no model and fired no
#: hook, so it is typed again this many times before the send gives up (the failure seen on 0.169
#: came once in ~90 sends to a fresh workspace-write agent; whether the retry then succeeds on a real
#: Codex is not measured yet: the failure could not be provoked on demand).
TURN_START_RETRIES: Final = 1
#: How long to wait for Codex to put a failed prompt back in the composer, and to clear it again.
COMPOSER_SETTLE: Final = 2.0


class Receipt(TypedDict):
    agent: str
    delivered: bool
    turn_id: str
    session_id: str | None
    request_id: str | None
    chars: int
    sent_at: float
    delivered_at: float
    latency_ms: int
    duplicate: bool


def send(ob: Observer, spec: AgentSpec, text: str, request_id: str | None = None,
         timeout: float = DELIVERY_TIMEOUT, holder: str | None = None) -> Receipt:
    """Type `text` into an idle agent's composer and return the receipt once Codex records it.
    Refuses (and types nothing) when the agent is not sendable, not launched by this fleet, shows a
    screen that needs a person or has text in its composer; a known `request_id` answers with its
    first receipt (`duplicate`) or `request_id_conflict` for another text."""
    check_text(text)
    name = spec.name
    sha = journal.text_sha(text)
    events = ob.events(name)  # read once: the request lookup and the observation share it
    if request_id:
        # kept across compactions for `journal.REQUEST_TTL`; the service also keeps ids in the ledger
        earlier = journal.find_request(events, request_id)
        if earlier is not None:
            if earlier["sha"] is not None and earlier["sha"] != sha:
                raise RequestIdConflict(
                    f"Request id {request_id!r} was already used for a different text to {name!r}; "
                    "nothing was sent.",
                    hint="Use a new request id for a new prompt; reuse an id only to retry the same text.",
                    agent=name, request_id=request_id,
                )
            if earlier["delivery"] is not None:
                return _receipt(ob, name, earlier["delivery"], text, request_id, earlier["sent_at"],
                                duplicate=True)
    pane = ob.tmux.panes().get(name)
    verdict, j = ob.observe(spec, pane, settle=True, events=events)
    if verdict.state in ("stopped", "exited"):
        raise AgentNotRunning(
            f"Agent {name!r} is {verdict.state}; nothing was sent.",
            hint=f"Start it with `fleet up {name}`.", agent=name, state=verdict.state,
        )
    if pane is not None and (j.launched_at is None or (j.pid is not None and pane.pid is not None
                                                       and j.pid != pane.pid)):
        # Not launched by this state dir's journal: started by hand on the fleet's server, or the
        # journal was reset under a live session. Its hooks may write elsewhere: never drive it.
        raise AgentBusy(
            f"Agent {name!r} has a session on tmux server {str(ob.tmux.socket)!r} that this fleet "
            f"({ob.config.state_dir}) did not start (pid {pane.pid}); nothing was sent.",
            hint=f"Stop it (`tmux {ob.tmux.where} kill-session -t ={name}`), then `fleet up {name}`.",
            agent=name, pid=pane.pid, launched_pid=j.pid,
        )
    if verdict.state not in SENDABLE:
        raise AgentBusy(
            f"Agent {name!r} is {verdict.state}; a prompt now would steer or be lost, so nothing was sent.",
            hint="Wait until it is idle (`fleet status`), or `fleet interrupt` it first.",
            agent=name, state=verdict.state,
        )
    screen = ob.tmux.capture(name)
    composer = composer_text(screen)  # the bottom of the screen: history above it quotes anything
    shown = next((m for m in FIRST_RUN_MARKERS if m in screen), None) if composer is None else None
    if shown is not None:
        raise AgentBusy(f"Agent {name!r} shows a screen that needs a person ({shown!r}); nothing was sent.",
                        hint=f"Attach with `fleet attach {name}` and answer it, then retry.", agent=name)
    if composer != EMPTY_COMPOSER:
        raise AgentBusy(
            f"Agent {name!r} has text in its composer (someone may be typing); nothing was sent.",
            hint=f"Attach with `fleet attach {name}` and clear the composer, then retry.", agent=name,
        )
    sent_at = time.time()
    send_id = os.urandom(8).hex()  # the journal position Codex's record must come after
    ob.log(name, "send", request_id=request_id, chars=len(text), text_sha=sha, sent_at=round(sent_at, 3),
           holder=holder, send_id=send_id)
    deadline = time.monotonic() + timeout
    attempt = 0
    while True:
        outcome = _type_and_wait(ob, name, text, send_id, screen, deadline)
        if not isinstance(outcome, str):
            break
        # Codex refused to start the turn: nothing reached the model, no hook fired, and the
        # text is back in the composer. Clear it (a later Enter would send it unasked), then
        # type it again while retries and time are left.
        cleared = _clear_failed_prompt(ob, name)
        ob.log(name, "turn_start_failed", request_id=request_id, text_sha=sha, reason=outcome,
               attempt=attempt + 1, cleared=cleared)
        if attempt >= TURN_START_RETRIES or not cleared or time.monotonic() >= deadline:
            raise NotDelivered(
                f"Codex could not start a turn for the prompt to {name!r}: {outcome}; nothing reached "
                "the model.",
                hint="Retry with the same request_id; if it keeps failing, start Codex by hand with this "
                "agent's home, cwd and sandbox and look at the message (`fleet tail` shows it)."
                + ("" if cleared else " The prompt may still be in the composer: clear it first."),
                agent=name, request_id=request_id, reason=outcome, attempts=attempt + 1,
                composer_cleared=cleared,
            )
        attempt += 1
        screen = ob.tmux.capture(name)
    if outcome is None:
        ob.log(name, "not_delivered", request_id=request_id, text_sha=sha)
        raise NotDelivered(
            f"Codex did not record the prompt to {name!r} within {timeout:.0f} s.",
            hint="Check `fleet tail` for what the agent shows; "
            "retry with the same request_id to avoid a duplicate.",
            agent=name, request_id=request_id,
        )
    found = outcome
    delivery = journal.Delivery(turn_id=found.get("turn_id"), session_id=found.get("session_id"),
                                delivered_at=float(found.get("time", time.time())))
    return _receipt(ob, name, delivery, text, request_id, sent_at, duplicate=False)


def _type_and_wait(ob: Observer, name: str, text: str, send_id: str, screen: str,
                   deadline: float) -> dict[str, Any] | str | None:
    """Paste `text`, press Enter and wait until the monotonic `deadline` for Codex to record it.
    Returns the journal's `turn_started` event, the reason Codex gave for not starting the turn
    (a `TURN_START_FAILED` notice newer than `screen`, the screen before typing), or None."""
    seen = screen.count(TURN_START_FAILED)
    ob.tmux.paste(name, text.replace("\r\n", "\n").replace("\r", "\n"))
    ob.tmux.send_keys(name, "Enter")

    def outcome() -> dict[str, Any] | str | None:
        found = _find_turn(ob, name, text, send_id)
        if found is not None:
            return found
        now = ob.tmux.capture(name)
        if now.count(TURN_START_FAILED) > seen:
            return _find_turn(ob, name, text, send_id) or _start_failure(now)
        return None

    result: dict[str, Any] | str | None = wait_until(outcome, max(0.0, deadline - time.monotonic()))
    return result


def _clear_failed_prompt(ob: Observer, name: str) -> bool:
    """Empty the composer Codex refilled after a failed turn start; True once it shows empty.

    Ctrl-C clears a composer that holds text; on an empty one it would quit Codex, so it is
    pressed only while the composer is seen to hold text."""
    if wait_until(lambda: EMPTY_COMPOSER not in ob.tmux.capture(name), COMPOSER_SETTLE):
        ob.tmux.send_keys(name, "C-c")
    return bool(wait_until(lambda: EMPTY_COMPOSER in ob.tmux.capture(name), COMPOSER_SETTLE))


def _find_turn(ob: Observer, name: str, text: str, send_id: str) -> dict[str, Any] | None:
    """The first turn Codex started with exactly `text` after the `send` event `send_id`, by journal
    position (a clock stepped back cannot hide it). When a compaction dropped that send since, it
    is in the previous generation, and everything appended after the new marker is later still."""
    events = ob.events(name)
    found, anchored = journal.turn_after_send(events, send_id, text)
    if anchored:
        return found
    older = journal.read_previous(ob.agent_dir(name))
    return journal.turn_after_send([*older, *journal.since_compaction(events)], send_id, text)[0]


def _receipt(ob: Observer, name: str, delivery: journal.Delivery, text: str, request_id: str | None,
             sent_at: float, duplicate: bool) -> Receipt:
    delivered_at = float(delivery["delivered_at"])
    receipt = Receipt(
        agent=name, delivered=True, turn_id=str(delivery["turn_id"]), session_id=delivery["session_id"],
        request_id=request_id, chars=len(text), sent_at=sent_at, delivered_at=delivered_at,
        latency_ms=max(0, int((delivered_at - sent_at) * 1000)), duplicate=duplicate,
    )
    if not duplicate:
        ob.log(name, "receipt", request_id=request_id, turn_id=receipt["turn_id"],
               session_id=receipt["session_id"], sent_at=sent_at, delivered_at=delivered_at)
    return receipt


def _start_failure(screen: str) -> str:
    """Codex's reason for the newest failed turn start on `screen` (its last such notice)."""
    line = [ln for ln in screen.splitlines() if TURN_START_FAILED in ln][-1]
    reason = line.split(TURN_START_FAILED, 1)[1].strip().lstrip(":").strip()
    return reason or "no reason shown"
