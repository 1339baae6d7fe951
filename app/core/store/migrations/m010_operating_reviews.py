"""Schema 10: saved operating reviews."""

from __future__ import annotations

import duckdb

SQL = """
CREATE TABLE operating_reviews (
    review_id VARCHAR PRIMARY KEY, label VARCHAR NOT NULL, period_start TIMESTAMP NOT NULL,
    period_end TIMESTAMP NOT NULL, findings_json VARCHAR NOT NULL, findings_sha256 VARCHAR NOT NULL,
    decision VARCHAR NOT NULL, actions_json VARCHAR NOT NULL, reviewer VARCHAR NOT NULL, created_at TIMESTAMP NOT NULL)
"""


def apply(con: duckdb.DuckDBPyConnection) -> None:
    """Create the operating reviews table."""
    con.execute(SQL)
