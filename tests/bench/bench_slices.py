"""`make bench`: slice table over 10M predictions (line x asset, every binary metric with intervals) against a
bare DuckDB GROUP BY on the same tables, and against scikit-learn per group on pandas.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).parents[2]
sys.path.insert(0, str(ROOT))

from tests.bench.bench_foundation import REPEATS, ROWS, load_average, make_labels, make_log  # noqa: E402

# Like with like: the same counts the slice table takes from the log (rows, labelled, positives, true and false
# alarms by the line's own decisions, squared error), over the same LEFT JOIN (unlabelled rows count as coverage).
BARE = """SELECT line, asset, count(*) AS n, count(l.label) AS labelled, sum(l.label) AS positives,
       count(*) FILTER (WHERE l.label = 1 AND p.predicted_label = 1) AS tp,
       count(*) FILTER (WHERE l.label = 0 AND p.predicted_label = 1) AS fp,
       sum((p.score - l.label) ^ 2) AS se
FROM predictions p LEFT JOIN labels l USING (record_id) GROUP BY line, asset"""
# The previous reference: an inner join and five ratios, no coverage (kept for comparison with older figures).
BARE_INNER = """SELECT line, asset, count(*) AS n,
       avg(((p.score >= 0.5)::INT = l.label)::INT) AS accuracy,
       sum(((p.score >= 0.5) AND l.label = 1)::INT) / nullif(sum((p.score >= 0.5)::INT), 0) AS precision,
       sum(((p.score >= 0.5) AND l.label = 1)::INT) / nullif(sum(l.label), 0) AS recall,
       sum(((p.score >= 0.5) AND l.label = 0)::INT) / nullif(sum(1 - l.label), 0) AS fpr
FROM predictions p JOIN labels l USING (record_id) GROUP BY line, asset"""
PAIRS = max(REPEATS, 5)


def sklearn_per_group(project) -> tuple[float, float]:
    """(load seconds, compute seconds) of the pandas + scikit-learn way."""
    import numpy as np
    from sklearn import metrics as skm

    start = time.perf_counter()
    with project.reading() as con:
        frame = con.sql("SELECT p.line, p.asset, p.score, l.label FROM predictions p "
                        "JOIN labels l USING (record_id)").df()
    loaded = time.perf_counter()

    def per_group(g):
        y, s = g["label"].to_numpy(), g["score"].to_numpy()
        yhat = (s >= 0.5).astype(float)
        tn, fp, fn, tp = skm.confusion_matrix(y, yhat, labels=[0, 1]).ravel()
        return {"n": len(y), "accuracy": skm.accuracy_score(y, yhat),
                "precision": skm.precision_score(y, yhat, zero_division=np.nan),
                "recall": skm.recall_score(y, yhat, zero_division=np.nan),
                "f1": skm.f1_score(y, yhat, zero_division=np.nan), "fpr": fp / (fp + tn),
                "auc": skm.roc_auc_score(y, s), "brier": skm.brier_score_loss(y, s)}

    result = [per_group(g) for _, g in frame.groupby(["line", "asset"])]
    assert len(result) > 0
    return loaded - start, time.perf_counter() - loaded


def main() -> int:
    """Build a 10M-row project, then time the three ways."""
    from app.core.analysis.slices import SliceQuery, compute_slices
    from app.core.store.ingest import LabelMapping, PredictionMapping, import_labels, import_predictions
    from app.core.store.project import Project

    workdir = Path(tempfile.mkdtemp(prefix="lineproof-bench-slices-"))
    results: dict = {"rows": ROWS, "load_before": load_average()}
    try:
        log, labels = workdir / "log.parquet", workdir / "labels.parquet"
        make_log(log, ROWS)
        make_labels(log, labels)
        with Project.create(workdir / "proj", "bench") as project:
            import_predictions(project, log, PredictionMapping(predicted_label="predicted_label",
                slices={d: d for d in ("plant", "line", "asset", "shift", "firmware")}))
            import_labels(project, labels, LabelMapping())
        ours, fast, bare, inner = [], [], [], []
        with Project.open(workdir / "proj", read_only=True) as project:
            query = SliceQuery("weld-defect:v1", by=("line", "asset"), min_support=30)
            for _ in range(PAIRS):  # interleaved
                with project.reading() as con:
                    start = time.perf_counter()
                    con.execute(BARE).fetchall()
                    bare.append(time.perf_counter() - start)
                start = time.perf_counter()
                compute_slices(project, replace(query, auc=False, latency=False))
                fast.append(time.perf_counter() - start)
                start = time.perf_counter()
                table = compute_slices(project, query)
                ours.append(time.perf_counter() - start)
                with project.reading() as con:
                    start = time.perf_counter()
                    con.execute(BARE_INNER).fetchall()
                    inner.append(time.perf_counter() - start)
            results["slices"] = table.slices.height
            if importlib.util.find_spec("pandas") and importlib.util.find_spec("sklearn"):
                results["pandas_load_s"], results["sklearn_s"] = sklearn_per_group(project)
            else:
                results["pandas_load_s"] = results["sklearn_s"] = None
        results["ours_s"], results["bare_s"] = statistics.median(ours), statistics.median(bare)
        results["bare_inner_s"] = statistics.median(inner)
        results["ratio_vs_bare"] = results["ours_s"] / results["bare_s"]
        results["no_auc_s"] = statistics.median(fast)
        no_auc_ratios = [f / b for f, b in zip(fast, bare, strict=True)]
        results["no_auc_ratio"] = statistics.median(no_auc_ratios)
        results["no_auc_ratio_range"] = (min(no_auc_ratios), max(no_auc_ratios))
        results["load_after"] = load_average()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"Slice benchmark, {ROWS:,} predictions, line x asset = {results['slices']} slices, {PAIRS} interleaved "
          f"runs (load {results['load_before']:.2f} -> {results['load_after']:.2f})")
    print(f"  bare DuckDB GROUP BY, same counts (LEFT JOIN)   {results['bare_s']:7.2f} s   (reference)")
    print(f"  lineproof slices without AUC and latency        {results['no_auc_s']:7.2f} s   "
          f"= {results['no_auc_ratio']:.2f}x median (range {results['no_auc_ratio_range'][0]:.2f}-"
          f"{results['no_auc_ratio_range'][1]:.2f}; target <= 1.2x)")
    print(f"  lineproof slices (all metrics, intervals, AUC)  {results['ours_s']:7.2f} s   "
          f"= {results['ratio_vs_bare']:.2f}x (target <= 3x)")
    print(f"  older reference: inner join, 5 ratios            {results['bare_inner_s']:7.2f} s")
    if results["sklearn_s"] is not None:
        total = results["pandas_load_s"] + results["sklearn_s"]
        print(f"  pandas + scikit-learn per group                 {total:7.2f} s   "
              f"(load {results['pandas_load_s']:.1f} s + metrics {results['sklearn_s']:.1f} s) "
              f"= {total / results['ours_s']:.0f}x slower than lineproof")
    else:
        print("  pandas + scikit-learn per group: pandas not installed (pip install '.[bench]')")
    out = ROOT / "bench-results"
    out.mkdir(exist_ok=True)
    (out / "slices.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
