"""Schema 5: which runtimes can load each model version (and the sha256 of every file), set by safe import."""

from __future__ import annotations

import duckdb

SQL = "ALTER TABLE model_versions ADD COLUMN runtimes_json VARCHAR"


def apply(con: duckdb.DuckDBPyConnection) -> None:
    """Add the runtimes column."""
    con.execute(SQL)
