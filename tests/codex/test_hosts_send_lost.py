"""A send to a remote agent whose ssh channel is killed mid-send (tests/sshhosts.py: a real sshd; the
agent runs real Codex against the scripted mock model on its "host"): the channel is opened again and
the send asked again with its request id, and the agent gets the prompt once, one turn, whichever of
the two remote sessions gets to type it."""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable
from pathlib import Path

from conftest import read_audit, wait_until
from mockmodel import MockServer
from mocksteps import Step
from offlinecodex import codex_offline_args
from sshhosts import RemoteHost
from test_hosts_ssh import _closed_channels, _in_thread, _open_by_others, local_config, remote, sshd  # noqa: F401

from fleet import ops
from fleet.service import Service

PROMPT = "COUNT-THE-FILES once, please."


def test_a_send_whose_channel_dies_mid_send_types_the_prompt_once(
        remote: Callable[..., RemoteHost], tmp_path: Path, codex_bin: str, mock_model: MockServer,  # noqa: F811
        ) -> None:
    r1 = remote("r1", ["zed"], codex=codex_bin)
    offline = json.dumps(codex_offline_args(mock_model.url))
    r1.config.write_text(r1.config.read_text() + f"\n[defaults]\nargs = {offline}\n")
    mock_model.model.script(Step(text="Counted."))
    r1.fleet("up", "zed")
    svc = Service(config_path=str(local_config(tmp_path, [r1], {"zed": "r1"})), holder="lead-3")
    try:
        channel = svc.hosts.channel("r1")
        channel.request("ping", {}, timeout=30)
        first = channel.pid
        assert first is not None
        op_lock = r1.state_dir / "agents" / "zed" / "op.lock"
        fd = os.open(op_lock, os.O_RDWR)
        fcntl.flock(fd, fcntl.LOCK_EX)  # the remote send waits for the agent's operation lock
        try:
            t, out = _in_thread(lambda: ops.invoke(svc, "agent_send", {"agent": "zed", "text": PROMPT,
                                                                       "request_id": "count-1"}))
            wait_until(lambda: _open_by_others(op_lock))
            os.kill(first, 9)  # the channel dies with the send in flight there
            wait_until(lambda: channel.pid not in (None, first) or "error" in out, timeout=20)
        finally:
            os.close(fd)  # both sessions may now go on: one types, the other finds its receipt
        t.join(90)
        assert "error" not in out, out.get("error")
        receipt = out["result"]
        assert receipt["turn_id"]
        assert channel.pid not in (None, first)  # answered on the new channel
        sends = [r for r in read_audit(r1.state_dir) if r["event"] == "agent_send"]
        assert len(sends) == 2, sends  # asked there twice (a session each), typed once
        wait_until(lambda: json.loads(r1.fleet("status", "zed", "--json").stdout)["agents"][0]["state"] == "idle",
                   timeout=60)
        prompts = [p for p in mock_model.model.user_prompts() if "COUNT-THE-FILES" in p]
        assert len(prompts) == 1, prompts  # one turn: the retry never typed it again
        again = ops.invoke(svc, "agent_send", {"agent": "zed", "text": PROMPT, "request_id": "count-1"})
        assert (again["turn_id"], again["duplicate"]) == (receipt["turn_id"], True)
    finally:
        svc.close()
        r1.fleet("down", "zed", check=False)
