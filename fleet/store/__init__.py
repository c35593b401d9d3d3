"""The shared store: fleet's state in PostgreSQL, for fleets that outgrow one host.

`fleet.store.db` is the one place that talks to PostgreSQL (psycopg 3): connections, transactions
and how their failures become `store_unavailable`; `fleet.store.schema` owns the tables and their
versioned migrations (`fleet store init`). The backends built on it live with their capability
(`fleet.leases.pg`). Nothing here is imported unless `[store] url` (or `$FLEET_STORE_URL`) is set:
psycopg is loaded on first use, never at a CLI call's start-up.
"""
