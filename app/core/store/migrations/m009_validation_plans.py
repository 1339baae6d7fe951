"""Schema 9: validation plans, versioned by name and hashed."""

from __future__ import annotations

import duckdb

SQL = """
CREATE TABLE validation_plans (
    plan_id VARCHAR NOT NULL, revision INTEGER NOT NULL, name VARCHAR NOT NULL, sha256 VARCHAR NOT NULL,
    plan_toml VARCHAR NOT NULL, saved_at TIMESTAMP NOT NULL, saved_by VARCHAR NOT NULL,
    PRIMARY KEY (plan_id, revision))
"""


def apply(con: duckdb.DuckDBPyConnection) -> None:
    """Create the validation plans table."""
    con.execute(SQL)
