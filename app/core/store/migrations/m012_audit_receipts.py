"""Schema 12: signed receipts of the audit chain's head, written whenever an unlocked user acts."""

from __future__ import annotations

import duckdb

SQL = """
CREATE TABLE audit_receipts (
    seq BIGINT NOT NULL, entry_hash VARCHAR NOT NULL, user_id VARCHAR NOT NULL, cert_sha256 VARCHAR NOT NULL,
    signed_at VARCHAR NOT NULL, signature VARCHAR NOT NULL, PRIMARY KEY (seq, user_id))
"""


def apply(con: duckdb.DuckDBPyConnection) -> None:
    """Create the receipts table."""
    con.execute(SQL)
