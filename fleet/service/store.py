"""Shared-store operations: `fleet store init` (create or upgrade the schema) and `fleet store status`.

The schema and its migrations are `fleet.store.schema`'s (applied by `fleet.store.admin`); this
module only opens the configured store for them. Without `[store] url` (or `$FLEET_STORE_URL`) fleet
keeps its embedded store, which needs no initialising: `status` says so and `init` refuses with a hint.
"""

from __future__ import annotations

import contextlib
from typing import Any

from fleet.errors import ConfigError
from fleet.store.admin import init_schema, schema_status
from fleet.store.db import Database

from .core import Service


def store_init(svc: Service) -> dict[str, Any]:
    settings = svc.config.store
    if settings is None:
        raise ConfigError("No shared store is configured: the embedded store (files in the state dir) needs no "
                          "initialising.", hint='Set `[store] url = "postgresql://..."` in fleet.toml or '
                          "$FLEET_STORE_URL first.", path=str(svc.config.path), key="$.store.url")
    with contextlib.closing(Database(settings, check_schema=False)) as db:
        return {"backend": "postgresql", **init_schema(db)}


def store_status(svc: Service) -> dict[str, Any]:
    settings = svc.config.store
    if settings is None:
        return {"backend": "embedded", "state_dir": str(svc.config.state_dir), "ok": True}
    with contextlib.closing(Database(settings, check_schema=False)) as db:
        status = schema_status(db)
    return {"backend": "postgresql", "source": settings.source, "ok": status["reachable"] and status["current"],
            "host": settings.host, **status}
