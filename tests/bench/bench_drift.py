"""`make bench`: the drift matrix (every feature x 12 lines) over 10M predictions against Evidently's
DataDriftPreset per line on the same windows, interleaved pairs, each side in its own process (its peak RSS is its
own). Two logs: continuous features (20 sensors drawn from normal and log-normal distributions, every value
distinct, as real sensors are) and the quantised features of bench_foundation. Targets (issue #23), continuous case:
<= 3 s, peak RSS <= 500 MB, >= 100x faster than Evidently.

LINEPROOF_BENCH_ROWS sets the size (default 10M); LINEPROOF_BENCH_PAIRS the pairs (5); LINEPROOF_BENCH_CASES
which logs (continuous,quantised). Evidently takes about 4 minutes per run on the continuous log on two cores. Give a Python with
evidently installed as the first argument (make bench builds .bench-evidently); without it only Lineproof is timed.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

import duckdb

ROOT = Path(__file__).parents[2]
sys.path.insert(0, str(ROOT))

from tests.bench.bench_foundation import ROWS, load_average, make_log  # noqa: E402
from tests.bench.peak import PEAK_FUNCTION  # noqa: E402

PAIRS = int(os.environ.get("LINEPROOF_BENCH_PAIRS", 5))
CASES = os.environ.get("LINEPROOF_BENCH_CASES", "continuous,quantised").split(",")
# (name, mean, std, log-normal?) of the 20 continuous sensors.
SENSORS = [("current_a", 220, 12, False), ("voltage_v", 25.5, 0.9, False), ("wire_feed_m_min", 9.8, 0.45, False),
           ("travel_speed", 13.5, 0.8, False), ("gas_flow", 16.6, 0.9, False), ("tip_temp", 300, 5, False),
           ("ambient_temp", 22, 3, False), ("humidity", 55, 8, False), ("arc_stability", -0.7, 0.35, True),
           ("clamp_force_kn", 12, 0.6, False), ("seam_gap_mm", -1.2, 0.4, True), ("plate_mm", 2.0, 0.05, False),
           ("torch_angle", 45, 1.5, False), ("stickout_mm", 15, 0.7, False), ("coolant_temp", 31, 1.2, False),
           ("vibration_rms", -2.0, 0.5, True), ("spatter_index", -3.0, 0.8, True), ("bead_width_mm", 6.5, 0.3, False),
           ("penetration_mm", 1.9, 0.15, False), ("cycle_time_s", 41, 2.5, False)]


def make_continuous_log(path: Path, rows: int) -> None:
    """12 lines, 20 continuous sensors drawn with numpy (seeded: the same log every run; every value distinct), in
    1M-row chunks; in the last 30% of the log tip_temp on line L05 reads 25 K low (a calibration change) and
    ambient_temp rises by 4 K on every line (season)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(23)
    writer = None
    start = np.datetime64("2026-05-04T00:00:00", "ms")
    for first in range(0, rows, 1_000_000):
        i = np.arange(first, min(first + 1_000_000, rows))
        line = i % 12
        late = i > rows * 0.7
        columns = {"record_id": pa.array(np.char.add("B", np.char.zfill(i.astype(str), 10))),
                   "ts": pa.array(start + (i * 1500).astype("timedelta64[ms]")),
                   "model_version": pa.array(np.full(len(i), "weld-defect:v1")),
                   "score": pa.array(rng.random(len(i))),
                   "line": pa.array(np.char.add("L", np.char.zfill((line + 1).astype(str), 2)))}
        for name, mean, std, lognormal in SENSORS:
            value = rng.normal(mean, std, len(i)) + line * std / 10
            value = np.exp(value) if lognormal else value
            if name == "tip_temp":
                value = value - np.where(late & (line == 4), 25.0, 0.0)
            if name == "ambient_temp":
                value = value + np.where(late, 4.0, 0.0)
            columns[name] = pa.array(value)
        table = pa.table(columns)
        writer = writer or pq.ParquetWriter(str(path), table.schema)
        writer.write_table(table)
    if writer:
        writer.close()


def windows(db: Path) -> tuple[tuple[datetime, datetime], tuple[datetime, datetime], int, int]:
    """Reference = the first 40% of the log's time span, current = the last 25%, from the data itself (a smaller
    benchmark has a shorter span); with the row count of each."""
    con = duckdb.connect(str(db), read_only=True)
    first, last = con.execute("SELECT min(ts), max(ts) FROM predictions").fetchall()[0]
    span = last - first
    reference = (first, first + span * 0.4)
    current = (last - span * 0.25, last + timedelta(seconds=1))  # the last row included
    counts = [con.execute("SELECT count(*) FROM predictions WHERE ts >= ? AND ts < ?", list(w)).fetchall()[0][0]
              for w in (reference, current)]
    con.close()
    return reference, current, counts[0], counts[1]


OURS = PEAK_FUNCTION + """
import sys, time, resource
from datetime import datetime
from app.core.analysis.drift import DriftQuery, compute_drift
from app.core.store.project import Project
ref, cur = [tuple(datetime.fromisoformat(v) for v in w.split('..')) for w in sys.argv[2:4]]
with Project.open(sys.argv[1], read_only=True) as project:
    t0 = time.perf_counter()
    table = compute_drift(project, DriftQuery(ref, cur, by=('line',), mode=sys.argv[4]))
    took = time.perf_counter() - t0
rows = table.rows
print(took, _lineproof_peak_mb(), rows.height, rows['feature'].n_unique(),
      int(table.bounded), rows['ks_d_bound'].max() or 0, rows['wasserstein_norm_bound'].max() or 0,
      int(rows['drifted'].fill_null(False).sum()))
"""

