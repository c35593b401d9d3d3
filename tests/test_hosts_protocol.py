"""`fleet remote-session`'s protocol without ssh: the session loop on pipes, the line parser, the hello."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleet import __version__
from fleet.cli.remote import serve
from fleet.errors import FleetError, HostProtocolError, HostVersionMismatch, InvalidInput
from fleet.hosts.protocol import MAX_REQUEST, PROTOCOL, answer, check_hello, encode, parse_answer, parse_request


def session(config: Path | None, *lines: bytes) -> list[dict[str, Any]]:
    out = io.BytesIO()
    assert serve(io.BytesIO(b"".join(lines)), out, str(config) if config else None) == 0
    return [json.loads(line) for line in out.getvalue().splitlines()]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    for d in ("codex-home", "work"):
        (tmp_path / d).mkdir()
    path = tmp_path / "fleet.toml"
    path.write_text(f'[fleet]\nstate_dir = "{tmp_path / "state"}"\n'
                    f'[agents.noor]\nhome = "{tmp_path / "codex-home"}"\ncwd = "{tmp_path / "work"}"\n')
    return path


def test_the_hello_comes_first_with_the_version_and_protocol(config: Path) -> None:
    [hello] = session(config)
    assert hello == {"fleet": "remote-session", "version": __version__, "protocol": PROTOCOL}


def test_requests_run_through_the_registry_and_answer_by_id(config: Path) -> None:
    _, *answers = session(config, encode({"id": "a1", "op": "fleet_status", "args": {"agents": ["noor"]}}),
                              encode({"id": 7, "op": "ping"}),
                              encode({"id": "a3", "op": "agent_tail", "args": {"agent": "noor", "lines": "5"}}),
                              encode({"id": "a4", "op": "fleet_status", "args": {"agents": ["ghost"]}}))
    by_id = {a["id"]: a for a in answers}
    assert set(by_id) == {"a1", 7, "a3", "a4"}
    assert by_id["a1"]["ok"] is True
    assert [(e["name"], e["state"]) for e in by_id["a1"]["result"]["agents"]] == [("noor", "stopped")]
    assert by_id[7]["result"] == {"version": __version__, "agents": ["noor"]}
    assert (by_id["a3"]["ok"], by_id["a3"]["error"]["code"], by_id["a3"]["error"]["key"]) == (
        False, "invalid_input", "$.lines")  # the registry's own validation: "5" is not 5
    assert by_id["a4"]["error"]["code"] == "unknown_agent"


def test_garbage_is_answered_with_an_error_and_the_session_goes_on(config: Path) -> None:
    _, *answers = session(config, b"not json\n", b"[1, 2]\n", b'{"op": "ping"}\n', b"\xff\xfe\n", b"\n",
                          b'{"id": "x", "op": "ping", "args": [1]}\n', b'{"id": "y", "op": "Bad Op!"}\n',
                          b'{"id": "z", "op": "ping", "extra": 1}\n', b"x" * (MAX_REQUEST + 10) + b"\n",
                          b'{"id": "last", "op": "no_such_op"}\n', encode({"id": "ok", "op": "ping"}))
    refused, ran = answers[:8], {a["id"]: a for a in answers[8:]}  # the ones read run after (any order)
    assert [a["id"] for a in refused] == [None, None, None, None, "x", "y", "z", None]  # the blank line: nothing
    assert all(not a["ok"] and a["error"]["code"] == "invalid_input" for a in refused)
    assert ran["last"]["error"]["code"] == "invalid_input"
    assert ran["ok"] == {"id": "ok", "ok": True, "result": {"version": __version__, "agents": ["noor"]}}


def test_a_session_without_a_usable_config_answers_each_request_with_the_error(tmp_path: Path) -> None:
    _, a = session(tmp_path / "missing.toml", encode({"id": 1, "op": "fleet_status"}))
    assert (a["id"], a["ok"], a["error"]["code"]) == (1, False, "config_not_found")


def test_the_hello_is_checked_for_the_version_and_the_protocol() -> None:
    assert check_hello(b"Welcome to the host!\n", "1.0", "h") is None
    assert check_hello(encode({"fleet": "remote-session", "version": "1.0", "protocol": PROTOCOL}), "1.0", "h")
    for other in ({"version": "0.9", "protocol": PROTOCOL}, {"version": "1.0", "protocol": PROTOCOL + 1}):
        with pytest.raises(HostVersionMismatch) as caught:
            check_hello(encode({"fleet": "remote-session", **other}), "1.0", "gpu1")
        assert caught.value.code == "host_version_mismatch"
        assert "gpu1" in caught.value.hint


def test_an_answer_that_is_not_one_is_a_protocol_error() -> None:
    for line in (b"nope\n", b"[]\n", b'{"id": 1}\n', b'{"id": 1, "ok": false, "error": {}}\n',
                 b'{"id": 1, "ok": true}\n', b'{"id": {"a": 1}, "ok": true, "result": {}}\n'):
        with pytest.raises(HostProtocolError):
            parse_answer(line)


ids = st.one_of(st.integers(0, 2**53 - 1), st.from_regex(r"\A[A-Za-z0-9._:-]{1,128}\Z"))
json_values = st.recursive(st.none() | st.booleans() | st.integers(-(2**60), 2**60) | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                         max_size=4), max_leaves=10)


@given(st.binary(max_size=300))
def test_any_bytes_parse_to_a_request_or_an_invalid_input(line: bytes) -> None:
    try:
        req = parse_request(line)
    except InvalidInput:
        return
    assert isinstance(req.args, dict)
    assert isinstance(req.op, str)


@given(ids, st.from_regex(r"\A[a-z][a-z_]{0,63}\Z"), st.dictionaries(st.text(max_size=10), json_values, max_size=5))
def test_a_request_survives_its_encoding(rid: str | int, op: str, args: dict[str, Any]) -> None:
    assert parse_request(encode({"id": rid, "op": op, "args": args})) == (rid, op, args)


@given(ids, st.dictionaries(st.text(max_size=10), json_values, max_size=5), st.booleans())
def test_an_answer_survives_its_encoding(rid: str | int, body: dict[str, Any], ok: bool) -> None:
    line = answer(rid, body) if ok else answer(rid, error=FleetError("m", hint="h", **body))
    got = parse_answer(line)
    assert (got.id, got.ok) == (rid, ok)
    assert got.body == body if ok else got.body["code"] == "fleet_error"
    assert line.count(b"\n") == 1
