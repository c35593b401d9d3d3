"""PostgreSQL taken away mid-operation (`pg_ctl stop -m immediate`): every lease call answers
`store_unavailable` (retryable, with a hint, the password nowhere), nothing is half written, and the
store recovers by itself once the database is back (a broken connection is replaced on next use)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Fleet
from pgcluster import PgCluster

from fleet.config.store import StoreSettings
from fleet.errors import EXIT_ENVIRONMENT, StoreUnavailable
from fleet.leases.files import SHARED_STORE_MARKER
from fleet.leases.pg import PgLeaseStore
from fleet.store.db import Database

SECRET = "pw-Zq81-never-shown"


@pytest.fixture
def secret_settings(pg_cluster: PgCluster, pg_settings: StoreSettings) -> StoreSettings:
    """The test database through a URL carrying a password (trust auth ignores it): it must never show."""
    return StoreSettings(url=pg_cluster.url(password=SECRET), namespace=pg_settings.namespace, connect_timeout=2)


def test_a_stopped_database_is_store_unavailable_and_recovers_with_nothing_torn(
        pg_outage: PgCluster, secret_settings: StoreSettings, tmp_path: Path) -> None:
    db = Database(secret_settings)
    store = PgLeaseStore(db, tmp_path / "state")
    token = store.claim("a1", "alice", ttl=300)["token"]
    pg_outage.stop("immediate")
    for call in (lambda: store.claim("a1", "alice"), lambda: store.info("a1"), lambda: store.release("a1", "alice")):
        with pytest.raises(StoreUnavailable) as down:
            call()
        error = down.value.to_dict()
        assert error["code"] == "store_unavailable"
        assert error["retryable"] is True
        assert "fleet store status" in error["hint"]
        assert SECRET not in json.dumps(error)
        assert SECRET not in repr(down.value)
    assert SECRET not in repr(store)
    pg_outage.start()
    info = store.info("a1")  # a new connection, the same row
    assert info["holder"] == "alice"
    assert info["token"] == token
    assert store.claim("a1", "alice")["status"] == "renewed"
    db.close()


def test_the_first_call_after_a_restart_succeeds_on_a_fresh_connection(
        pg_outage: PgCluster, pg_settings: StoreSettings, tmp_path: Path) -> None:
    """A long-lived process (the MCP server) holds a connection the restart killed: a call that
    fails on it before COMMIT is run again on a new connection, and reads are retried likewise."""
    db = Database(pg_settings)
    store = PgLeaseStore(db, tmp_path / "state")
    token = store.claim("a1", "alice", ttl=300)["token"]
    pg_outage.stop("immediate")
    pg_outage.start()
    assert store.info("a1")["token"] == token
    pg_outage.stop("immediate")
    pg_outage.start()
    assert store.claim("a1", "alice")["status"] == "renewed"
    pg_outage.stop("immediate")
    pg_outage.start()
    assert store.release("a1", "alice", token=token)["released"] is True
    db.close()


def test_a_transaction_cut_by_the_stop_leaves_the_row_as_it_was(
        pg_outage: PgCluster, pg_settings: StoreSettings, tmp_path: Path) -> None:
    db = Database(pg_settings)
    store = PgLeaseStore(db, tmp_path / "state")
    token = store.claim("a1", "alice", ttl=300)["token"]
    with pytest.raises(StoreUnavailable), db.transaction() as cur:  # noqa: PT012 (the stop must come mid-transaction)
        cur.execute("UPDATE fleet_lease SET holder = 'mallory', token = token + 1 WHERE namespace = %s",
                    (pg_settings.namespace,))
        pg_outage.stop("immediate")  # the COMMIT never reaches the server
    pg_outage.start()
    info = store.info("a1")
    assert info["holder"] == "alice"
    assert info["token"] == token
    db.close()


def test_a_guarded_operation_whose_store_goes_away_fails_loudly_and_its_lease_stays_whole(
        pg_outage: PgCluster, pg_settings: StoreSettings, tmp_path: Path) -> None:
    db = Database(pg_settings)
    store = PgLeaseStore(db, tmp_path / "state")
    with pytest.raises(StoreUnavailable), store.guard("a1", "alice", ttl=300) as lease:
        pg_outage.stop("immediate")  # the body runs; ending its transient lease cannot
    pg_outage.start()
    info = store.info("a1")
    assert info["holder"] == "alice"  # still the transient lease: it lapses at its TTL
    assert info["token"] == lease.token
    assert info["transient"] is True
    other = Database(pg_settings)
    with pytest.raises(Exception, match="leased to alice"):
        PgLeaseStore(other, tmp_path / "other").claim("a1", "bob")
    other.close()
    db.close()


def test_the_cli_reports_store_unavailable_with_the_url_masked(
        pg_outage: PgCluster, fleet_factory: Callable[..., Fleet]) -> None:
    f = fleet_factory(1, extra=f'\n[store]\nurl = "{pg_outage.url(password=SECRET)}"\nconnect_timeout = 2\n')
    init = f.json("store", "init")
    assert init["version"] >= 1
    assert SECRET not in json.dumps(init)
    assert f.json("claim", "agent-1", "--holder", "alice")["status"] == "claimed"
    assert (f.state_dir / "leases" / SHARED_STORE_MARKER).exists()  # the approval hook fails closed
    assert not (f.state_dir / "leases" / "agent-1.json").exists()  # the lease is in the database only
    pg_outage.stop("immediate")
    proc = f.cli("claim", "agent-1", "--holder", "alice", "--json")
    assert proc.returncode == EXIT_ENVIRONMENT
    assert json.loads(proc.stdout)["error"]["code"] == "store_unavailable"
    assert SECRET not in proc.stdout + proc.stderr
    leases = f.cli("leases", "--json")  # not every agent "corrupt": the listing fails whole
    assert leases.returncode == EXIT_ENVIRONMENT
    assert json.loads(leases.stdout)["error"]["code"] == "store_unavailable"
    status = f.cli("store", "status")
    assert status.returncode == 1
    assert "UNREACHABLE" in status.stdout
    assert SECRET not in status.stdout + status.stderr
    pg_outage.start()
    assert f.json("claim", "agent-1", "--holder", "alice")["status"] == "renewed"
    assert f.json("store", "status")["ok"] is True
