"""Frozen migrations: every released schema upgrades to exactly the layout of a new project.

tests/fixtures/schemas/schemaN.sql are projects made by the code of the last commit at schema N (schema 7 never
shipped on its own: 6 -> 8 landed together), dumped by tests/fixtures/dump_schema_fixture.py. They are the
independent oracle: they do not come from today's migration code.
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

import duckdb
import pytest

from app.core.store.audit import verify_audit
from app.core.store.schema import SCHEMA_VERSION, migrate, stored_version

FIXTURES = Path(__file__).parent / "fixtures" / "schemas"
MIGRATIONS_DIR = Path(__file__).parents[1] / "app" / "core" / "store" / "migrations"
RELEASED = (1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13)

# A released migration is never edited: a schema change is a new file. Add a line here with the new file.
FROZEN = {
    "_script.py": "703d7b5c15432c318a163ed547581dc02a4a09b1b603fc5c89c0c47e2b82483a",
    "m001_initial.py": "3fa86d4635a4487d1761bd626c0540f9cd96ba2c987b38edecb5e42f03ff3343",
    "m002_stages.py": "0fc6b89f617a7478626672fbbf5d492c1d691ebb34895b4d022042711fbdb143",
    "m003_coverage_summary.py": "553d9eab981327a3493d27d6f76f2699a2d41d2d1316699108bae2d3cbe25c77",
    "m004_events_alerts.py": "f7e1b1b7395988c11d22f0114f4097f3c5a9cc4701c46b503944043c805910b8",
    "m005_runtimes.py": "ab5a8dbe43e45ddddb29ee37596f3a9fe7c28227229238812bb674c01350f23a",
    "m006_bench_runs.py": "e8244ac7d1a7f170a9d93633030324ab756ce933adf42cb2281fe97a466b47d7",
    "m007_audit_chain.py": "10cf40875e351c420414b11116d6a0c606d9512d2040877d29ee646c243b14cb",
    "m008_governance.py": "84387ad16d84bf280ededdb356d85225a202a7923599659ebd889d80860bf83c",
    "m009_validation_plans.py": "09a2352fbf04f0e1cd4a91c2e7985a0715043777474c4a660a5188316c82b86f",
    "m010_operating_reviews.py": "fd2c12a34909b697af2de80bf3baf8fd688166ee0389d0d51d8bcc70221fa4af",
    "m011_kpis.py": "01793a6188f5949dc4e967e74ba3379fd22fcdedda4ad5b15a1b8a3c67289063",
    "m012_audit_receipts.py": "f8a21d05255e90dd4353e310dde3ce2be7dbe4d7ad5240ef52b37c2b135c8d48",
    "m013_inputs_only_rows.py": "e4acf0954aea9b727f68e4ee82fa7d783876a893c0c94c9a3eafa29bdeff8122",
    "m014_statements.py": "09a8cef569d080ef24c37ebe49acf3b462614dddcab814c357c24413c676a8aa",
    "m015_release_history.py": "bf4ff3bb1e263cbb61a1d07b12d1ca1f2acb863f442f93f45fee2cbe60ef79ab",
    "m016_attached_logs.py": "b801476773db17f4947de40a60c1c483a5585b95ce4fd4b88885680223a385d1",
}


def load_fixture(schema: int) -> duckdb.DuckDBPyConnection:
    """An in-memory database holding the released project of that schema."""
    con = duckdb.connect()
    for statement in filter(str.strip, (FIXTURES / f"schema{schema}.sql").read_text().split(";\n")):
        con.execute(statement)
    return con


def catalog(con: duckdb.DuckDBPyConnection) -> dict[str, list]:
    """Everything a migration decides: columns (order, type, default, null), constraints, views, indexes,
    sequences and seeded rules. Columns the prediction log added (log_columns) are data, not schema."""
    log_columns = [r[0] for r in con.execute("SELECT name FROM log_columns").fetchall()]
    return {
        "columns": con.execute(
            """SELECT table_name, column_name, data_type, column_default, is_nullable,
                      row_number() OVER (PARTITION BY table_name ORDER BY column_index)
               FROM duckdb_columns() WHERE NOT internal
                 AND NOT (table_name = 'predictions' AND list_contains(?, column_name)) ORDER BY ALL""",
            [log_columns]).fetchall(),
        "constraints": con.execute("""SELECT table_name, constraint_type, constraint_column_names::VARCHAR
            FROM duckdb_constraints() ORDER BY ALL""").fetchall(),
        "views": con.execute("SELECT view_name, sql FROM duckdb_views() WHERE NOT internal ORDER BY ALL").fetchall(),
        "indexes": con.execute("SELECT index_name, table_name, sql FROM duckdb_indexes() ORDER BY ALL").fetchall(),
        "sequences": con.execute("SELECT sequence_name FROM duckdb_sequences() ORDER BY ALL").fetchall(),
        "tier_rules": con.execute("SELECT * FROM tier_rules ORDER BY ALL").fetchall(),
    }


@pytest.fixture(scope="module")
def fresh_catalog() -> dict[str, list]:
    con = duckdb.connect()
    migrate(con)
    return catalog(con)


def test_every_released_schema_has_a_fixture():
    assert sorted(int(p.stem.removeprefix("schema")) for p in FIXTURES.glob("schema*.sql")) == list(RELEASED)
    assert max(RELEASED) <= SCHEMA_VERSION


@pytest.mark.parametrize("schema", RELEASED)
def test_released_project_upgrades_to_the_layout_of_a_new_one(schema: int, fresh_catalog: dict):
    con = load_fixture(schema)
    assert stored_version(con) == schema
    rows_before = con.execute("SELECT count(*) FROM audit_log").fetchall()[0][0]
    assert migrate(con) == SCHEMA_VERSION
    upgraded = catalog(con)
    for part, wanted in fresh_catalog.items():
        assert upgraded[part] == wanted, f"schema {schema} upgraded differs from a new project in {part}"
    assert con.execute("SELECT count(*) FROM audit_log").fetchall()[0][0] == rows_before
    assert verify_audit(con).ok
    assert [r[0] for r in con.execute("SELECT version FROM schema_info ORDER BY version").fetchall()] == list(
        range(1, SCHEMA_VERSION + 1))


def test_released_migrations_are_unchanged():
    files = {p.name: p for p in MIGRATIONS_DIR.glob("*.py") if p.name != "__init__.py"}
    assert sorted(files) == sorted(FROZEN), "a migration was added or removed without recording it here"
    for name, path in files.items():
        digest = hashlib.sha256(path.read_bytes().replace(b"\r\n", b"\n")).hexdigest()
        assert digest == FROZEN[name], f"{name} was edited: a released migration is frozen, add a new one"


def test_migrations_import_no_capability_module():
    for path in MIGRATIONS_DIR.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                if name.startswith("app"):
                    assert name.startswith("app.core.store.migrations"), f"{path.name} imports {name}"


def test_migrations_are_numbered_without_gaps():
    numbers = sorted(int(p.name[1:4]) for p in MIGRATIONS_DIR.glob("m[0-9][0-9][0-9]_*.py"))
    assert numbers == list(range(1, SCHEMA_VERSION + 1))
