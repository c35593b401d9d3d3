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
from fleet.service.assigncreate import _ask_again, _attempt_id, _lost, _prior_attempt


def test_a_lost_answer_is_looked_up_never_passed_on(fleet_factory: Callable[..., Fleet]) -> None:
    f = fleet_factory(1)
    svc = Service(config_path=str(f.path), surface="test")
    lost = HostLost("the channel broke", hint="")
    with pytest.raises(HostLost) as raised:
        _lost(svc, lost, "gpu1", "req-7")
    assert raised.value.data["request_id"] == "req-7"
    assert "--request-id req-7" in raised.value.hint
    remembered = svc.ledger.find_request("routelost", "req-7")  # a retry asks gpu1 again, and no other host
    assert remembered is not None
    assert remembered.result == {"host": "gpu1", "queue": False}
    asked: list[tuple[str, bool]] = []

    def there(host: str, queue: bool) -> dict[str, object]:
        asked.append((host, queue))
        raise HostLost("lost again", hint="")

    with pytest.raises(HostLost):
        _ask_again(svc, "req-7", "gpu1", False, there)
    assert asked == [("gpu1", False)]
    # what gpu1 did before its answer was lost: made the assignment under the attempt's request id
    made, _ = svc.ledger.create(task="work", holder="lead", actor="lead", request_id=_attempt_id("req-7", "host.gpu1"))
    found = _lost(svc, lost, "gpu1", "req-7")
    assert found["assignment"] == made.id
    svc.close()


def test_a_retry_answers_with_what_was_made_not_an_attempt_that_passed_the_work_on(
        fleet_factory: Callable[..., Fleet]) -> None:
    """This host's attempt made a row and failed it (its pick got busy), then host r2 made and sent the
    assignment: a retry with the request id answers with r2's, whichever attempt comes first in order."""
    f = fleet_factory(1)
    svc = Service(config_path=str(f.path), surface="test")
    failed, _ = svc.ledger.create(task="work", holder="lead", actor="lead", request_id=_attempt_id("req-9", "local"))
    svc.ledger.transition(failed.id, "failed", actor="lead", expect="queued", reason="its pick got busy")
    sent, _ = svc.ledger.create(task="work", holder="lead", actor="lead", agent="agent-1",
                                request_id=_attempt_id("req-9", "host.r2"))
    svc.ledger.transition(sent.id, "sent", actor="lead", expect="queued")
    prior = _prior_attempt(svc, "req-9", ["r2"])
    assert prior is not None
    assert prior.id == sent.id
    assert _prior_attempt(svc, "req-10", ["r2"]) is None
    only_failed = _prior_attempt(svc, "req-9", [])  # r2 not asked: the failed attempt is all there is
    assert only_failed is not None
    assert only_failed.id == failed.id
    svc.close()
