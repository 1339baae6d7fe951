"""Schema 14: signed governance statements (users, roles, tiers, authors, rules, validation runs, stages)."""

from __future__ import annotations

import duckdb

from app.core.store.migrations._script import run_script

SQL = """
CREATE TABLE statements (
    seq BIGINT PRIMARY KEY, kind VARCHAR NOT NULL, subject VARCHAR NOT NULL, body_json VARCHAR NOT NULL,
    signer VARCHAR NOT NULL, cert_pem VARCHAR NOT NULL, signed_at VARCHAR NOT NULL, prev_sha256 VARCHAR NOT NULL,
    sha256 VARCHAR NOT NULL, signature VARCHAR NOT NULL, cosigner VARCHAR, cosigner_cert_pem VARCHAR,
    cosignature VARCHAR);
"""


def apply(con: duckdb.DuckDBPyConnection) -> None:
    """Create the statements table."""
    run_script(con, SQL)
