"""`make bench`: label-free estimation over the sample at --scale 5 (~10M predictions) against the slice table on
the same rows (per line and week, every metric), interleaved; the exact mode once for comparison.

LINEPROOF_BENCH_SCALE=1 runs it on the 2M-row sample; LINEPROOF_BENCH_SAMPLE=DIR reuses a built sample.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).parents[2]
sys.path.insert(0, str(ROOT))

from tests.bench.bench_foundation import load_average  # noqa: E402

SCALE = float(os.environ.get("LINEPROOF_BENCH_SCALE", 5))
PAIRS = int(os.environ.get("LINEPROOF_BENCH_REPEATS", 5))
REFERENCE = (datetime(2026, 5, 4), datetime(2026, 7, 27))


def _triage_and_impact(project) -> dict:
    """Triage's cost on top of the drift matrix (per line, the firmware weeks), and one 50k-row impact scoring."""
    from app.core.analysis.drift import DriftQuery, compute_drift
    from app.core.analysis.triage import triage_drift
    from app.core.models.impact import measure_impact

    current = (datetime(2026, 9, 7), datetime(2026, 10, 5))
    drift_s, triage_s = [], []
    for _ in range(3):
        start = time.perf_counter()
        drift = compute_drift(project, DriftQuery(REFERENCE, current, by=("line",)))
        drift_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        triage = triage_drift(project, drift)
        triage_s.append(time.perf_counter() - start)
    start = time.perf_counter()
    impact = measure_impact(project, {"line": "P2-L02"}, "contact_tip_temp_c", REFERENCE, current)
    return {"drift_s": statistics.median(drift_s), "triage_s": statistics.median(triage_s),
            "local": triage.local().height, "impact_s": time.perf_counter() - start, "impact_rows": impact.rows,
            "flip_share": impact.flip_share}


def main() -> int:
    """Build (or reuse) the sample, then time slices and estimates in turn."""
    from app.core.analysis.estimate import EstimateQuery, compute_estimates
    from app.core.analysis.slices import SliceQuery, compute_slices
    from app.core.store.project import Project
    from app.sample.build import build_sample

    reuse = os.environ.get("LINEPROOF_BENCH_SAMPLE")
    workdir = Path(tempfile.mkdtemp(prefix="lineproof-bench-estimate-"))
    folder = Path(reuse) if reuse else workdir / "sample"
    results: dict = {"scale": SCALE}
    try:
        if not reuse:
            start = time.perf_counter()
            build_sample(folder, scale=SCALE)
            results["build_s"] = time.perf_counter() - start
        results["load_before"] = load_average()
        slices, estimates = [], []
        with Project.open(folder, read_only=True) as project:
            results["rows"] = project.cursor().execute(
                "SELECT count(*) FROM predictions WHERE version_id = 'weld-defect:v1'").fetchall()[0][0]
            slice_query = SliceQuery("weld-defect:v1", ("line",), "week")
            estimate_query = EstimateQuery("weld-defect:v1", REFERENCE, ("line",), "week")
            for _ in range(PAIRS):
                start = time.perf_counter()
                compute_slices(project, slice_query)
                slices.append(time.perf_counter() - start)
                start = time.perf_counter()
                table = compute_estimates(project, estimate_query)
                estimates.append(time.perf_counter() - start)
            results["bounded"] = table.bounded
            results["windows"] = table.rows.height
            results["auc_max_error"] = table.rows["auc_max_error"].max()
            results["count_max_error"] = table.rows["count_max_error"].max()
            start = time.perf_counter()
            exact = compute_estimates(project, EstimateQuery("weld-defect:v1", REFERENCE, ("line",), "week",
                                                             mode="exact"))
            results["exact_s"] = time.perf_counter() - start
            results["largest_auc_difference"] = (exact.rows["auc"] - table.rows["auc"]).abs().max()
            results["largest_recall_difference"] = (exact.rows["recall"] - table.rows["recall"]).abs().max()
            results |= _triage_and_impact(project)
        ratios = [e / s for e, s in zip(estimates, slices, strict=True)]
        results |= {"slices_s": statistics.median(slices), "estimate_s": statistics.median(estimates),
                    "ratio": statistics.median(ratios), "ratio_range": (min(ratios), max(ratios)),
                    "load_after": load_average()}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"Estimation benchmark, sample at scale {SCALE:g} = {results['rows']:,} predictions, per line and week "
          f"({results['windows']} windows), {PAIRS} interleaved pairs (load {results['load_before']:.2f} -> "
          f"{results['load_after']:.2f})")
    print(f"  lineproof slices (all metrics, intervals)   {results['slices_s']:7.2f} s   (reference)")
    mode = "bounded" if results["bounded"] else "exact"
    print(f"  lineproof estimate ({mode}, auto mode)       {results['estimate_s']:7.2f} s   = {results['ratio']:.2f}x "
          f"median (range {results['ratio_range'][0]:.2f}-{results['ratio_range'][1]:.2f}; target <= 2x)")
    print(f"    largest bounds: ROC AUC +-{results['auc_max_error']:.4f}, expected counts +-"
          f"{results['count_max_error']:.1f} rows")
    print(f"  lineproof estimate --exact (once)          {results['exact_s']:7.2f} s   (largest difference to the "
          f"default: AUC {results['largest_auc_difference']:.4f}, recall {results['largest_recall_difference']:.4f})")
    print(f"  drift matrix per line (firmware weeks)       {results['drift_s']:7.2f} s;  triage on top "
          f"{results['triage_s']:.2f} s (target <= 1 s; {results['local']} local cell(s))")
    print(f"  impact: {results['impact_rows']:,} rows re-scored twice  {results['impact_s']:7.2f} s   (target <= 5 s; "
          f"{results['flip_share']:.1%} of P2-L02's decisions flip)")
    out = ROOT / "bench-results"
    out.mkdir(exist_ok=True)
    (out / "estimate.json").write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
