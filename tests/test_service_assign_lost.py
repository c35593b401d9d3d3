"""Routing across hosts when a host's answer to "take it" was lost even after the channel's retry: the
host may have made the assignment, so the work is never passed on to another host (which could make
a second one). Found under the attempt's request id, it is the answer; not found, `host_lost` names
the request id a retry must carry."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from conftest import Fleet

from fleet.errors import HostLost
from fleet.service import Service
from fleet.service.assigncreate import _attempt_id, _lost


def test_a_lost_answer_is_looked_up_never_passed_on(fleet_factory: Callable[..., Fleet]) -> None:
    f = fleet_factory(1)
    svc = Service(config_path=str(f.path), surface="test")
    attempt = _attempt_id("req-7", "host.gpu1")
    lost = HostLost("the channel broke", hint="")
    with pytest.raises(HostLost) as raised:
        _lost(svc, lost, "gpu1", "req-7", attempt)
    assert raised.value.data["request_id"] == "req-7"
    assert "--request-id req-7" in raised.value.hint
    # what gpu1 did before its answer was lost: made the assignment under the attempt's request id
    made, _ = svc.ledger.create(task="work", holder="lead", actor="lead", request_id=attempt)
    found = _lost(svc, lost, "gpu1", "req-7", attempt)
    assert found["assignment"] == made.id
    svc.close()
