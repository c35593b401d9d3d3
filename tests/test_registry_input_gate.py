"""The registry's gate against inputs that pass a schema but must never reach an operation: numbers
that are not finite (NaN, infinities) and holder names in fleet's own namespace.

Both come from either surface: the CLI's float options and `$FLEET_HOLDER` / `--holder`, and raw MCP
JSON (Python's parser, like the MCP SDK's, reads `NaN` and `Infinity`). The raw MCP test speaks
JSON-RPC over the real `fleet mcp` process's stdio, because the SDK client cannot send a NaN.
"""

from __future__ import annotations

import json
import math
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from conftest import Fleet, sent_in_ledger
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet import ops
from fleet.errors import HolderReserved, InvalidInput, NotFinite
from fleet.leases.rules import HOLDER_RE, is_reserved_holder, validate_caller_holder
from fleet.schemacheck import non_finite
from fleet.service import Service
from fleet.vocab import RESERVED_HOLDER_WORDS

NON_FINITE = (math.nan, math.inf, -math.inf)

# ---- non-finite numbers --------------------------------------------------------------------------

json_leaf = st.none() | st.booleans() | st.integers() | st.text(max_size=5) | st.floats(allow_nan=True,
                                                                                          allow_infinity=True)
json_like = st.recursive(json_leaf, lambda inner: st.lists(inner, max_size=4)
                         | st.dictionaries(st.text(max_size=4), inner, max_size=4), max_leaves=20)


def _has_non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_has_non_finite(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_non_finite(v) for v in value)
    return False


@settings(max_examples=300)
@given(json_like)
def test_non_finite_finds_a_nan_or_infinity_at_any_depth_and_nothing_else(value: Any) -> None:
    found = non_finite(value)
    assert (found is not None) == _has_non_finite(value)
    if found is not None:
        assert not math.isfinite(found[1])


number_ops = [(name, key) for name, op in ops.REGISTRY.items()
              for key, prop in op.input_schema["properties"].items() if prop.get("type") == "number"]


def test_every_number_argument_of_every_operation_is_covered() -> None:
    assert ("assignment_wait", "timeout") in number_ops
    assert len(number_ops) >= 5


@pytest.mark.parametrize(("name", "key"), number_ops)
@pytest.mark.parametrize("bad", NON_FINITE, ids=["nan", "inf", "-inf"])
def test_the_registry_refuses_a_non_finite_number_for_every_number_argument(name: str, key: str,
                                                                            bad: float) -> None:
    op = ops.REGISTRY[name]
    args = _minimal(op) | {key: bad}
    with pytest.raises(NotFinite) as caught:
        op.validate(args)
    assert caught.value.code == "number_not_finite"
    assert caught.value.data["key"] == f"$.{key}"
    assert caught.value.hint


@settings(max_examples=200)
@given(st.sampled_from(number_ops), st.floats(allow_nan=True, allow_infinity=True))
def test_a_number_argument_passes_the_gate_only_when_finite(case: tuple[str, str], value: float) -> None:
    name, key = case
    op = ops.REGISTRY[name]
    args = _minimal(op) | {key: value}
    try:
        op.validate(args)
    except NotFinite:
        assert not math.isfinite(value)
    except InvalidInput:
        assert math.isfinite(value)  # out of range: the schema's own complaint
    else:
        assert math.isfinite(value)


def _minimal(op: ops.Operation) -> dict[str, Any]:
    """Valid values for the operation's required keys."""
    sample = {"agent": "agent-1", "text": "hi", "task": "do it", "assignment": "as-" + "0" * 26,
              "assignments": ["as-" + "0" * 26]}
    return {k: sample[k] for k in op.input_schema["required"]}


