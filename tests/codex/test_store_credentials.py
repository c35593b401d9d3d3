"""The shared store's credentials and real Codex agents, with the URL only in fleet's environment.

The fleet's tmux server is started with fleet's environment, so without care every agent's Codex,
and every command its model runs, inherits `$FLEET_STORE_URL` (password included) and `$PGPASSWORD`:
Codex's default shell policy drops only names with KEY, SECRET or TOKEN in them. A worker must see
neither. A lead's fleet server needs them (else it would quietly keep its own embedded store, a
second brain): it gets them by name from its Codex (`env_vars`), and the lead's own shell commands,
whose model reads workers' reports, still see neither.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from conftest import Fleet, wait_until
from mockmodel import MockModel, MockServer
from mockrequests import tool_outputs
from mocksteps import Step

from codex.test_agents_lead import lead_fleet

SECRET = "s3cret-canary"
PGPASSWORD = "pgpass-canary"
PROBE = 'echo "URL=[${FLEET_STORE_URL-unset}] PW=[${PGPASSWORD-unset}]"'


@pytest.fixture
def store_env(pg_cluster: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """The test cluster's URL with a password in it (its trust auth ignores it), in fleet's environment
    only, under a namespace of this test's own."""
    monkeypatch.setenv("FLEET_STORE_URL", pg_cluster.url(password=SECRET))
    monkeypatch.setenv("PGPASSWORD", PGPASSWORD)
    return f"n{os.urandom(4).hex()}"


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


def _descendants(pid: int) -> list[int]:
    """Every process under `pid`: a thread's children are listed under that thread (Codex spawns from many)."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            out += [int(child), *_descendants(int(child))]
    return out


def test_a_workers_codex_and_commands_never_see_the_stores_credentials(
        fleet_factory: Any, mock_model: MockServer, store_env: str) -> None:
    f: Fleet = fleet_factory(1, model=mock_model, extra=f'[store]\nnamespace = "{store_env}"\n')
    assert f.json("up")["agents"][0]["state"] == "idle"
    store = next(c for c in f.json("doctor")["checks"] if c["name"].startswith("store"))
    assert store["ok"] is True, store  # fleet itself reaches the store through the variable
    mock_model.model.script(Step(tool=("exec_command", {"cmd": PROBE})), Step(text="done"))
    f.json("send", "agent-1", "probe the environment")
    wait_until(lambda: (f.status("agent-1")["last_turn"] or {}).get("outcome") == "completed", 60)
    out = str(tool_outputs(mock_model.model.requests)["exec_command"])
    assert "URL=[unset] PW=[unset]" in out, out
    codex_pid = int(f.status("agent-1")["pid"])
    env = _environ(codex_pid)
    assert "FLEET_STORE_URL" not in env
    assert "PGPASSWORD" not in env
    assert not any(SECRET in v or PGPASSWORD in v for v in env.values())


def test_a_leads_fleet_server_uses_the_shared_store_and_its_shell_never_sees_the_credentials(
        tmp_path: Path, codex_bin: str, model_catalog: Path, store_env: str) -> None:
    model = MockModel(default_text="Idle.", retry_unsupported=True)
    conv = model.converse("LEAD-STORE", Step(search=("fleet", 50)),
                          Step(tool=("agent_claim", {"agent": "agent-1", "ttl": 600}), namespace="mcp__fleet"),
                          Step(tool=("exec_command", {"cmd": PROBE})),
                          Step(text="Claimed."))
    catalog = ("-c", f"model_catalog_json={json.dumps(str(model_catalog))}")
    with MockServer(model) as server:
        fleet = lead_fleet(tmp_path, codex_bin, server, catalog, extra=f'[store]\nnamespace = "{store_env}"\n')
        try:
            assert fleet.json("up", "boss")["agents"][0]["state"] == "idle"
            fleet.json("send", "boss", "LEAD-STORE: take agent-1.")

            def done() -> bool:
                last = fleet.status("boss").get("last_turn") or {}
                return last.get("outcome") == "completed" and last.get("last_message") == "Claimed."

            wait_until(done, timeout=90, interval=0.2)
            boss = int(fleet.status("boss")["pid"])
            servers = [p for p in _descendants(boss)
                       if b"\0mcp" in Path(f"/proc/{p}/cmdline").read_bytes() and
                       b"fleet" in Path(f"/proc/{p}/cmdline").read_bytes()]
            assert servers, "the lead's fleet server is not running"
            for pid in servers:
                assert _environ(pid).get("FLEET_STORE_URL") == os.environ["FLEET_STORE_URL"]
                assert SECRET not in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            assert SECRET not in Path(f"/proc/{boss}/cmdline").read_bytes().decode(errors="replace")
        finally:
            fleet.cli("down")
    outputs = {name: out if isinstance(out, str) else json.dumps(out)
               for name, out in tool_outputs(conv.requests).items()}
    assert '"agent:boss"' in outputs["agent_claim"], outputs["agent_claim"]
    assert "URL=[unset] PW=[unset]" in outputs["exec_command"], outputs["exec_command"]
    # the claim is in the shared store: a fresh fleet process (this test's environment) sees it there
    [lease] = [x for x in fleet.json("leases")["leases"] if x["agent"] == "agent-1"]
    assert (lease["state"], lease["holder"]) == ("held", "agent:boss")
    assert not (fleet.state_dir / "leases" / "agent-1.json").exists()
