"""The schema version of project.duckdb and the runner that applies the frozen migrations in order."""

from __future__ import annotations

import functools

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


@functools.cache
def expected_schema() -> tuple[dict[str, frozenset[str]], dict[str, str]]:
    """The tables (with their columns) and the views' SQL that the frozen migrations create, from an in-memory
    database (a tenth of a second, once per process)."""
    con = duckdb.connect(":memory:")
    try:
        migrate(con)
        return _tables(con), _views(con)
    finally:
        con.close()


def _tables(con: duckdb.DuckDBPyConnection) -> dict[str, frozenset[str]]:
    rows = con.execute("SELECT table_name, column_name FROM duckdb_columns() WHERE database_name = "
                       "current_database() AND schema_name = 'main' AND NOT internal").fetchall()
    tables: dict[str, set[str]] = {}
    for table, column in rows:
        tables.setdefault(table, set()).add(column)
    views = set(_views(con))
    return {t: frozenset(c) for t, c in tables.items() if t not in views}


def _views(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    rows = con.execute("SELECT view_name, sql FROM duckdb_views() WHERE database_name = current_database() "
                       "AND schema_name = 'main' AND NOT internal").fetchall()
    return {name: " ".join(sql.split()) for name, sql in rows}


def schema_damage(con: duckdb.DuckDBPyConnection) -> list[str]:
    """What the database lacks or has redefined compared with its (current) schema: dropped tables, dropped
    columns, dropped or rewritten views. Extra columns are allowed (the prediction log grows its own)."""
    tables, views = expected_schema()
    have_tables, have_views = _tables(con), _views(con)
    damage = [f"table {t} is missing" for t in sorted(set(tables) - set(have_tables))]
    for table in sorted(set(tables) & set(have_tables)):
        lost = sorted(tables[table] - have_tables[table])
        if lost:
            damage.append(f"table {table} lacks the column(s) {', '.join(lost)}")
    for view, sql in sorted(views.items()):
        if view not in have_views:
            damage.append(f"view {view} is missing")
        elif have_views[view] != sql:
            damage.append(f"view {view} was redefined")
    return damage
