"""The remote-session protocol: JSON lines, one request or answer a line, each bounded.

The session (`fleet remote-session`, on the remote) first writes a hello naming fleet's version and the
protocol's; then each request line `{"id": ID, "op": NAME, "args": {...}}` gets one answer line,
`{"id": ID, "ok": true, "result": {...}}` or `{"id": ID, "ok": false, "error": FleetError.to_dict()}`,
in whatever order they finish. `op` is a registry operation (`fleet.ops`) or `ping`, which the session
answers itself. A line the session cannot read gets an answer with `"id": null` (or the id when it could
read that much); nothing a client sends ends the session but the end of its input.

Pure: no I/O here, so the parsing is tested on its own (and with hypothesis).
"""

from __future__ import annotations

import json
import re
from typing import Any, Final, NamedTuple, TypeGuard

from fleet.errors import FleetError, HostProtocolError, HostVersionMismatch, InvalidInput

#: The protocol's version: a client and a session that differ refuse each other.
PROTOCOL: Final = 1
#: The longest request line a session reads (bytes, newline included): the largest operation input
#: (a task of 16,000 characters, its paths and checks) fits many times over.
MAX_REQUEST: Final = 1024 * 1024
#: The longest answer line a client reads: a status of 100 agents is far below it.
MAX_ANSWER: Final = 16 * 1024 * 1024
#: The operation a session answers itself: its config's agents (a cheap round trip for `fleet hosts`).
PING: Final = "ping"
#: A request id: a short printable string or a non-negative integer.
_ID: Final = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_OP: Final = re.compile(r"[a-z][a-z_]{0,63}")


class Request(NamedTuple):
    id: str | int
    op: str
    args: dict[str, Any]


class Answer(NamedTuple):
    id: str | int | None
    ok: bool
    body: dict[str, Any]  # the result, or the error's dict


def encode(obj: dict[str, Any]) -> bytes:
    """One JSON line (ASCII, so no byte of it is a newline but the last)."""
    return json.dumps(obj, ensure_ascii=True, separators=(",", ":"), allow_nan=False).encode() + b"\n"


def hello(version: str) -> dict[str, Any]:
    return {"fleet": "remote-session", "version": version, "protocol": PROTOCOL}


def _valid_id(value: Any) -> TypeGuard[str | int]:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return 0 <= value < 2**53
    return isinstance(value, str) and _ID.fullmatch(value) is not None


def _bad(message: str, **data: Any) -> InvalidInput:
    return InvalidInput(f"remote-session: {message}.", hint="Send one JSON object a line: "
                        '{"id": ..., "op": ..., "args": {...}}.', **data)


def parse_request(line: bytes) -> Request:
    """The request on `line`; raises InvalidInput (with `id` in its data when that much was readable)."""
    if len(line) > MAX_REQUEST:
        raise _bad(f"a request line of more than {MAX_REQUEST} bytes")
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError):
        raise _bad("not a JSON line") from None
    if not isinstance(obj, dict):
        raise _bad("a request is a JSON object")
    rid = obj.get("id")
    if not _valid_id(rid):
        raise _bad("the request has no valid id (a string of 1-128 of A-Z a-z 0-9 . _ : -, or a whole number)")
    op, args = obj.get("op"), obj.get("args", {})
    if set(obj) - {"id", "op", "args"}:
        raise _bad(f"unknown key(s) {sorted(set(obj) - {'id', 'op', 'args'})}", id=rid)
    if not isinstance(op, str) or not _OP.fullmatch(op):
        raise _bad("the request has no valid op", id=rid)
    if not isinstance(args, dict):
        raise _bad("args must be a JSON object", id=rid)
    return Request(rid, op, args)


def answer(rid: str | int | None, result: dict[str, Any] | None = None, error: FleetError | None = None) -> bytes:
    if error is not None:
        return encode({"id": rid, "ok": False, "error": error.to_dict()})
    return encode({"id": rid, "ok": True, "result": result if result is not None else {}})


def parse_answer(line: bytes) -> Answer:
    """An answer line from a session; raises HostProtocolError for anything else."""
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError):
        raise HostProtocolError("The remote sent a line that is not JSON.", hint=_SESSION_HINT) from None
    if not isinstance(obj, dict) or not isinstance(obj.get("ok"), bool) or not (
            obj.get("id") is None or _valid_id(obj.get("id"))):
        raise HostProtocolError("The remote sent a line that is not a remote-session answer.", hint=_SESSION_HINT)
    body = obj.get("result") if obj["ok"] else obj.get("error")
    if not isinstance(body, dict) or (not obj["ok"] and not isinstance(body.get("code"), str)):
        raise HostProtocolError("The remote sent an answer without its result or error.", hint=_SESSION_HINT)
    return Answer(obj.get("id"), obj["ok"], body)


_SESSION_HINT: Final = "Check that the host's `fleet` setting names fleet itself (`fleet remote-session` must run)."


def check_hello(line: bytes, version: str, host: str) -> dict[str, Any] | None:
    """The hello on `line`, checked: None when the line is not a hello at all (a login banner, say);
    HostVersionMismatch when it is another fleet version or protocol."""
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if not isinstance(obj, dict) or obj.get("fleet") != "remote-session":
        return None
    theirs, proto = obj.get("version"), obj.get("protocol")
    if theirs != version or proto != PROTOCOL:
        raise HostVersionMismatch(
            f"Host {host!r} runs fleet {str(theirs)[:40]} (protocol {str(proto)[:10]}); this is fleet {version} "
            f"(protocol {PROTOCOL}).",
            hint=f"Install fleet {version} on {host} (or this fleet's version there), then retry.",
            host=host, remote_version=str(theirs)[:40], version=version)
    return obj
