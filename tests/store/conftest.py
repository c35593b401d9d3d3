"""Tests that need PostgreSQL live here: one throwaway cluster per session (tests/pgcluster.py),
stopped and removed at the end even when tests fail; each test gets its own namespace in it.

`lease_backend` and `ledger_backend` are the contract suites' parametrized fixtures: the same test
runs against the embedded backend (lock files, the SQLite ledger) and against PostgreSQL.
`pg_outage` hands a test the cluster to stop and start mid-test, and restarts it afterwards whatever
happened.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pgcluster import PgCluster

from fleet.config.store import StoreSettings
from fleet.leases import LeaseStore
from fleet.leases.backend import LeaseBackend
from fleet.leases.pg import PgLeaseStore
from fleet.store.db import Database
from fleet.work.ledger import Ledger
from fleet.work.ledgerbackend import LedgerBackend
from fleet.work.pgledger import PgLedger

_namespaces = itertools.count(1)


@pytest.fixture
def pg_settings(pg_cluster: PgCluster) -> StoreSettings:
    """The shared test database under a namespace of this test's own."""
    return StoreSettings(url=pg_cluster.url(), namespace=f"t{next(_namespaces)}", connect_timeout=2)


@pytest.fixture
def pg_db(pg_settings: StoreSettings) -> Iterator[Database]:
    db = Database(pg_settings)
    yield db
    db.close()


@pytest.fixture
def pg_outage(pg_cluster: PgCluster) -> Iterator[PgCluster]:
    """The cluster, for a test that stops it; started again at the end if the test left it down."""
    yield pg_cluster
    if not pg_cluster.running():
        pg_cluster.start()


@pytest.fixture(params=["files", "postgresql"])
def lease_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., LeaseBackend]]:
    """Make lease stores of one backend that share one set of leases (two "hosts": separate state
    dirs, one database, for PostgreSQL; one state dir for files)."""
    made: list[Database] = []
    if request.param == "files":
        yield lambda host="a": LeaseStore(tmp_path / "state", surface="test")
        return
    settings: StoreSettings = request.getfixturevalue("pg_settings")

    def make(host: str = "a") -> LeaseBackend:
        db = Database(settings)
        made.append(db)
        return PgLeaseStore(db, tmp_path / f"state-{host}", surface="test")

    yield make
    for db in made:
        db.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., LedgerBackend]]:
    """Make ledgers of one backend that share one set of assignments: `make(host, clock=...)`. Two
    "hosts" are separate state dirs on one database for PostgreSQL, one state dir for SQLite."""
    made: list[Database] = []
    ledgers: list[LedgerBackend] = []
    cached: dict[str, LedgerBackend] = {}  # a host asked for again without options: the same ledger
    settings: StoreSettings | None = request.getfixturevalue("pg_settings") if request.param != "sqlite" else None

    def make(host: str = "a", **kw: Any) -> LedgerBackend:
        if not kw and host in cached:
            return cached[host]
        if settings is None:
            ledger: LedgerBackend = Ledger(tmp_path / "state", **kw)
        else:
            made.append(Database(settings))
            ledger = PgLedger(made[-1], tmp_path / f"state-{host}", **kw)
        ledgers.append(ledger)
        if not kw:
            cached[host] = ledger
        return ledger

    yield make
    for ledger in ledgers:
        ledger.close()
    for db in made:
        db.close()
