"""Leases through the real CLI: exit status 3 for conflicts, fencing of stale tokens, repair."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
from conftest import Fleet


def error_of(f: Fleet, *args: str, status: int) -> dict[str, object]:
    proc = f.cli(*args, "--json")
    assert proc.returncode == status, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    error: dict[str, object] = json.loads(proc.stdout)["error"]
    return error


def test_claim_renew_and_refuse_with_retry_data(fleet_factory: Callable[..., Fleet]) -> None:
    f = fleet_factory(1)
    first = f.json("claim", "agent-1", "--holder", "alice", "--ttl", "60")
    assert {"agent", "holder", "token", "acquired_at", "expires_at", "ttl", "status"} <= set(first)
    assert (first["status"], first["holder"], first["ttl"]) == ("claimed", "alice", 60)
    renewed = f.json("claim", "agent-1", "--holder", "alice", "--ttl", "120")
    assert (renewed["status"], renewed["token"], renewed["ttl"]) == ("renewed", first["token"], 120)
    error = error_of(f, "claim", "agent-1", "--holder", "bob", status=3)
    assert error["code"] == "lease_held"
    assert error["holder"] == "alice"
    assert error["token"] == first["token"]
    assert 0 < float(error["expires_in"]) <= 120  # type: ignore[arg-type]
    assert float(error["retry_after"]) > 0  # type: ignore[arg-type]
    assert error["retryable"] is True


def test_holder_defaults_to_the_environment_then_the_user(fleet_factory: Callable[..., Fleet]) -> None:
    f = fleet_factory(1)
    proc = f.cli("claim", "agent-1", "--json", env={"FLEET_HOLDER": "ci-bot"})
    assert json.loads(proc.stdout)["holder"] == "ci-bot"
    f.json("release", "agent-1", "--holder", "ci-bot")
    assert f.json("claim", "agent-1")["holder"].startswith("cli:")


def test_mutating_commands_respect_someone_elses_lease(fleet_factory: Callable[..., Fleet]) -> None:
    f = fleet_factory(1)
    f.json("claim", "agent-1", "--holder", "alice")
    for args in (("send", "agent-1", "hi"), ("interrupt", "agent-1"), ("down", "agent-1"), ("up", "agent-1")):
        error = error_of(f, *args, "--holder", "bob", status=3)
        assert error["code"] == "lease_held", args
    assert f.tmux("list-sessions").returncode != 0  # the refused `up` started nothing


def test_a_stale_token_is_fenced_after_a_takeover(fleet_factory: Callable[..., Fleet]) -> None:
    f = fleet_factory(1)
    old = f.json("claim", "agent-1", "--holder", "alice", "--ttl", "1")
    time.sleep(1.1)  # let the 1 s lease expire: the condition under test is expiry itself
    new = f.json("claim", "agent-1", "--holder", "bob")
    assert new["token"] > old["token"]
    for args in (("send", "agent-1", "late work"), ("interrupt", "agent-1"), ("down", "agent-1")):
        error = error_of(f, *args, "--holder", "alice", "--token", str(old["token"]), status=3)
        assert error["code"] == "lease_lost", args
    # even the right name with the old token is fenced
    error = error_of(f, "send", "agent-1", "x", "--holder", "bob", "--token", str(old["token"]), status=3)
    assert error["code"] == "lease_lost"
    takeovers = [r for r in f.audit() if r["event"] == "lease.takeover"]
    assert [(r["holder"], r["token"]) for r in takeovers] == [("bob", new["token"])]


def test_release_by_a_non_holder_is_refused_and_force_is_audited(fleet_factory: Callable[..., Fleet]) -> None:
    f = fleet_factory(1)
    f.json("claim", "agent-1", "--holder", "alice")
    assert error_of(f, "release", "agent-1", "--holder", "bob", status=3)["code"] == "not_holder"
    forced = f.json("release", "agent-1", "--holder", "bob", "--force")
    assert forced["released"] is True
    assert forced["forced"] is True
    force = [r for r in f.audit() if r["event"] == "lease.force_release"]
    assert force
    assert force[-1]["holder"] == "bob"
    leases = f.json("leases")["leases"]
    assert leases == [{**leases[0], "agent": "agent-1", "state": "free"}]


def test_status_shows_each_agents_lease(fleet_factory: Callable[..., Fleet]) -> None:
    f = fleet_factory(2)
    f.json("claim", "agent-2", "--holder", "lead")
    agents = {a["name"]: a for a in f.json("status")["agents"]}
    assert agents["agent-1"]["lease"]["state"] == "free"
    assert agents["agent-2"]["lease"]["state"] == "held"
    assert agents["agent-2"]["lease"]["holder"] == "lead"
    assert "lead#" in f.cli("status").stdout


@pytest.mark.parametrize(
    "args",
    [
        ("claim", "agent-1", "--ttl", "0"),
        ("claim", "agent-1", "--ttl", "86401"),
        ("claim", "agent-1", "--wait", "-1"),
        ("claim", "agent-1", "--wait", "601"),
        ("claim", "agent-1", "--holder", "has space"),
        ("claim", "agent-1", "--holder", "x" * 65),
        ("claim", "ghost"),
        ("send", "agent-1", "hi", "--token", "0"),
    ],
)
def test_bad_lease_input_changes_nothing_on_disk(fleet_factory: Callable[..., Fleet], args: tuple[str, ...]) -> None:
    f = fleet_factory(1)
    proc = f.cli(*args, "--json")
    assert proc.returncode == 2
    assert json.loads(proc.stdout)["error"]["code"] in ("invalid_input", "unknown_agent")
    assert not (f.state_dir / "leases").exists() or not any((f.state_dir / "leases").glob("*.json"))


def test_a_non_integer_token_is_a_usage_error(fleet_factory: Callable[..., Fleet]) -> None:
    f = fleet_factory(1)
    proc = f.cli("send", "agent-1", "hi", "--token", "abc")
    assert proc.returncode == 2
    assert "token" in proc.stderr


def test_a_corrupt_lease_fails_closed_until_repaired(fleet_factory: Callable[..., Fleet]) -> None:
    f = fleet_factory(1)
    first = f.json("claim", "agent-1", "--holder", "alice")
    f.json("release", "agent-1", "--holder", "alice")
    record = f.state_dir / "leases" / "agent-1.json"
    record.write_text('{"agent": "agent-1", "tok')
    error = error_of(f, "claim", "agent-1", "--holder", "bob", status=1)
    assert error["code"] == "lease_corrupt"
    assert "fleet lease-repair agent-1" in str(error["hint"])
    assert record.read_text() == '{"agent": "agent-1", "tok'  # untouched
    assert f.json("status")["agents"][0]["lease"]["state"] == "corrupt"
    assert f.json("lease-repair", "agent-1")["agent"] == "agent-1"
    assert list(record.parent.glob("agent-1.json.corrupt-*"))
    again = f.json("claim", "agent-1", "--holder", "bob")
    assert again["token"] > first["token"]
