"""Routing across hosts (`fleet.work.hostrank`): hosts are tried best pick first, by the rank key each
host's own routing gives its pick, ties in the order given; hosts without a pick are never tried; a
rank key a host sends is read strictly."""

from __future__ import annotations

import itertools
import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleet.work.hostrank import HostPick, key_from_json, key_to_json, order_hosts, standing
from fleet.work.routing import NEAR_LIMIT_PERCENT, AgentFacts, Need, RankKey, rank_key, route

names = st.from_regex(r"[a-z][a-z0-9-]{0,31}", fullmatch=True)
keys: st.SearchStrategy[RankKey] = st.tuples(
    st.booleans(), st.integers(0, 5), st.booleans(),
    st.sampled_from([0.0, 1.0, 1_700_000_000.0, 1_700_000_500.5]), names)
picks = st.lists(st.tuples(st.none() | keys), max_size=8).map(
    lambda got: [HostPick(None if i == 0 else f"h{i}", k) for i, (k,) in enumerate(got)])


def worker(name: str, **kw: Any) -> AgentFacts:
    return AgentFacts(name=name, role="worker", **{"state": "idle", **kw})


def test_the_routes_key_is_its_picks_rank_key() -> None:
    agents = [worker("a", open_assignments=1), worker("b", last_assigned_at=5.0), worker("c", state="working")]
    got = route(agents, Need())
    assert got.agent == "b"
    assert got.key == rank_key(agents[1]) == (False, 0, True, 5.0, "b")
    assert route([worker("c", state="working")], Need()).key is None


def test_the_host_whose_pick_ranks_better_is_tried_first() -> None:
    busy_here = rank_key(worker("ann", open_assignments=1))
    near_limit = rank_key(worker("bo", used_percent=NEAR_LIMIT_PERCENT))
    free = rank_key(worker("zed"))
    order = order_hosts([HostPick(None, busy_here), HostPick("r1", near_limit), HostPick("r2", free),
                         HostPick("r3", None)])
    assert [p.host for p in order] == ["r2", None, "r1"]  # r3 has nobody: never tried


def test_picks_that_tie_keep_this_host_first_then_config_order_whatever_the_names() -> None:
    order = order_hosts([HostPick(None, (False, 0, False, 0.0, "zoe")), HostPick("r1", (False, 0, False, 0.0, "amy")),
                         HostPick("r2", (False, 0, False, 0.0, "abe"))])
    assert [p.host for p in order] == [None, "r1", "r2"]


def test_never_assigned_beats_assigned_long_ago_across_hosts() -> None:
    order = order_hosts([HostPick(None, rank_key(worker("a", last_assigned_at=1.0))),
                         HostPick("r1", rank_key(worker("b")))])
    assert [p.host for p in order] == ["r1", None]


@given(picks)
def test_the_chosen_hosts_pick_is_never_worse_than_another_hosts(given_picks: list[HostPick]) -> None:
    order = order_hosts(given_picks)
    for first in order[:1]:
        assert first.key is not None
        assert all(standing(first.key) <= standing(p.key) for p in given_picks if p.key is not None)


@given(picks)
def test_the_order_is_total_and_stable(given_picks: list[HostPick]) -> None:
    order = order_hosts(given_picks)
    assert order == order_hosts(list(given_picks))  # deterministic
    position = {p.host: i for i, p in enumerate(given_picks)}
    for a, b in itertools.pairwise(order):
        assert a.key is not None
        assert b.key is not None
        assert standing(a.key) <= standing(b.key)
        if standing(a.key) == standing(b.key):
            assert position[a.host] < position[b.host]  # a tie keeps the given order


@given(picks)
def test_a_host_without_a_pick_is_never_tried(given_picks: list[HostPick]) -> None:
    order = order_hosts(given_picks)
    assert sorted(map(str, (p.host for p in order))) == sorted(
        str(p.host) for p in given_picks if p.key is not None)
    assert all(p.key is not None for p in order)


@given(keys)
def test_a_key_survives_the_wire(key: RankKey) -> None:
    assert key_from_json(json.loads(json.dumps(key_to_json(key)))) == key


@pytest.mark.parametrize("value", [
    None, "key", [], [False, 0, False, 0.0], [False, 0, False, 0.0, "a", 1], {"near": False},
    [0, 0, False, 0.0, "a"], [False, True, False, 0.0, "a"], [False, -1, False, 0.0, "a"],
    [False, 1.5, False, 0.0, "a"], [False, 2**40, False, 0.0, "a"], [False, 0, "no", 0.0, "a"],
    [False, 0, False, math.nan, "a"], [False, 0, False, 10**400, "a"], [False, 0, False, math.inf, "a"],
    [False, 0, False, True, "a"],
    [False, 0, False, "0", "a"], [False, 0, False, 0.0, "A"], [False, 0, False, 0.0, "a\n"],
    [False, 0, False, 0.0, "a" * 40], [False, 0, False, 0.0, 7],
])
def test_anything_but_a_rank_key_is_none(value: Any) -> None:
    assert key_from_json(value) is None


def test_a_whole_number_time_is_a_time() -> None:
    assert key_from_json([True, 2, True, 17, "a-1"]) == (True, 2, True, 17.0, "a-1")
