"""Schema 16: prediction logs attached where they live (a Parquet lake), registered without copying a row."""

from __future__ import annotations

import duckdb

SQL = """
CREATE TABLE attached_logs (
    name VARCHAR PRIMARY KEY, source VARCHAR NOT NULL, labels_source VARCHAR, mapping_json VARCHAR NOT NULL,
    files_json VARCHAR NOT NULL, files_sha256 VARCHAR NOT NULL, rows BIGINT NOT NULL,
    attached_at TIMESTAMP NOT NULL, attached_by VARCHAR NOT NULL)
"""


def apply(con: duckdb.DuckDBPyConnection) -> None:
    """Create the attached log table."""
    con.execute(SQL)
