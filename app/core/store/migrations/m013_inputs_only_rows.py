"""Schema 13: log rows may carry no model version and no score (input-only monitoring of a line's data)."""

from __future__ import annotations

import duckdb

from app.core.store.migrations._script import run_script

SQL = """
ALTER TABLE predictions ALTER COLUMN version_id DROP NOT NULL;
ALTER TABLE predictions ALTER COLUMN score DROP NOT NULL;
ALTER TABLE coverage_summary ALTER COLUMN version_id DROP NOT NULL;
"""


def apply(con: duckdb.DuckDBPyConnection) -> None:
    """Let version_id and score be NULL in the log and in the coverage summary."""
    run_script(con, SQL)