def test_the_cli_refuses_nan_and_infinity_options_with_the_same_code(fleet_factory: Any) -> None:
    f: Fleet = fleet_factory(1)
    for args in (("wait", "as-" + "0" * 26, "--timeout", "nan"), ("claim", "agent-1", "--ttl", "inf"),
                 ("claim", "agent-1", "--wait", "-Infinity"), ("send", "agent-1", "hi", "--timeout", "NaN")):
        proc = f.cli(*args, "--json", timeout=20)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        err = json.loads(proc.stdout)["error"]
        assert err["code"] == "number_not_finite", err
        assert err["hint"]


class RawMcp:
    """`fleet mcp` as a real process, spoken to in raw JSON-RPC lines (so a request can hold NaN)."""

    def __init__(self, config: Path, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "fleet", "--config", str(config), "mcp"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True, env={**os.environ, **(env or {})})
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        self.request(0, "initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                       "clientInfo": {"name": "raw", "version": "1"}})
        self.send('{"jsonrpc":"2.0","method":"notifications/initialized"}')

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def request(self, rid: int, method: str, params: dict[str, Any], raw_params: str | None = None,
                timeout: float = 20) -> dict[str, Any]:
        body = raw_params if raw_params is not None else json.dumps(params)
        self.send(f'{{"jsonrpc":"2.0","id":{rid},"method":"{method}","params":{body}}}')
        while True:
            try:
                msg: dict[str, Any] = json.loads(self.lines.get(timeout=timeout))
            except queue.Empty:
                pytest.fail(f"fleet mcp gave no answer to {method} {body} within {timeout}s")
            if msg.get("id") == rid:
                return msg

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


def _tool_error(msg: dict[str, Any]) -> dict[str, Any]:
    result = msg["result"]
    assert result["isError"] is True, msg
    error: dict[str, Any] = json.loads(result["content"][0]["text"])["error"]
    return error


def test_mcp_refuses_a_raw_nan_timeout_at_once_instead_of_blocking(fleet_factory: Any) -> None:
    f: Fleet = fleet_factory(1)
    aid = sent_in_ledger(f, "agent-1", task="never reports")  # open: a wait on it would block
    mcp = RawMcp(f.path)
    try:
        for rid, raw in enumerate(("NaN", "Infinity", "-Infinity"), start=1):
            params = f'{{"name":"assignment_wait","arguments":{{"assignments":["{aid}"],"timeout":{raw}}}}}'
            err = _tool_error(mcp.request(rid, "tools/call", {}, raw_params=params, timeout=15))
            assert err["code"] == "number_not_finite", err
            assert err["key"] == "$.timeout"
        params = '{"name":"agent_claim","arguments":{"agent":"agent-1","ttl":NaN}}'
        assert _tool_error(mcp.request(9, "tools/call", {}, raw_params=params))["code"] == "number_not_finite"
        # the server still answers, and nothing was claimed
        leases = mcp.request(10, "tools/call", {"name": "fleet_leases", "arguments": {}})
        assert leases["result"]["isError"] is False
    finally:
        mcp.close()
    assert f.json("leases")["leases"][0]["holder"] is None


# ---- reserved holders ----------------------------------------------------------------------------

FLEET_OWN = ("watchdog", "watchdog:policy", "assignment:as-01JABCDEFGHJKMNPQRSTVWXYZ0", "fleet", "hook",
             "dispatch", "verifier")


def test_every_holder_fleet_itself_uses_is_reserved() -> None:
    from fleet.agents.approvals import write_answer  # noqa: F401  (its `by` is watchdog:policy)
    from fleet.service.tracking import ACTOR
    from fleet.vocab import WATCHDOG_HOLDER, assignment_holder

    for name in (*FLEET_OWN, WATCHDOG_HOLDER, assignment_holder("as-" + "1" * 26), ACTOR):
        assert is_reserved_holder(name), name
        assert HOLDER_RE.fullmatch(name), name  # still valid where fleet passes it to the lease store


#: Any valid holder, and valid holders built on fleet's own words (any casing, any tail), which
#: a plain regex strategy would almost never produce.
holders = st.from_regex(HOLDER_RE, fullmatch=True) | st.builds(
    lambda word, upper, tail: "".join(c.upper() if u else c for c, u in zip(word, upper, strict=False)) + tail,
    st.sampled_from(sorted(RESERVED_HOLDER_WORDS)), st.lists(st.booleans(), min_size=12, max_size=12),
    st.sampled_from(["", ":", ":x", "s", "-bot", ".1", "@host", ":as-1"]))


@settings(max_examples=400)
@given(holders)
def test_a_caller_holder_is_refused_exactly_when_its_first_word_is_fleets(holder: str) -> None:
    assert HOLDER_RE.fullmatch(holder)
    reserved = holder.split(":", 1)[0].lower() in RESERVED_HOLDER_WORDS
    if reserved:
        with pytest.raises(HolderReserved) as caught:
            validate_caller_holder(holder)
        assert caught.value.code == "holder_reserved"
        assert caught.value.hint
    else:
        assert validate_caller_holder(holder) == holder


@settings(max_examples=200)
@given(st.sampled_from(sorted(RESERVED_HOLDER_WORDS)), st.sampled_from(["", ":", ":x", ":as-1", ":policy"]),
       st.randoms())
def test_any_casing_of_a_reserved_word_is_refused(word: str, tail: str, rnd: Any) -> None:
    cased = "".join(c.upper() if rnd.random() < 0.5 else c for c in word)
    with pytest.raises(HolderReserved):
        validate_caller_holder(cased + tail)


def test_a_lead_and_people_keep_their_holders() -> None:
    from fleet.agents.lead import holder

    for name in (holder("boss"), "cli:alice", "mcp:codex:1a2b3c4d", "alice", "ci:job-42", "watchdogs",
                 "fleetwood", "assignments-bot", "agent:assignment"):
        assert validate_caller_holder(name) == name


@pytest.mark.parametrize("holder", FLEET_OWN)
def test_the_cli_refuses_fleets_own_holders_by_option_and_by_environment(fleet_factory: Any, holder: str) -> None:
    f: Fleet = fleet_factory(1)
    for args, env in ((("claim", "agent-1", "--holder", holder), None),
                      (("release", "agent-1", "--holder", holder, "--force"), None),
                      (("claim", "agent-1"), {"FLEET_HOLDER": holder})):
        proc = f.cli(*args, "--json", env=env, timeout=20)
        assert proc.returncode == 2, (args, env, proc.stdout, proc.stderr)
        assert json.loads(proc.stdout)["error"]["code"] == "holder_reserved"
    assert f.json("leases")["leases"][0]["holder"] is None  # nothing was claimed


def test_mcp_refuses_fleets_own_holders_as_arguments(fleet_factory: Any) -> None:
    f: Fleet = fleet_factory(1)
    mcp = RawMcp(f.path)
    try:
        for rid, holder in enumerate(FLEET_OWN, start=1):
            msg = mcp.request(rid, "tools/call", {"name": "agent_claim",
                                                  "arguments": {"agent": "agent-1", "holder": holder}})
            assert _tool_error(msg)["code"] == "holder_reserved", holder
        ok = mcp.request(50, "tools/call", {"name": "agent_claim", "arguments": {"agent": "agent-1",
                                                                                 "holder": "lead:test"}})
        assert ok["result"]["isError"] is False, ok
    finally:
        mcp.close()


def test_fleets_internal_calls_still_act_under_its_own_holders(fleet_factory: Any) -> None:
    """The lease store (below the surfaces) takes `watchdog` and `assignment:<id>` as before."""
    f: Fleet = fleet_factory(1)
    svc = Service(config_path=str(f.path), surface="cli", holder="cli:test")
    try:
        got = svc.leases.claim("agent-1", "assignment:as-" + "2" * 26, ttl=60)
        assert got["holder"] == "assignment:as-" + "2" * 26
        svc.leases.release("agent-1", "assignment:as-" + "2" * 26)
        assert svc.leases.claim("agent-1", "watchdog", ttl=60)["holder"] == "watchdog"
    finally:
        svc.close()
