"""Schema 1: the first released layout (models, versions, datasets, imports, the prediction log, audit)."""

from __future__ import annotations

import duckdb

from app.core.store.migrations._script import run_script

SQL = """
CREATE TABLE schema_info (version INTEGER NOT NULL, migrated_at TIMESTAMP NOT NULL, app_version VARCHAR);
CREATE TABLE models (
    model_id VARCHAR PRIMARY KEY, name VARCHAR NOT NULL, task VARCHAR NOT NULL,
    description VARCHAR DEFAULT '', created_at TIMESTAMP NOT NULL);
CREATE TABLE model_versions (
    version_id VARCHAR PRIMARY KEY, model_id VARCHAR NOT NULL, version VARCHAR NOT NULL,
    format VARCHAR NOT NULL, sha256 VARCHAR NOT NULL, artifact_path VARCHAR NOT NULL,
    size_bytes BIGINT NOT NULL, threshold DOUBLE DEFAULT 0.5,
    inputs_json VARCHAR, outputs_json VARCHAR, lineage_json VARCHAR, card_json VARCHAR,
    created_at TIMESTAMP NOT NULL);
CREATE TABLE datasets (
    dataset_id VARCHAR PRIMARY KEY, name VARCHAR NOT NULL, kind VARCHAR NOT NULL,
    sha256 VARCHAR NOT NULL, artifact_path VARCHAR NOT NULL, row_count BIGINT NOT NULL,
    description VARCHAR DEFAULT '', created_at TIMESTAMP NOT NULL);
CREATE TABLE imports (
    import_id INTEGER PRIMARY KEY, kind VARCHAR NOT NULL, file_name VARCHAR NOT NULL,
    file_sha256 VARCHAR NOT NULL, row_count BIGINT NOT NULL, mapping_json VARCHAR,
    imported_at TIMESTAMP NOT NULL);
CREATE TABLE predictions (
    record_id VARCHAR NOT NULL, ts TIMESTAMP NOT NULL, version_id VARCHAR NOT NULL,
    score DOUBLE NOT NULL, predicted_label INTEGER, import_id INTEGER NOT NULL);
CREATE TABLE labels (
    record_id VARCHAR NOT NULL, label DOUBLE NOT NULL, labelled_at TIMESTAMP NOT NULL,
    import_id INTEGER NOT NULL);
CREATE TABLE log_columns (name VARCHAR PRIMARY KEY, role VARCHAR NOT NULL, dtype VARCHAR NOT NULL);
CREATE TABLE audit_log (
    seq BIGINT PRIMARY KEY, ts TIMESTAMP NOT NULL, actor VARCHAR NOT NULL, action VARCHAR NOT NULL,
    target VARCHAR NOT NULL, details_json VARCHAR);
"""


def apply(con: duckdb.DuckDBPyConnection) -> None:
    """Create the schema-1 tables."""
    run_script(con, SQL)
