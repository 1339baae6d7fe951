"""Small DuckDB helpers shared by core modules."""

from __future__ import annotations

from typing import Any

import duckdb


def one(con: duckdb.DuckDBPyConnection, sql: str, params: list | dict | None = None) -> tuple[Any, ...] | None:
    """The first row of a query, or None; fetches fully (DuckDB 2.0 refuses new work on a half-read result)."""
    rows = con.execute(sql, params if params is not None else []).fetchall()
    return rows[0] if rows else None
