"""Routing across hosts: in which order to ask hosts to take an assignment, from each host's own pick.
Pure: answers in, an order out.

Each host routes among its own agents (`fleet.work.routing.route`) and answers with its pick's rank
key (`rank_key`), or with none when none of its agents can take the work now. Hosts with a pick are
tried best pick first, their keys compared without the agent's name (a name breaks ties within one
host only): hosts whose picks tie keep the order they are given in (this host first, then config
order). A host without a pick, or that gave no answer, is not tried at all.

"Least recently assigned" compares the times each host's fleet wrote into the shared ledger when it
sent an assignment, so hosts' clocks far apart skew that one criterion (and no other).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from fleet.vocab import AGENT_NAME

from .routing import RankKey

#: The largest count a host may report (a ledger holds far fewer open assignments).
_MAX_COUNT: Final = 2**31
_NAME: Final = re.compile(AGENT_NAME)


@dataclass(frozen=True)
class HostPick:
    """One host's routing answer: `host` None for this host; `key` its pick's rank key, None when no
    agent there can take the work now (or the host did not answer)."""

    host: str | None
    key: RankKey | None


def standing(key: RankKey) -> tuple[bool, int, bool, float]:
    """The part of a rank key that compares agents on different hosts: all of it but the name."""
    return key[0], key[1], key[2], key[3]


def order_hosts(picks: Sequence[HostPick]) -> list[HostPick]:
    """The hosts to try, best pick first (see the module docstring); those without a pick left out.
    Deterministic: ties keep the order of `picks`."""
    ranked = sorted((standing(p.key), i) for i, p in enumerate(picks) if p.key is not None)
    return [picks[i] for _, i in ranked]


def key_to_json(key: RankKey) -> list[Any]:
    return list(key)


def key_from_json(value: Any) -> RankKey | None:
    """A rank key as a host sent it (`key_to_json`), or None when `value` is not one: a list of a
    bool, a count, a bool, a finite time and an agent name. The host is trusted no further."""
    if not isinstance(value, list) or len(value) != 5:
        return None
    near, count, before, last, name = value
    if not isinstance(near, bool) or not isinstance(before, bool):
        return None
    if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= _MAX_COUNT:
        return None
    try:
        if isinstance(last, bool) or not isinstance(last, int | float) or not math.isfinite(last):
            return None
        last = float(last)
    except OverflowError:  # an int too large for a float (JSON has no bound): not a time
        return None
    if not isinstance(name, str) or _NAME.match(name) is None:
        return None
    return near, count, before, last, name
