"""`fleet store init`: versioned migrations, idempotent, safe from two hosts at once; a store whose
schema is missing or newer than this fleet's is refused with `store_schema` and a hint."""

from __future__ import annotations

import itertools
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from pgcluster import PgCluster

from fleet.config.store import StoreSettings
from fleet.errors import StoreSchemaMismatch
from fleet.leases.pg import PgLeaseStore
from fleet.store.admin import init_schema, schema_status
from fleet.store.db import Database
from fleet.store.schema import MIGRATIONS, SCHEMA_VERSION

_databases = itertools.count(1)


@pytest.fixture
def fresh(pg_cluster: PgCluster) -> StoreSettings:
    """A database of this test's own, with no fleet schema."""
    name = f"fresh_{next(_databases)}"
    pg_cluster.psql(f"CREATE DATABASE {name}", database="postgres")
    return StoreSettings(url=pg_cluster.url(name), namespace="ns", connect_timeout=2)


def test_a_store_without_schema_is_refused_until_init_which_is_idempotent(fresh: StoreSettings,
                                                                          tmp_path: Path) -> None:
    admin = Database(fresh, check_schema=False)
    status = schema_status(admin)
    assert status["reachable"] is True
    assert status["version"] is None
    assert status["current"] is False
    db = Database(fresh)
    store = PgLeaseStore(db, tmp_path)
    with pytest.raises(StoreSchemaMismatch) as missing:
        store.claim("a1", "alice")
    assert "fleet store init" in missing.value.hint
    first = init_schema(admin)
    assert first["before"] is None
    assert first["applied"] == [f"{v}:{name}" for v, name, _ in MIGRATIONS]
    assert first["applied"][:2] == ["1:leases", "2:ledger"]
    again = init_schema(admin)
    assert again["before"] == SCHEMA_VERSION
    assert again["applied"] == []
    assert schema_status(admin)["current"] is True
    assert store.claim("a1", "alice")["token"] == 1  # the next call reconnects and finds the schema
    db.close()
    admin.close()


def test_two_hosts_initialising_at_once_apply_each_migration_once(fresh: StoreSettings) -> None:
    results: list[Any] = []

    def init() -> None:
        db = Database(fresh, check_schema=False)
        try:
            results.append(init_schema(db))
        finally:
            db.close()

    threads = [threading.Thread(target=init) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(len(r["applied"]) for r in results) == [0, 0, len(MIGRATIONS)]


def test_a_schema_newer_than_this_fleet_is_refused_and_left_alone(fresh: StoreSettings, tmp_path: Path) -> None:
    admin = Database(fresh, check_schema=False)
    init_schema(admin)
    with admin.transaction() as cur:
        cur.execute("INSERT INTO fleet_schema (version, name) VALUES (%s, 'from the future')", (SCHEMA_VERSION + 1,))
    with pytest.raises(StoreSchemaMismatch) as newer:
        init_schema(admin)
    assert "Upgrade fleet" in newer.value.hint
    db = Database(fresh)
    with pytest.raises(StoreSchemaMismatch):
        PgLeaseStore(db, tmp_path).info("a1")
    db.close()
    assert schema_status(admin)["version"] == SCHEMA_VERSION + 1
    admin.close()


def test_doctor_checks_the_shared_store(fresh: StoreSettings, fleet_factory: Any) -> None:
    """`fleet doctor` has a store line: not initialised fails with the `fleet store init` hint, then
    passes with the server and schema; the URL is masked."""
    f = fleet_factory(1, extra=f'\n[store]\nurl = "{fresh.url}"\nconnect_timeout = 2\n')

    def store_line() -> dict[str, Any]:
        proc = f.cli("doctor", "--json")
        return next(c for c in json.loads(proc.stdout)["checks"] if c["name"] == "store")

    before = store_line()
    assert before["ok"] is False
    assert "fleet store init" in before["hint"]
    f.json("store", "init")
    after = store_line()
    assert after["ok"] is True
    assert f"schema {SCHEMA_VERSION}" in after["detail"]
    assert "PostgreSQL" in after["detail"]
