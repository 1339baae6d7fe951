"""Independent checks used by many tests: project state read straight from the files with DuckDB."""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb

TABLES = ("models", "model_versions", "datasets", "imports", "predictions", "labels", "audit_log", "log_columns")


def project_state(folder: Path) -> dict:
    """Row counts of every table, column list of predictions, and hashes of the files (project closed)."""
    state: dict = {}
    for name in ("project.duckdb", "lineproof.toml"):
        state[name] = hashlib.sha256((folder / name).read_bytes()).hexdigest()
    con = duckdb.connect(str(folder / "project.duckdb"), read_only=True)
    try:
        for table in TABLES:
            state[table] = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
        state["columns"] = [r[0] for r in con.execute("DESCRIBE predictions").fetchall()]
    finally:
        con.close()
    return state


def write_csv(path: Path, header: str, *rows: str) -> Path:
    """A CSV file from literal lines."""
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path
