"""Benchmark runs in the project database: one row per run, with its latencies, config and hardware."""

from __future__ import annotations

import json
from typing import Any

import duckdb
import polars as pl

SUMMARY_COLUMNS = ("run_id", "version_id", "runtime", "device", "hint", "mode", "batch", "site", "status",
                   "started_at", "compile_ms", "first_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "p999_ms",
                   "max_ms", "mean_ms", "throughput", "peak_rss_mb", "background_load", "noisy", "fingerprint_id",
                   "reason")


def insert_run(con: duckdb.DuckDBPyConnection, row: dict[str, Any]) -> None:
    """Store one run (inside the caller's audited transaction)."""
    names = list(row)
    con.execute(f"INSERT INTO bench_runs ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                [row[n] for n in names])


def list_runs(con: duckdb.DuckDBPyConnection, version_id: str | None = None, status: str | None = None
              ) -> pl.DataFrame:
    """Runs, newest first, without their latency arrays."""
    where, params = [], []
    if version_id:
        where.append("version_id = ?")
        params.append(version_id)
    if status:
        where.append("status = ?")
        params.append(status)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    return con.sql(f"SELECT {', '.join(SUMMARY_COLUMNS)} FROM bench_runs {clause} ORDER BY started_at DESC, run_id",
                   params=params).pl()


def run_detail(con: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, Any] | None:
    """Everything stored for one run, with config, fingerprint and latencies decoded."""
    frame = con.sql("SELECT * FROM bench_runs WHERE run_id = ?", params=[run_id]).pl()
    if frame.is_empty():
        return None
    row = frame.row(0, named=True)
    row["config"] = json.loads(row.pop("config_json"))
    row["fingerprint"] = json.loads(row.pop("fingerprint_json") or "{}")
    row["details"] = json.loads(row.pop("details_json") or "{}")
    row["latencies_ms"] = list(row["latencies_ms"] or [])
    return row


def compare_runs(con: duckdb.DuckDBPyConnection, run_ids: list[str], baseline: str | None = None) -> pl.DataFrame:
    """The chosen runs side by side, with p50/p99/throughput as ratios to the baseline (the first by default)."""
    frame = con.sql(f"SELECT {', '.join(SUMMARY_COLUMNS)} FROM bench_runs WHERE list_contains(?, run_id)",
                    params=[run_ids]).pl()
    order = {r: i for i, r in enumerate(run_ids)}
    frame = frame.with_columns(pl.col("run_id").replace_strict(order, default=len(order)).alias("_o")).sort("_o")
    base_id = baseline or (run_ids[0] if run_ids else None)
    base = frame.filter(pl.col("run_id") == base_id)
    if base.is_empty():
        return frame.drop("_o")
    b = base.row(0, named=True)
    ratio = {c: (pl.col(c) / b[c]).alias(f"{c}_vs_base") for c in ("p50_ms", "p99_ms", "throughput")
             if b[c]}
    return frame.with_columns(*ratio.values()).drop("_o")


def latency_histogram(latencies_ms: list[float], bins: int = 40) -> tuple[list[float], list[int], int]:
    """Bin edges and counts up to the 99.9th percentile, plus how many slower inferences lie beyond."""
    import numpy as np

    lat = np.asarray(latencies_ms, dtype=np.float64)
    if lat.size == 0:
        return [], [], 0
    top = float(np.percentile(lat, 99.9))
    low = float(lat.min())
    counts, edges = np.histogram(lat[lat <= top], bins=bins, range=(low, top if top > low else low + 1e-6))
    return edges.tolist(), counts.tolist(), int((lat > top).sum())


COMPARED = ("compile_ms", "first_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "p999_ms", "max_ms", "mean_ms",
            "throughput", "peak_rss_mb")


def compare_figures(runs: list[dict[str, Any]], baseline: int = 0) -> list[dict[str, Any]]:
    """Per figure: each run's value, and against the run at `baseline` its delta (run - baseline) and ratio
    (run / baseline; for throughput above 1 is better, for times and memory below 1 is)."""
    base = runs[baseline] if runs else {}
    rows = []
    for figure in COMPARED:
        row: dict[str, Any] = {"figure": figure}
        for i, r in enumerate(runs):
            value, ref = r.get(figure), base.get(figure)
            row[f"run{i}"] = value
            if i != baseline:
                both = value is not None and ref is not None
                row[f"delta{i}"] = value - ref if both else None
                row[f"ratio{i}"] = value / ref if both and ref else None
        rows.append(row)
    return rows
