"""Run a ';'-separated DDL script statement by statement (DuckDB's execute takes one statement per call)."""

from __future__ import annotations

import duckdb


def run_script(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Execute each non-empty statement of `sql` in order."""
    for statement in filter(str.strip, sql.split(";")):
        con.execute(statement)
