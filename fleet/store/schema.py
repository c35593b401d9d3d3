"""The shared store's tables and their versioned migrations (`fleet store init`).

`fleet_schema` lists every migration applied (version, name, when). `migrate` applies the
missing ones in order, all in one transaction under an advisory lock, so two hosts running
`fleet store init` at once apply each migration exactly once, and a failure leaves the schema as it
was. Running it again on a current schema changes nothing. A migration is never edited once
released: a change is a new migration with the next version.

Version 1, leases: one row per (namespace, agent), never deleted, so `token` (the last token the
database issued for the agent) only ever grows, across release, expiry and takeover. Times are epoch
seconds read from the database's clock (`clock_timestamp()`), never a host's.

Version 2, the ledger: see `_LEDGER`. Version 3, the watchdog's memory: see `_WATCHDOG`.
Version 4, the audit log: see `_AUDIT`. Version 5, audit records shipped from a host's file: see
`_AUDIT_KEY`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from fleet.errors import StoreSchemaMismatch

if TYPE_CHECKING:
    import psycopg

_STATES: Final = ", ".join(f"'{s}'" for s in ("queued", "sent", "working", "reported", "verified", "rejected",
                                                  "failed", "cancelled"))
#: Version 2, the ledger (`fleet.work.pgledger`): the SQLite ledger's tables keyed by namespace, JSON
#: kept as text (decoded by the same code). `fleet_ledger_head` has one row per namespace that every
#: ledger writer locks first (and bumps: the `data_version` a waiter polls), so writers are serialised
#: and each takes its event ids from `fleet_event_id_seq` only while it holds that row: ids appear in
#: commit order. Events are append-only: a trigger refuses UPDATE, DELETE and TRUNCATE.
_LEDGER: Final = (
    """CREATE TABLE fleet_ledger_head (
        namespace text PRIMARY KEY,
        version   bigint NOT NULL DEFAULT 0
    )""",
    f"""CREATE TABLE fleet_assignment (
        namespace text NOT NULL, id text NOT NULL, agent text, holder text NOT NULL, task text NOT NULL,
        prompt text, skills text NOT NULL DEFAULT '[]', read_paths text NOT NULL DEFAULT '[]',
        write_paths text NOT NULL DEFAULT '[]', checks text NOT NULL DEFAULT '[]', deadline double precision,
        state text NOT NULL CHECK (state IN ({_STATES})), receipt text, turn_id text, report text,
        verification text, baseline text, reason text, request_id text, created_at double precision NOT NULL,
        updated_at double precision NOT NULL, sent_at double precision, ended_at double precision,
        repo text, branch text, base_commit text, verified_commit text, merged_commit text, usage text,
        budget bigint,
        PRIMARY KEY (namespace, id)
    )""",
    "CREATE INDEX fleet_assignment_state ON fleet_assignment (namespace, state, id)",
    "CREATE INDEX fleet_assignment_agent ON fleet_assignment (namespace, agent, id)",
    """CREATE TABLE fleet_event (
        id bigserial PRIMARY KEY, namespace text NOT NULL, time double precision NOT NULL, assignment text,
        agent text, actor text NOT NULL, kind text NOT NULL, from_state text, to_state text,
        details text NOT NULL DEFAULT '{}',
        key text,
        moved_from text
    )""",
    "CREATE INDEX fleet_event_cursor ON fleet_event (namespace, id)",
    "CREATE INDEX fleet_event_assignment ON fleet_event (namespace, assignment, id)",
    "CREATE INDEX fleet_event_moved ON fleet_event (namespace, moved_from, id) WHERE moved_from IS NOT NULL",
    """CREATE FUNCTION fleet_event_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'events are append-only'; END $$""",
    """CREATE TRIGGER fleet_event_no_change BEFORE UPDATE OR DELETE ON fleet_event
        FOR EACH ROW EXECUTE FUNCTION fleet_event_append_only()""",
    """CREATE TRIGGER fleet_event_no_truncate BEFORE TRUNCATE ON fleet_event
        FOR EACH STATEMENT EXECUTE FUNCTION fleet_event_append_only()""",
    """CREATE TABLE fleet_request (
        namespace text NOT NULL, scope text NOT NULL, id text NOT NULL, sha text NOT NULL, result text,
        created_at double precision NOT NULL,
        PRIMARY KEY (namespace, scope, id)
    )""",
    "CREATE INDEX fleet_request_age ON fleet_request (namespace, created_at)",
)
#: Version 3, the watchdog's memory (`fleet.watchdog.pgstore`): the SQLite `watchdog_state` and
#: `watchdog_ticks` keyed by namespace, with the host that wrote each row (ticks are read per host).
_WATCHDOG: Final = (
    """CREATE TABLE fleet_watchdog_state (
        namespace text NOT NULL, kind text NOT NULL CHECK (kind IN ('ladder', 'agent')), key text NOT NULL,
        agent text NOT NULL, host text NOT NULL, value text NOT NULL, updated_at double precision NOT NULL,
        PRIMARY KEY (namespace, kind, key)
    )""",
    """CREATE TABLE fleet_watchdog_tick (
        id bigserial PRIMARY KEY, namespace text NOT NULL, host text NOT NULL, at double precision NOT NULL,
        dry_run boolean NOT NULL, ms bigint NOT NULL, skipped text, actions text NOT NULL
    )""",
    "CREATE INDEX fleet_watchdog_tick_host ON fleet_watchdog_tick (namespace, host, id)",
)
#: Version 4, the audit log (`fleet.store.auditlog`): every host's audit records, append-only like
#: the ledger's events (the same trigger function refuses UPDATE, DELETE and TRUNCATE).
_AUDIT: Final = (
    """CREATE TABLE fleet_audit (
        id bigserial PRIMARY KEY, namespace text NOT NULL, host text NOT NULL, time double precision NOT NULL,
        event text NOT NULL, record text NOT NULL
    )""",
    "CREATE INDEX fleet_audit_cursor ON fleet_audit (namespace, id)",
    """CREATE TRIGGER fleet_audit_no_change BEFORE UPDATE OR DELETE ON fleet_audit
        FOR EACH ROW EXECUTE FUNCTION fleet_event_append_only()""",
    """CREATE TRIGGER fleet_audit_no_truncate BEFORE TRUNCATE ON fleet_audit
        FOR EACH STATEMENT EXECUTE FUNCTION fleet_event_append_only()""",
)
#: Version 5: a `key` on audit records copied from a host's `audit.jsonl` after the fact
#: (`fleet.service.auditship`), unique in the namespace, so a copy retried after a crash inserts nothing
#: (`ON CONFLICT DO NOTHING` updates no row: the append-only trigger is not involved). Records written
#: straight to the table have none. Adding a nullable column rewrites no row.
_AUDIT_KEY: Final = (
    "ALTER TABLE fleet_audit ADD COLUMN key text",
    "CREATE UNIQUE INDEX fleet_audit_key ON fleet_audit (namespace, key) WHERE key IS NOT NULL",
)
#: (version, name, statements: one SQL command each, as pipeline mode requires). Append only.
MIGRATIONS: Final[tuple[tuple[int, str, tuple[str, ...]], ...]] = (
    (1, "leases", ("""
        CREATE TABLE fleet_lease (
            namespace   text NOT NULL,
            agent       text NOT NULL,
            token       bigint NOT NULL DEFAULT 0 CHECK (token >= 0),
            holder      text,
            acquired_at double precision,
            renewed_at  double precision,
            expires_at  double precision,
            ttl         double precision,
            transient   boolean NOT NULL DEFAULT false,
            changed_at  double precision NOT NULL DEFAULT extract(epoch FROM clock_timestamp()),
            PRIMARY KEY (namespace, agent),
            CHECK (holder IS NULL OR (token >= 1 AND acquired_at IS NOT NULL AND renewed_at IS NOT NULL
                                      AND expires_at IS NOT NULL AND ttl IS NOT NULL))
        )""",
        """COMMENT ON COLUMN fleet_lease.token IS
            'The last token issued for the agent: only ever grows (fencing). NULL holder: free.'""")),
    (2, "ledger", _LEDGER),
    (3, "watchdog", _WATCHDOG),
    (4, "audit", _AUDIT),
    (5, "audit_key", _AUDIT_KEY),
)
SCHEMA_VERSION: Final = MIGRATIONS[-1][0]
#: Serialises concurrent `fleet store init` runs (an arbitrary constant: "fleet" in ASCII).
_INIT_LOCK: Final = 0x666C656574


def installed_version(conn: psycopg.Connection[Any]) -> int | None:
    """The highest migration applied, None when the database has no fleet schema."""
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass('fleet_schema') IS NOT NULL")
        row = cur.fetchone()
        if not row or not row[0]:
            return None
        cur.execute("SELECT max(version) FROM fleet_schema")
        found = cur.fetchone()
    return int(found[0]) if found and found[0] is not None else None


def migrate(cur: psycopg.Cursor[Any], display: str) -> tuple[int | None, list[str]]:
    """Apply the missing migrations inside the caller's transaction, under the init lock: (the
    version before, the migrations applied). Refuses a schema newer than this fleet's."""
    applied: list[str] = []
    conn = cur.connection  # each statement its own cursor: in pipeline mode a result is one statement's
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_INIT_LOCK,))
    conn.execute("""CREATE TABLE IF NOT EXISTS fleet_schema (
                        version    integer PRIMARY KEY,
                        name       text NOT NULL,
                        applied_at timestamptz NOT NULL DEFAULT clock_timestamp())""")
    row = conn.execute("SELECT coalesce(max(version), 0) FROM fleet_schema").fetchone()
    before = int(row[0]) if row else 0
    if before > SCHEMA_VERSION:
        raise StoreSchemaMismatch(
            f"The store {display} has fleet schema version {before}, newer than this fleet knows "
            f"({SCHEMA_VERSION}); nothing was changed.",
            hint="Upgrade fleet on this host to the version the other hosts run.",
            found=before, needed=SCHEMA_VERSION)
    for version, name, statements in MIGRATIONS:
        if version <= before:
            continue
        for sql in statements:
            conn.execute(sql)
        conn.execute("INSERT INTO fleet_schema (version, name) VALUES (%s, %s)", (version, name))
        applied.append(f"{version}:{name}")
    return before or None, applied
