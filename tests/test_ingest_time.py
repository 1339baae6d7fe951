"""Times are stored in UTC whatever the PC's zone: offsets in CSV text and zones in Parquet types are honoured,
a time without either is taken as UTC. Run in child processes with TZ set, as a plant PC in another zone would."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl
import pytest

ROOT = Path(__file__).parents[1]


def _lineproof(*args: str, tz: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TZ": tz}
    return subprocess.run([sys.executable, "-m", "app", *args], capture_output=True, text=True, env=env, cwd=ROOT)


def _stored(folder: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(folder / "project.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


@pytest.mark.parametrize("tz", ["Asia/Tokyo", "America/New_York"])
def test_csv_offsets_and_parquet_zones_are_stored_as_utc(tmp_path: Path, tz: str):
    folder = tmp_path / "p"
    assert _lineproof("init", str(folder), "--dimensions", "line", tz=tz).returncode == 0
    csv = tmp_path / "log.csv"
    csv.write_text("record_id,timestamp,model_version,score,line\n"
                   "a,2026-05-04T10:00:00+02:00,m:v1,0.2,L1\n"
                   "b,2026-05-04T08:30:00Z,m:v1,0.4,L1\n"
                   "c,2026-05-04 09:00:00,m:v1,0.6,L1\n")
    done = _lineproof("ingest", str(folder), str(csv), "-q", tz=tz)
    assert done.returncode == 0, done.stderr
    berlin = pl.DataFrame({"record_id": ["d"], "timestamp": [datetime(2026, 5, 4, 12, 0)], "model_version": ["m:v1"],
                           "score": [0.5], "line": ["L1"]}).with_columns(
        pl.col("timestamp").dt.replace_time_zone("Europe/Berlin"))
    berlin.write_parquet(tmp_path / "zoned.parquet")
    done = _lineproof("ingest", str(folder), str(tmp_path / "zoned.parquet"), "-q", tz=tz)
    assert done.returncode == 0, done.stderr
    labels = tmp_path / "labels.csv"
    labels.write_text("record_id,label,labelled_at\na,1,2026-05-05T00:30:00+02:00\n")
    done = _lineproof("labels", str(folder), str(labels), "-q", tz=tz)
    assert done.returncode == 0, done.stderr
    assert _stored(folder, "SELECT record_id, ts FROM predictions ORDER BY record_id") == [
        ("a", datetime(2026, 5, 4, 8, 0)), ("b", datetime(2026, 5, 4, 8, 30)), ("c", datetime(2026, 5, 4, 9, 0)),
        ("d", datetime(2026, 5, 4, 10, 0))]
    assert _stored(folder, "SELECT labelled_at FROM labels") == [(datetime(2026, 5, 4, 22, 30),)]
