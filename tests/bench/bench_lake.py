"""`make bench`: a hive-partitioned Parquet lake attached (not copied) against the same rows imported.

Per size (LINEPROOF_BENCH_LAKE_SIZES, default 10M and 30M rows): attach time and the project file's growth;
`slices --by line` on the imported copy and on the attached lake (DuckDB), interleaved pairs, each in its own
process, with its peak memory (the process and its children, sampled); bounded drift on the attached lake; and
the same two on Spark local[2] (the JVM counts: it is this PC's memory in local mode).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

ROOT = Path(__file__).parents[2]
sys.path.insert(0, str(ROOT))

from tests.bench.bench_foundation import load_average, make_labels, make_log  # noqa: E402

SIZES = [int(s) for s in os.environ.get("LINEPROOF_BENCH_LAKE_SIZES", "10000000,30000000").split(",")]
PAIRS = int(os.environ.get("LINEPROOF_BENCH_REPEATS", 5))
SPARK = os.environ.get("LINEPROOF_BENCH_SPARK", "1") == "1"

CHILD = r"""
import json, sys, threading, time, psutil
peak = [0]
def watch():
    me = psutil.Process()
    while True:
        try:
            rss = me.memory_info().rss + sum(c.memory_info().rss for c in me.children(recursive=True))
        except psutil.Error:
            rss = 0
        peak[0] = max(peak[0], rss)
        time.sleep(0.05)
threading.Thread(target=watch, daemon=True).start()
from datetime import datetime
from app.core.store.project import Project
from app.core.analysis.slices import SliceQuery, compute_slices
from app.core.analysis.drift import DriftQuery, compute_drift
what, folder, log, engine = sys.argv[1], sys.argv[2], sys.argv[3] or None, sys.argv[4] or None
def run(project):
    if what == "slices":
        return compute_slices(project, SliceQuery("weld-defect:v1", ("line",), log=log, engine=engine))
    return compute_drift(project, DriftQuery((datetime(2026, 5, 4), datetime(2026, 6, 1)),
                                             (datetime(2026, 6, 1), datetime(2026, 12, 31)), by=("line",),
                                             mode="bounded", log=log, engine=engine))
with Project.open_snapshot(folder) as project:
    run(project)  # warm-up: Spark's start and the first read of the files are not the query
    start = time.perf_counter()
    run(project)
    seconds = time.perf_counter() - start
time.sleep(0.1)
print(json.dumps({"seconds": seconds, "peak_mb": peak[0] / 1e6}))
"""


def child(what: str, folder: Path, log: str = "", engine: str = "") -> dict:
    """Run one analysis in a fresh process; its time (without start-up) and peak memory with its children."""
    out = subprocess.run([sys.executable, "-c", CHILD, what, str(folder), log, engine], capture_output=True,
                         text=True, cwd=ROOT, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def build(workdir: Path, rows: int) -> tuple[Path, int]:
    """The log as one Parquet file and as a lake (plant=/line=/ folders), a project with the copy imported and
    the lake attached; returns (project folder, project file growth of the attach in bytes)."""
    from app.core.engine.attach import attach_log
    from app.core.store.ingest import LabelMapping, PredictionMapping, import_labels, import_predictions
    from app.core.store.project import Project

    log, labels = workdir / "log.parquet", workdir / "labels.parquet"
    make_log(log, rows)
    make_labels(log, labels)
    con = duckdb.connect()
    con.execute(f"COPY (SELECT * FROM read_parquet('{log}')) TO '{workdir / 'lake'}' "
                "(FORMAT parquet, PARTITION_BY (plant, line))")
    (workdir / "lake-labels").mkdir()
    shutil.copy(labels, workdir / "lake-labels" / "labels.parquet")
    con.close()
    project = Project.create(workdir / "proj", "Lake bench", site="P")
    try:
        mapping = PredictionMapping(predicted_label="predicted_label",
                                    slices={d: d for d in ("plant", "line", "asset", "shift", "firmware")})
        import_predictions(project, log, mapping)
        import_labels(project, labels, LabelMapping())
    finally:
        project.close()
    size = (workdir / "proj" / "project.duckdb").stat().st_size
    start = time.perf_counter()
    with Project.open(workdir / "proj") as project:
        attach_log(project, str(workdir / "lake"), "lake", labels=str(workdir / "lake-labels"))
    print(f"  attach: {time.perf_counter() - start:.1f} s (the one-pass check of {rows:,} rows)")
    return workdir / "proj", (workdir / "proj" / "project.duckdb").stat().st_size - size


def main() -> int:
    """Print the figures per size."""
    for rows in SIZES:
        with tempfile.TemporaryDirectory(prefix="lineproof-lake-") as tmp:
            workdir = Path(tmp)
            print(f"{rows:,} rows (load {load_average():.2f})")
            folder, growth = build(workdir, rows)
            lake_mb = sum(p.stat().st_size for p in (workdir / "lake").rglob("*.parquet")) / 1e6
            print(f"  lake {lake_mb:,.0f} MB in Parquet; project file grew {growth / 1e6:.2f} MB on attach")
            own, attached, ratios = [], [], []
            for _ in range(PAIRS):
                a, b = child("slices", folder), child("slices", folder, "lake", "duckdb")
                own.append(a)
                attached.append(b)
                ratios.append(b["seconds"] / a["seconds"])
            print(f"  slices by line, imported: median {statistics.median(r['seconds'] for r in own):.2f} s, "
                  f"peak {max(r['peak_mb'] for r in own):.0f} MB")
            print(f"  slices by line, attached (DuckDB): median {statistics.median(r['seconds'] for r in attached):.2f}"
                  f" s, peak {max(r['peak_mb'] for r in attached):.0f} MB; ratio median {statistics.median(ratios):.2f}x "
                  f"(range {min(ratios):.2f}-{max(ratios):.2f}, target <= 1.5x), load {load_average():.2f}")
            drift = child("drift", folder, "lake", "duckdb")
            print(f"  drift (bounded, 9 features x 12 lines), attached (DuckDB): {drift['seconds']:.2f} s, peak "
                  f"{drift['peak_mb']:.0f} MB")
            if SPARK:
                spark = child("slices", folder, "lake", "spark")
                sdrift = child("drift", folder, "lake", "spark")
                print(f"  Spark local[2] (JVM included): slices {spark['seconds']:.1f} s, peak {spark['peak_mb']:.0f} MB; "
                      f"drift {sdrift['seconds']:.1f} s, peak {sdrift['peak_mb']:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