EVIDENTLY = PEAK_FUNCTION + """
import sys, time, resource, duckdb
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
print(t1 - t0, time.perf_counter() - t1, _lineproof_peak_mb())
"""


def _ours(db: Path, reference, current, mode: str) -> list[float]:
    span = ["..".join(d.isoformat(sep=" ") for d in w) for w in (reference, current)]
    out = subprocess.run([sys.executable, "-c", OURS, str(db.parent), *span, mode], capture_output=True, text=True,
                         cwd=ROOT, check=True)
    return [float(v) for v in out.stdout.split()]


def _evidently(python: str, db: Path, features: list[str], reference, current) -> list[float] | None:
    out = subprocess.run([python, "-c", EVIDENTLY, str(db), ",".join(features),
                          *(d.isoformat(sep=" ") for d in (*reference, *current))], capture_output=True, text=True)
    if out.returncode:
        print("  Evidently failed:", (out.stderr.strip().splitlines() or ["?"])[-1])
        return None
    return [float(v) for v in out.stdout.split()]


def _case(name: str, log: Path, work: Path, evidently: str | None, mapping) -> dict:
    """Import the log, then PAIRS interleaved (Lineproof, Evidently) runs on the same windows."""
    from app.core.store.ingest import import_predictions
    from app.core.store.project import Project

    folder = work / name
    with Project.create(folder, name) as project:
        import_predictions(project, log, mapping)
    db = folder / "project.duckdb"
    reference, current, n_ref, n_cur = windows(db)
    if not n_ref or not n_cur:
        raise SystemExit(f"Refused: the {'reference' if not n_ref else 'current'} window is empty at {ROWS:,} rows; "
                         "nothing was measured.")
    con = duckdb.connect(str(db), read_only=True)
    features = [r[0] for r in con.execute("SELECT name FROM log_columns WHERE role = 'feature' ORDER BY 1").fetchall()]
    con.close()
    result: dict = {"case": name, "rows_reference": n_ref, "rows_current": n_cur, "load_before": load_average(),
                    "ours": [], "evidently": []}
    for _ in range(PAIRS):
        result["ours"].append(_ours(db, reference, current, "auto"))
        if evidently:
            e = _evidently(evidently, db, features, reference, current)
            if e is None:
                evidently = None
            else:
                result["evidently"].append(e)
    result["exact_once"] = _ours(db, reference, current, "exact")  # the cost the bounded summary avoids
    result["load_after"] = load_average()
    _report(result)
    return result


def _report(r: dict) -> None:
    ours = r["ours"]
    t = [o[0] for o in ours]
    seconds, (_, cells, feats, bounded, ks_b, w_b, drifted) = statistics.median(t), ours[0][1:]
    print(f"[{r['case']}] {ROWS:,} predictions, {int(feats)} features x 12 lines = {int(cells)} cells; reference "
          f"{r['rows_reference']:,} rows, current {r['rows_current']:,}; load {r['load_before']:.2f} -> "
          f"{r['load_after']:.2f}")
    print(f"  lineproof drift matrix ({'bounded' if bounded else 'exact'})  median {seconds:6.2f} s (range "
          f"{min(t):.2f}-{max(t):.2f}, target <= 3 s), peak RSS {max(o[1] for o in ours):,.0f} MB (target <= 500), "
          f"largest bounds: KS +-{ks_b:.4f}, W/std +-{w_b:.4f}; {int(drifted)} cells drifted")
    ex = r["exact_once"]
    print(f"  exact mode, once                  {ex[0]:6.2f} s, peak RSS {ex[1]:,.0f} MB, {int(ex[7])} cells drifted")
    if r["evidently"]:
        ev = [e[0] + e[1] for e in r["evidently"]]
        ratios = [e / o for e, o in zip(ev, t, strict=True)]
        print(f"  Evidently DataDriftPreset per line median {statistics.median(ev):6.1f} s (range {min(ev):.1f}-"
              f"{max(ev):.1f}; pandas load included), peak RSS {max(e[2] for e in r['evidently']):,.0f} MB")
        print(f"  ratio Evidently / lineproof       median {statistics.median(ratios):6.0f}x (range {min(ratios):.0f}-"
              f"{max(ratios):.0f}; target >= 100x)")
    else:
        print("  Evidently: not run (python tests/bench/bench_drift.py /path/to/venv-with-evidently/bin/python)")


def main() -> int:
    """Both cases, continuous first; figures to stdout and bench-results/drift.json."""
    from app.core.store.ingest import PredictionMapping

    evidently = sys.argv[1] if len(sys.argv) > 1 else None
    work = Path(tempfile.mkdtemp(prefix="lineproof-bench-drift-"))
    results = []
    try:
        if "continuous" in CASES:
            make_continuous_log(work / "continuous.parquet", ROWS)
            results.append(_case("continuous", work / "continuous.parquet", work, evidently,
                                 PredictionMapping(slices={"line": "line"})))
        if "quantised" in CASES:
            make_log(work / "quantised.parquet", ROWS)
            results.append(_case("quantised", work / "quantised.parquet", work, evidently, PredictionMapping(
                predicted_label="predicted_label",
                slices={d: d for d in ("plant", "line", "asset", "shift", "firmware")})))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out_dir = ROOT / "bench-results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "drift.json").write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
