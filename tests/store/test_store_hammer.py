"""Two "hosts" (separate state dirs, separate processes) hammer the same agents' leases in one
PostgreSQL database: no two holds of one agent ever overlap, and each agent's tokens strictly grow
in the order the holds happened. Hold times come from CLOCK_MONOTONIC, shared by every process."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import textwrap
from pathlib import Path

from fleet.config.store import StoreSettings

WORKER = textwrap.dedent("""
    import json, random, sys, time
    from fleet.config.store import StoreSettings
    from fleet.leases.pg import PgLeaseStore
    from fleet.store.db import Database

    url, namespace, state_dir, holder, journal, cycles = sys.argv[1:7]
    store = PgLeaseStore(Database(StoreSettings(url=url, namespace=namespace)), state_dir, surface="test")
    rng = random.Random(holder)
    with open(journal, "w") as out:
        for _ in range(int(cycles)):
            agent = rng.choice(["a1", "a2"])
            got = store.claim(agent, holder, ttl=30, wait=30)
            granted = time.monotonic()
            time.sleep(rng.uniform(0, 0.002))
            released = time.monotonic()
            store.release(agent, holder, token=got["token"])
            out.write(json.dumps({"agent": agent, "holder": holder, "token": got["token"],
                                  "granted": granted, "released": released}) + "\\n")
""")


def test_two_hosts_sharing_the_store_never_hold_one_agent_at_once(pg_settings: StoreSettings,
                                                                   tmp_path: Path) -> None:
    procs = []
    journals = []
    for host in ("host-a", "host-b"):
        for n in (1, 2):
            journal = tmp_path / f"{host}-{n}.jsonl"
            journals.append(journal)
            procs.append(subprocess.Popen([sys.executable, "-c", WORKER, pg_settings.url, pg_settings.namespace,
                                           str(tmp_path / host), f"{host}:w{n}", str(journal), "150"]))
    for proc in procs:
        assert proc.wait(timeout=110) == 0
    holds = [json.loads(line) for j in journals for line in j.read_text().splitlines()]
    assert len(holds) == 600
    for agent in ("a1", "a2"):
        mine = sorted((h for h in holds if h["agent"] == agent), key=lambda h: h["granted"])
        overlaps = [(a, b) for a, b in itertools.pairwise(mine) if b["granted"] < a["released"]]
        assert overlaps == []
        tokens = [h["token"] for h in mine]
        assert tokens == sorted(set(tokens))
    assert (tmp_path / "host-a" / "audit.jsonl").exists()
    assert (tmp_path / "host-b" / "audit.jsonl").exists()
