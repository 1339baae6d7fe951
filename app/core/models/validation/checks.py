"""Criteria that are not metrics: runtime parity, the latency budget and the held-out data itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from app.core.models.validation.criteria import FAIL, INCONCLUSIVE, PASS, SKIPPED, Check, Criterion, combine
from app.core.models.validation.plan import DataRule, LatencyRule, ParityRule
from app.core.models.validation.scoring import RuntimeScores
from app.core.store.db import one
from app.core.store.sources import sql_ident, sql_literal


def parity_summary(ort: RuntimeScores, ov: RuntimeScores, threshold: float) -> dict[str, Any]:
    """How far OpenVINO's scores and decisions are from ONNX Runtime's on the same rows."""
    if ort.scores is None or ov.scores is None:
        return {"compared": False, "reason": ov.skipped or ort.skipped}
    if ort.scores.ndim == 2:  # multiclass: the largest probability gap of a row; decisions are the argmax
        diff = np.abs(ort.scores - ov.scores).max(axis=1)
        disagree = int(np.count_nonzero(ort.scores.argmax(axis=1) != ov.scores.argmax(axis=1)))
    else:
        diff = np.abs(ort.scores - ov.scores)
        disagree = int(np.count_nonzero((ort.scores >= threshold) != (ov.scores >= threshold)))
    n = len(diff)
    return {"compared": True, "rows": n, "max_abs_diff": float(diff.max()) if n else 0.0,
            "mean_abs_diff": float(diff.mean()) if n else 0.0, "p999_abs_diff": float(np.quantile(diff, 0.999))
            if n else 0.0, "disagreements": disagree, "agreement": 1.0 - disagree / n if n else 1.0}


def parity_criterion(rule: ParityRule, summaries: dict[str, dict[str, Any]], versions: dict[str, str]
                     ) -> Criterion:
    """Scores within max_abs_diff and decisions agreeing on at least min_agreement of the rows."""
    checks = []
    for role in rule.models:
        s = summaries.get(role) or {"compared": False, "reason": "no model"}
        who = {"model": f"{role} {versions.get(role, '')}".strip()}
        if not s["compared"]:
            checks.append(Check(who, "parity", SKIPPED, f"{who['model']}: skipped. {s['reason']}"))
            continue
        ok_diff, ok_agree = s["max_abs_diff"] <= rule.max_abs_diff, s["agreement"] >= rule.min_agreement
        checks.append(Check(
            who, "parity", PASS if ok_diff and ok_agree else FAIL,
            f"{who['model']}: max |ORT - OpenVINO| {s['max_abs_diff']:.2e} (limit {rule.max_abs_diff:.0e}), "
            f"decisions agree on {s['agreement']:.4%} of {s['rows']:,} rows ({s['disagreements']} differ; "
            f"required {rule.min_agreement:.2%})", s["max_abs_diff"], None, None, rule.max_abs_diff, s["rows"]))
    statuses = [c.status for c in checks]
    status = SKIPPED if all(s == SKIPPED for s in statuses) else combine(statuses)
    return Criterion("parity", f"ONNX Runtime and OpenVINO agree (|score diff| <= {rule.max_abs_diff:g}, "
                               f"decisions >= {rule.min_agreement:.1%}, OpenVINO {rule.precision})",
                     status, tuple(checks))


def latency_criterion(rule: LatencyRule, run: dict[str, Any] | None, why_none: str) -> Criterion:
    """The budget against the chosen recorded (or just measured) benchmark run of the candidate."""
    title = f"{rule.percentile} latency <= {rule.max_ms} ms ({rule.runtime} {rule.device}, batch {rule.batch})"
    if run is None:
        return Criterion("latency", title, INCONCLUSIVE, (Check({}, "latency", INCONCLUSIVE, why_none),))
    value = run[f"{rule.percentile}_ms"]
    status = PASS if value <= rule.max_ms else FAIL
    evidence = (f"{rule.percentile} {value:.3f} ms in benchmark run {run['run_id']} ({run['started_at']}, "
                f"{run['inferences']:,} inferences, hardware {run['fingerprint_id']}); budget {rule.max_ms} ms")
    return Criterion("latency", title, status, (Check({}, "latency", status, evidence, value, None, None,
                                                      rule.max_ms, run["inferences"]),),
                     details={"bench_run_id": run["run_id"]})


def pick_bench_run(con: duckdb.DuckDBPyConnection, version_id: str, rule: LatencyRule, fingerprint_id: str
                   ) -> tuple[dict[str, Any] | None, str]:
    """The newest successful, quiet run of this version on this hardware and config, or why there is none."""
    rows = con.execute(
        "SELECT run_id, strftime(started_at, '%Y-%m-%d %H:%M'), p50_ms, p90_ms, p95_ms, p99_ms, p999_ms, max_ms, mean_ms, inferences, "
        "fingerprint_id, noisy FROM bench_runs WHERE version_id = ? AND runtime = ? AND upper(device) = upper(?) "
        "AND batch = ? AND status = 'ok' ORDER BY started_at DESC",
        [version_id, rule.runtime, rule.device, rule.batch]).fetchall()
    names = ("run_id", "started_at", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "p999_ms", "max_ms", "mean_ms",
             "inferences", "fingerprint_id", "noisy")
    runs = [dict(zip(names, r, strict=True)) for r in rows]
    here = [r for r in runs if r["fingerprint_id"] == fingerprint_id]
    quiet = [r for r in here if not r["noisy"]]
    if quiet:
        return quiet[0], ""
    where = f"{rule.runtime} {rule.device}, batch {rule.batch}"
    if here:
        return None, (f"The only benchmark runs of {version_id} on this PC ({where}) were NOISY (other work ran "
                      "during them). Rerun the benchmark on a quiet PC, or set source = \"run\".")
    if runs:
        return None, (f"{version_id} was benchmarked ({where}) only on other hardware "
                      f"({', '.join(sorted({str(r['fingerprint_id']) for r in runs}))}), not on this PC "
                      f"({fingerprint_id}). Benchmark it here, or set source = \"run\" in [latency].")
    return None, (f"No benchmark run of {version_id} is recorded ({where}). Run one in Benchmarks, or set "
                  "source = \"run\" in the plan's [latency] table.")


def coverage_criterion(rule: DataRule, rows: int, labelled: int) -> Criterion:
    """Share of held-out rows that carry a label."""
    share = labelled / rows if rows else 0.0
    need = rule.min_label_coverage or 0.0
    status = PASS if share >= need else FAIL
    return Criterion("data", f"label coverage >= {need:.0%}", status,
                     (Check({}, "label_coverage", status, f"{labelled:,} of {rows:,} rows labelled ({share:.2%}); "
                                                          f"required {need:.0%}", share, None, None, need, rows),))


def overlap_count(con: duckdb.DuckDBPyConnection, held_out: Path, training: Path, columns: list[str]) -> int:
    """Held-out rows that also appear in the training file: the same record id (one column) or the same values
    (a hash over the feature columns)."""
    expr = f"hash({', '.join(sql_ident(c) for c in columns)})" if len(columns) > 1 else sql_ident(columns[0])
    return int(one(con, f"""SELECT count(*) FROM read_parquet({sql_literal(str(held_out))}) v
        WHERE {expr} IN (SELECT {expr} FROM read_parquet({sql_literal(str(training))}))""")[0])


def not_applicable(kind: str, title: str, why: str) -> Criterion:
    """A criterion that cannot apply to this kind of data: SKIPPED (not INCONCLUSIVE), saying why."""
    return Criterion(kind, title, SKIPPED, (Check({}, kind, SKIPPED, why[:1].upper() + why[1:]),))


def overlap_criterion(rule: DataRule, findings: list[dict[str, Any]]) -> Criterion:
    """No held-out row may come from a model's training data."""
    checks = []
    for f in findings:
        who = {"model": f["version"]}
        if f.get("reason"):
            checks.append(Check(who, "overlap", INCONCLUSIVE, f"{f['version']}: {f['reason']}"))
        elif f["overlap"]:
            checks.append(Check(who, "overlap", FAIL,
                                f"{f['version']}: {f['overlap']:,} held-out rows are in its training dataset "
                                f"{f['training']} (by {rule.overlap_key}). Remove them from the held-out set.",
                                f["overlap"], None, None, 0, f["rows"]))
        else:
            checks.append(Check(who, "overlap", PASS, f"{f['version']}: no held-out row is in its training dataset "
                                                      f"{f['training']} (by {rule.overlap_key})", 0, None, None, 0,
                                f["rows"]))
    return Criterion("data", f"no overlap with training data (by {rule.overlap_key})",
                     combine([c.status for c in checks]), tuple(checks))
