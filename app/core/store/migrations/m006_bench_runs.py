"""Schema 6: benchmark runs with their latencies, config and hardware fingerprint."""

from __future__ import annotations

import duckdb

SQL = """
CREATE TABLE bench_runs (
    run_id VARCHAR PRIMARY KEY, version_id VARCHAR NOT NULL, model_sha256 VARCHAR NOT NULL,
    runtime VARCHAR NOT NULL, device VARCHAR NOT NULL, hint VARCHAR, mode VARCHAR, batch INTEGER,
    site VARCHAR, status VARCHAR NOT NULL, reason VARCHAR, started_at TIMESTAMP NOT NULL,
    load_ms DOUBLE, compile_ms DOUBLE, first_ms DOUBLE,
    p50_ms DOUBLE, p90_ms DOUBLE, p95_ms DOUBLE, p99_ms DOUBLE, p999_ms DOUBLE, max_ms DOUBLE, mean_ms DOUBLE,
    throughput DOUBLE, inferences BIGINT, measure_s DOUBLE, peak_rss_mb DOUBLE,
    background_load DOUBLE, noisy BOOLEAN, fingerprint_id VARCHAR, fingerprint_json VARCHAR,
    config_json VARCHAR NOT NULL, details_json VARCHAR, latencies_ms DOUBLE[])
"""


def apply(con: duckdb.DuckDBPyConnection) -> None:
    """Create the benchmark runs table."""
    con.execute(SQL)
