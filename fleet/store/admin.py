"""`fleet store init` and `fleet store status` on a `Database`: the schema applied, the store checked."""

from __future__ import annotations

from typing import TypedDict

from fleet.errors import StoreUnavailable

from .db import Database
from .schema import SCHEMA_VERSION, installed_version, migrate


class SchemaStatus(TypedDict):
    store: str
    namespace: str
    reachable: bool
    version: int | None
    needed: int
    current: bool
    server_version: str | None


class InitResult(TypedDict):
    store: str
    before: int | None
    version: int
    applied: list[str]


def init_schema(db: Database) -> InitResult:
    """Create or upgrade the schema to `SCHEMA_VERSION` in one transaction; idempotent, and safe to
    run from many hosts at once (they queue on an advisory lock)."""
    with db.transaction() as cur:
        before, applied = migrate(cur, db.settings.display)
    return {"store": db.settings.display, "before": before, "version": SCHEMA_VERSION, "applied": applied}


def schema_status(db: Database) -> SchemaStatus:
    """Whether the store answers and which schema it has; never raises for an unreachable store."""
    out: SchemaStatus = {"store": db.settings.display, "namespace": db.namespace, "reachable": False,
                         "version": None, "needed": SCHEMA_VERSION, "current": False, "server_version": None}
    try:
        with db.mapped_errors("cannot reach"):
            conn = db.connection()
            out["version"] = installed_version(conn)
            out["server_version"] = str(conn.info.parameter_status("server_version") or "") or None
    except StoreUnavailable:
        return out
    out["reachable"] = True
    out["current"] = out["version"] == SCHEMA_VERSION
    return out
