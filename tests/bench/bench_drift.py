"""`make bench`: drift matrix (every feature x 12 lines) over 10M predictions, and Evidently's data drift
report on the same windows converted to pandas, when Evidently is installed (bench only, never a dependency).
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).parents[2]
sys.path.insert(0, str(ROOT))

from tests.bench.bench_foundation import REPEATS, ROWS, load_average, make_log  # noqa: E402


def windows(project) -> tuple[tuple[datetime, datetime], tuple[datetime, datetime], int, int]:
    """Reference = the first 40% of the log's time span, current = the last 25%, from the data itself (a smaller
    benchmark has a shorter span); with the row count of each."""
    with project.reading() as con:
        first, last = con.execute("SELECT min(ts), max(ts) FROM predictions").fetchall()[0]
        span = last - first
        reference = (first, first + span * 0.4)
        current = (last - span * 0.25, last + timedelta(seconds=1))  # the last row included
        counts = [con.execute("SELECT count(*) FROM predictions WHERE ts >= ? AND ts < ?", list(w)).fetchall()[0][0]
                  for w in (reference, current)]
    return reference, current, counts[0], counts[1]
EVIDENTLY = """
import sys, time, duckdb
t0 = time.perf_counter()
con = duckdb.connect(sys.argv[1], read_only=True)
feats = sys.argv[2].split(",")
cols = ", ".join(['line'] + feats)
ref = con.sql(f"SELECT {cols} FROM predictions WHERE ts >= '{sys.argv[3]}' AND ts < '{sys.argv[4]}'").df()
cur = con.sql(f"SELECT {cols} FROM predictions WHERE ts >= '{sys.argv[5]}' AND ts < '{sys.argv[6]}'").df()
t1 = time.perf_counter()
from evidently import Report
from evidently.presets import DataDriftPreset
for line in sorted(ref["line"].unique()):
    # Evidently's run(current_data, reference_data): the current window first.
    Report([DataDriftPreset()]).run(cur[cur.line == line][feats], ref[ref.line == line][feats])
print(t1 - t0, time.perf_counter() - t1)
"""


def main() -> int:
    """Build a 10M-row project, time the drift matrix, then Evidently if a venv with it is given."""
    from app.core.analysis.drift import DriftQuery, compute_drift
    from app.core.store.ingest import PredictionMapping, import_predictions
    from app.core.store.project import Project

    evidently_python = sys.argv[1] if len(sys.argv) > 1 else None
    workdir = Path(tempfile.mkdtemp(prefix="lineproof-bench-drift-"))
    results: dict = {"rows": ROWS, "load_before": load_average()}
    try:
        log = workdir / "log.parquet"
        make_log(log, ROWS)
        with Project.create(workdir / "proj", "bench") as project:
            import_predictions(project, log, PredictionMapping(predicted_label="predicted_label", slices={
                d: d for d in ("plant", "line", "asset", "shift", "firmware")}))
        times = []
        with Project.open(workdir / "proj", read_only=True) as project:
            reference, current, n_ref, n_cur = windows(project)
            if not n_ref or not n_cur:
                print(f"Refused: the {'reference' if not n_ref else 'current'} window is empty at {ROWS:,} rows; "
                      "nothing was measured.")
                return 2
            results.update(reference=reference, current=current, rows_reference=n_ref, rows_current=n_cur)
            for _ in range(REPEATS):
                start = time.perf_counter()
                table = compute_drift(project, DriftQuery(reference, current, by=("line",)))
                times.append(time.perf_counter() - start)
        results["cells"] = table.rows.height
        results["features"] = table.rows["feature"].n_unique()
        results["ours_s"] = statistics.median(times)
        if evidently_python:
            feats = ",".join(sorted(table.rows["feature"].unique().to_list()))
            out = subprocess.run([evidently_python, "-c", EVIDENTLY, str(workdir / "proj" / "project.duckdb"), feats,
                                  *(d.isoformat(sep=" ") for d in (*reference, *current))],
                                 capture_output=True, text=True)
            if out.returncode == 0:
                load, report = map(float, out.stdout.split())
                results["evidently_load_s"], results["evidently_s"] = load, report
            else:
                results["evidently_error"] = out.stderr.strip().splitlines()[-1:]
        results["load_after"] = load_average()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"Drift benchmark, {ROWS:,} predictions: {results['features']} features x 12 lines = {results['cells']} "
          f"cells (load {results['load_before']:.2f} -> {results['load_after']:.2f}); reference "
          f"{results['rows_reference']:,} rows, current {results['rows_current']:,} rows")
    print(f"  lineproof drift matrix                 {results['ours_s']:7.2f} s   (target <= 3 s)")
    if "evidently_s" in results:
        total = results["evidently_load_s"] + results["evidently_s"]
        print(f"  Evidently DataDriftPreset per line     {total:7.2f} s   (pandas load {results['evidently_load_s']:.1f} s"
              f" + reports {results['evidently_s']:.1f} s) = {total / results['ours_s']:.1f}x slower than lineproof")
    else:
        print("  Evidently: not run (give a Python with evidently installed: "
              "python tests/bench/bench_drift.py /path/to/venv/bin/python)", results.get("evidently_error", ""))
    out_dir = ROOT / "bench-results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "drift.json").write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
