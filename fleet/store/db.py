"""Connections to the shared PostgreSQL store, and the one mapping of their failures to fleet errors.

Each thread gets its own connection (opened on first use, autocommit, with explicit transactions),
so a thread that waits for a notification never blocks another. A connection that breaks is thrown
away and the next call opens a new one: the store recovers by itself once the database is back.

Failure contract:
- the database cannot be reached, or the connection breaks during a transaction: `StoreUnavailable`
  (`store_unavailable`, retryable). PostgreSQL commits a transaction whole or not at all, so nothing
  is half written. When the break hits the COMMIT itself, the caller cannot know whether it landed:
  a claim may then be granted without its answer; claiming again renews it (same holder).
- a row lock or a statement waits past its bound (a peer is wedged): `StoreTimeout` (a `Timeout`).
- the schema is missing, older or newer than this fleet's: `StoreSchemaMismatch` (checked once per
  connection), unless the caller is `fleet store init` itself.
The password is never part of a message, a log line or a repr: the URL is shown masked, and the
driver's own error text is scrubbed of it before it goes anywhere.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any, Final, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

import psycopg
from psycopg import errors as pg_errors

from fleet.config.store import StoreSettings
from fleet.errors import StoreSchemaMismatch, StoreTimeout, StoreUnavailable
from fleet.logs import LazyLogger

from .schema import SCHEMA_VERSION, installed_version

logger = LazyLogger(__name__)
T = TypeVar("T")

#: A row lock held longer than this means a peer is stuck inside a transaction (the file store's
#: per-agent lock gives up after the same two seconds).
LOCK_TIMEOUT_MS: Final = 2000
#: No statement of fleet's takes more than milliseconds; ten seconds means the server is in trouble.
STATEMENT_TIMEOUT_MS: Final = 10_000
#: A client that dies inside a transaction must not keep its row locks: the server ends it.
IDLE_IN_TRANSACTION_MS: Final = 10_000
#: Seconds of silence before TCP keepalives probe a connection, so a vanished server is noticed.
KEEPALIVES_IDLE: Final = 10


def secrets_of(url: str) -> list[str]:
    """The password(s) a URL carries (user info and `password=` option), for scrubbing messages."""
    out: list[str] = []
    try:
        parts = urlsplit(url)
        if parts.password:
            out += [parts.password, unquote(parts.password)]  # as written, and as libpq decodes it
        out += parse_qs(parts.query).get("password", [])
    except ValueError:
        pass
    return [s for s in out if s]


class Database:
    """The store's database for one process: a connection per thread, opened lazily.

    `check_schema` (default) refuses a database whose schema is not this fleet's version
    (`fleet.store.schema`); `fleet store init` opens it with False to create or upgrade the schema.
    """

    def __init__(self, settings: StoreSettings, *, check_schema: bool = True) -> None:
        self.settings = settings
        self._check_schema = check_schema
        self._local = threading.local()
        self._all: list[psycopg.Connection[Any]] = []
        self._all_lock = threading.Lock()
        self._secrets = secrets_of(settings.url)

    def __repr__(self) -> str:
        return f"Database({self.settings.display!r}, namespace={self.settings.namespace!r})"

    @property
    def namespace(self) -> str:
        return self.settings.namespace

    @property
    def host(self) -> str:
        """This state dir's name among the namespace's hosts: the settings' `host`, else the hostname."""
        return self.settings.host or socket.gethostname()

    # --- connections ---------------------------------------------------------------------------

    def connection(self) -> psycopg.Connection[Any]:
        """This thread's connection, opened (and its schema checked) on first use or after a break."""
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if conn is not None and not conn.closed:
            return conn
        conn = self._connect()
        self._local.conn = conn
        with self._all_lock:
            self._all.append(conn)
        return conn

    def _connect(self) -> psycopg.Connection[Any]:
        options = (f"-c lock_timeout={LOCK_TIMEOUT_MS} -c statement_timeout={STATEMENT_TIMEOUT_MS} "
                   f"-c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_MS}")
        try:
            conn = psycopg.connect(self.settings.url, autocommit=True, connect_timeout=self.settings.connect_timeout,
                                   application_name="fleet", options=options, keepalives=1,
                                   keepalives_idle=KEEPALIVES_IDLE)
        except psycopg.Error as exc:
            raise self.unavailable(exc, "cannot connect to") from None
        if self._check_schema:
            try:
                self._verify_schema(conn)
            except BaseException:
                conn.close()
                raise
        return conn

    def _verify_schema(self, conn: psycopg.Connection[Any]) -> None:
        try:
            found = installed_version(conn)
        except psycopg.Error as exc:
            raise self.unavailable(exc, "cannot read the schema of") from None
        if found == SCHEMA_VERSION:
            return
        where = self.settings.display
        if found is None or found < SCHEMA_VERSION:
            what = "has no fleet schema" if found is None else f"has fleet schema version {found}"
            raise StoreSchemaMismatch(
                f"The store {where} {what}; this fleet needs version {SCHEMA_VERSION}.",
                hint="Run `fleet store init` once (it creates or upgrades the schema; safe to repeat).",
                store=where, found=found, needed=SCHEMA_VERSION)
        raise StoreSchemaMismatch(
            f"The store {where} has fleet schema version {found}, newer than this fleet knows "
            f"({SCHEMA_VERSION}).",
            hint="Upgrade fleet on this host to the version the other hosts run.",
            store=where, found=found, needed=SCHEMA_VERSION)

    def close(self) -> None:
        """Close every connection this object opened, in any thread. Safe to call twice."""
        with self._all_lock:
            conns, self._all = self._all, []
        for conn in conns:
            with contextlib.suppress(Exception):
                conn.close()
        self._local = threading.local()

    def drop(self) -> None:
        """Throw this thread's connection away (it broke); the next call reconnects."""
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    # --- transactions --------------------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[psycopg.Cursor[Any]]:
        """One transaction on this thread's connection: committed when the body returns, rolled back
        when it raises (a refusal writes nothing). Driver failures come out as fleet errors.

        It runs in pipeline mode: statements go out without waiting, and the client waits only when
        the body reads a result, so BEGIN travels with the first query and COMMIT with the last writes
        (a lease claim is two round trips, not five). The server still runs them in order."""
        state = {"reused": False, "commit_sent": False}
        with self.mapped_errors(state=state):
            state["reused"] = self.reused()
            conn = self.connection()
            with conn.pipeline(), conn.transaction(), conn.cursor() as cur:
                yield cur
                state["commit_sent"] = True

    def retrying(self, fn: Callable[[], T]) -> T:
        """`fn()`, run once more on a fresh connection when a stale one failed it before its COMMIT
        was sent (`StoreUnavailable.stale_connection`: nothing of it had landed)."""
        try:
            return fn()
        except StoreUnavailable as exc:
            if not exc.stale_connection:
                raise
        return fn()

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """One statement outside a transaction (its own snapshot), its rows (none for a statement
        that returns none); run once more when a stale connection failed it (`retrying`)."""
        def once() -> list[tuple[Any, ...]]:
            with self.mapped_errors():
                cur = self.connection().execute(sql, params)
                return cur.fetchall() if cur.description else []

        return self.retrying(once)

    def reused(self) -> bool:
        """Whether this thread already has a connection (it may have gone stale since)."""
        return getattr(self._local, "conn", None) is not None

    @contextlib.contextmanager
    def mapped_errors(self, doing: str = "lost the connection to", *,
                      state: dict[str, bool] | None = None) -> Iterator[None]:
        """Turn psycopg's failures raised in the body into `StoreUnavailable` or `StoreTimeout`.

        With `state` (a transaction's: did it reuse a connection, was COMMIT sent), a failure on a
        reused connection before COMMIT was sent is marked `stale_connection`: the server may have
        restarted since the connection's last use, and nothing of the transaction can have landed,
        so the caller may run it once more on a fresh connection."""
        reused = self.reused() if state is None else False
        try:
            yield
        except (pg_errors.LockNotAvailable, pg_errors.QueryCanceled) as exc:
            raise StoreTimeout(
                f"The store {self.settings.display} did not answer in time: {self.scrub(exc)}.",
                hint="Another fleet process may be stuck in a store update; retry, and check `fleet leases`.",
            ) from None
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            self.drop()
            error = self.unavailable(exc, doing)
            error.stale_connection = (state["reused"] and not state["commit_sent"]) if state else reused
            raise error from None

    def scrub(self, exc: BaseException) -> str:
        """The driver's message, first line only, with the password cut out wherever it appears."""
        text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text[:300]

    def unavailable(self, exc: BaseException, doing: str) -> StoreUnavailable:
        where = self.settings.display
        logger.debug("store %s: %s", where, self.scrub(exc))
        return StoreUnavailable(
            f"fleet {doing} the store {where}: {self.scrub(exc)}. Nothing was half written.",
            hint="Check that PostgreSQL is running and reachable (`fleet store status`), then retry.",
            store=where,
        )
