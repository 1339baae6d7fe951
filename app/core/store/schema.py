"""The schema version of project.duckdb and the runner that applies the frozen migrations in order."""

from __future__ import annotations

import duckdb

from app.core.store.db import one
from app.core.store.migrations import MIGRATIONS

SCHEMA_VERSION = len(MIGRATIONS)
STAGES = ("candidate", "shadow", "pilot", "production", "retired")


def stored_version(con: duckdb.DuckDBPyConnection) -> int:
    """Schema version recorded in the database (0 for an empty database)."""
    has = one(con,
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_info'"
    )[0]
    if not has:
        return 0
    row = one(con, "SELECT max(version) FROM schema_info")
    return int(row[0] or 0)


def migrate(con: duckdb.DuckDBPyConnection, target: int = SCHEMA_VERSION, app_version: str = "") -> int:
    """Apply the missing migrations up to `target` in one transaction; return the new version."""
    current = stored_version(con)
    if current >= target:
        return current
    con.execute("BEGIN TRANSACTION")
    try:
        for number in range(current + 1, target + 1):
            MIGRATIONS[number - 1](con)
            con.execute(
                "INSERT INTO schema_info VALUES (?, now()::TIMESTAMP, ?)", [number, app_version]
            )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return target
