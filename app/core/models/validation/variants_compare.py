"""A parent model and its cheaper variants side by side: accuracy-type metrics overall and per slice with their
intervals on a held-out dataset, how far each variant's outputs are from the parent's, and latency and throughput
from benchmarks run on this PC with the same settings, interleaved (parent, FP16, INT8, parent, ...)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np
import polars as pl

from app.core.models.registry import variant_parent
from app.core.models.structure import INT8_8BIT_NOTE, read_structure
from app.core.models.validation.paired import slice_metrics
from app.core.models.validation.run import ValidationError, _dataset, _load, _model
from app.core.models.validation.scoring import score_onnxruntime, score_openvino
from app.core.progress import NullProgress, Progress, check_cancelled
from app.core.stats.intervals import z_value
from app.core.store.project import Project

METRICS = ("recall", "fpr", "precision", "accuracy", "auc")


@dataclass
class VariantRow:
    """One version's figures: metrics (overall and per slice), agreement with the parent, latency."""

    version_id: str
    precision: str
    runtime: str
    overall: dict[str, Any]
    slices: pl.DataFrame
    max_abs_diff: float | None = None
    decision_agreement: float | None = None
    latency: dict[str, float] = field(default_factory=dict)
    cpu_note: str | None = None  # an INT8 variant whose results depend on the CPU (8-bit weights), said in words


@dataclass
class VariantComparison:
    """The parent first, then its variants."""

    parent: str
    dataset_id: str
    by: tuple[str, ...]
    rows: list[VariantRow]
    bench_settings: dict[str, Any] | None


def variants_of(project: Project, parent: str) -> list[str]:
    """Versions whose lineage names `parent` as the model they were made from."""
    with project.reading() as con:
        rows = con.execute("SELECT version_id, lineage_json FROM model_versions ORDER BY created_at, version_id"
                           ).fetchall()
    return [v for v, lineage in rows if variant_parent(lineage) == parent]


def compare_variants(project: Project, parent: str, dataset_id: str, by: tuple[str, ...] = ("line",),
                     confidence: float = 0.95, bench: Any = None, rounds: int = 3,
                     progress: Progress | None = None) -> VariantComparison:
    """Score the parent and every variant on the dataset (each on its runtime) and, with `bench` (a BenchConfig),
    benchmark them in `rounds` interleaved rounds; the slices are per `by`."""
    progress = progress or NullProgress()
    names = [parent, *variants_of(project, parent)]
    if len(names) == 1:
        raise ValidationError(f"{parent} has no variants yet.",
                              f"Make one: lineproof variant PROJECT {parent} --int8 --calibration DATASET.")
    models = [_model(project, "candidate", v) for v in names]
    _sha, path, _name, _kind = _dataset(project, dataset_id)
    plan = SimpleNamespace(label="label", dimensions=list(by), record_id="record_id")
    frame, matrices = _load(path, plan, models[:1])  # variants take their parent's features
    matrix = matrices["candidate"]
    scores = []
    for i, m in enumerate(models):
        check_cancelled(progress)
        progress.report(0.05 + 0.4 * i / len(models), f"Scoring {m.version_id} on {m.runtime}")
        run = score_onnxruntime if m.runtime == "onnxruntime" else score_openvino
        args = (m.path, matrix, m.version_id, 4096) + ((1, progress, lambda _d: None) if m.runtime == "onnxruntime"
                                                        else ("f32", progress, lambda _d: None))
        s = run(*args)
        if s.scores is None:
            raise ValidationError(f"{m.version_id} cannot be scored: {s.skipped}", "Nothing was compared.")
        scores.append(s.scores)
    z = z_value(confidence)
    rows = []
    for m, s in zip(models, scores, strict=True):
        scored = frame.with_columns(pl.Series("s_cand", s), pl.Series("s_champ", scores[0]))
        overall = slice_metrics(scored, (), (m.threshold, models[0].threshold), z).row(0, named=True)
        per_slice = slice_metrics(scored, by, (m.threshold, models[0].threshold), z) if by else pl.DataFrame()
        precision = "FP32" if m is models[0] else m.version_id.rsplit("-", 1)[-1].upper()
        row = VariantRow(m.version_id, precision, m.runtime, overall, per_slice)
        if m is not models[0]:
            if read_structure(project, m.version_id).int8_weights == "8-bit":
                row.cpu_note = f"{m.version_id} {INT8_8BIT_NOTE}"
            row.max_abs_diff = float(np.abs(s - scores[0]).max())
            row.decision_agreement = float(np.mean((s >= m.threshold) == (scores[0] >= models[0].threshold)))
        rows.append(row)
    settings = None
    if bench is not None:
        settings = _benchmark(project, models, rows, bench, rounds, progress)
    progress.report(1.0, f"Compared {len(rows)} versions")
    return VariantComparison(parent, dataset_id, by, rows, settings)


def _benchmark(project: Project, models: list, rows: list[VariantRow], bench: Any, rounds: int,
               progress: Progress) -> dict[str, Any]:
    """Interleaved rounds: every version once per round, in the same order, so that load hits all alike."""
    from dataclasses import asdict, replace

    from app.core.models.bench import run_benchmark

    figures: dict[str, list[tuple[float, float, float]]] = {m.version_id: [] for m in models}
    for r in range(rounds):
        for i, m in enumerate(models):
            check_cancelled(progress)
            progress.report(0.5 + 0.5 * (r * len(models) + i) / (rounds * len(models)),
                            f"Benchmark round {r + 1} of {rounds}: {m.version_id}")
            result = run_benchmark(project, m.version_id, replace(bench, runtime="openvino"))
            if result.status == "ok":
                f = result.figures
                figures[m.version_id].append((f["p50_ms"], f["p99_ms"], f["throughput"]))
    for row in rows:
        got = figures[row.version_id]
        if got:
            row.latency = {"p50_ms": statistics.median(g[0] for g in got),
                           "p99_ms": statistics.median(g[1] for g in got),
                           "throughput": statistics.median(g[2] for g in got), "runs": len(got)}
    base = rows[0].latency.get("p50_ms")
    for row in rows:
        if base and row.latency.get("p50_ms"):
            row.latency["speedup_p50"] = base / row.latency["p50_ms"]
    return {**asdict(replace(bench, runtime="openvino")), "rounds": rounds}


def comparison_text(c: VariantComparison, metrics: tuple[str, ...] = ("recall", "fpr", "auc")) -> list[str]:
    """The comparison as lines: one table overall, then one per slice."""
    lines = [f"Variants of {c.parent} on {c.dataset_id}"
             + (f" (latency: OpenVINO {c.bench_settings['device']}, batch {c.bench_settings['batch']}, "
                f"{c.bench_settings['rounds']} interleaved rounds)" if c.bench_settings else "")]

    def metric(row: dict[str, Any], prefix: str, m: str) -> str:
        v = row.get(f"{prefix}_{m}")
        if v is None:
            return "-"
        lo, hi = row.get(f"{prefix}_{m}_low"), row.get(f"{prefix}_{m}_high")
        return f"{v:.3f} [{lo:.3f}, {hi:.3f}]" if lo is not None and hi is not None else f"{v:.3f}"
    head = f"  {'version':<26}{'prec.':<6}" + "".join(f"{m:<22}" for m in metrics) + \
        f"{'max|Δ|':>10}{'agree':>8}{'p50 ms':>9}{'p99 ms':>9}{'inf/s':>9}{'×':>6}"
    lines += ["Overall", head]
    for r in c.rows:
        lat = r.latency
        lines.append(f"  {r.version_id:<26}{r.precision:<6}" + "".join(f"{metric(r.overall, 'cand', m):<22}"
                                                                      for m in metrics)
                     + (f"{r.max_abs_diff:>10.2e}{r.decision_agreement:>8.2%}" if r.max_abs_diff is not None
                        else f"{'-':>10}{'-':>8}")
                     + (f"{lat['p50_ms']:>9.3f}{lat['p99_ms']:>9.3f}{lat['throughput']:>9.0f}"
                        f"{lat.get('speedup_p50', 1.0):>6.2f}" if lat else f"{'-':>9}{'-':>9}{'-':>9}{'-':>6}"))
    for r in c.rows[1:]:
        if r.slices.height == 0:
            continue
        lines.append(f"Per {', '.join(c.by)}: {r.version_id} against {c.parent} (gain, {', '.join(metrics)})")
        for s in r.slices.iter_rows(named=True):
            where = ", ".join(str(s[k]) for k in c.by)
            gains = []
            for m in metrics:
                d, lo, hi = s.get(f"diff_{m}"), s.get(f"diff_{m}_low"), s.get(f"diff_{m}_high")
                gains.append("-" if d is None else f"{m} {d:+.3f}" + (f" [{lo:+.3f}, {hi:+.3f}]"
                                                                     if lo is not None else ""))
            lines.append(f"  {where:<14}" + "; ".join(gains))
    lines += [f"Note: {r.cpu_note}" for r in c.rows if r.cpu_note]
    return lines


def overall_frame(c: VariantComparison) -> pl.DataFrame:
    """One row per version: metrics overall with their intervals, agreement with the parent, latency."""
    rows = []
    for r in c.rows:
        row: dict[str, Any] = {"version_id": r.version_id, "numbers": r.precision + (" (8-bit)" if r.cpu_note else ""),
                               "runtime": r.runtime, "cpu_note": r.cpu_note,
                               "max_abs_diff": r.max_abs_diff, "decision_agreement": r.decision_agreement}
        for m in METRICS:
            for suffix in ("", "_low", "_high"):
                row[f"{m}{suffix}"] = r.overall.get(f"cand_{m}{suffix}")
        row.update({k: r.latency.get(k) for k in ("p50_ms", "p99_ms", "speedup_p50")})
        row["throughput"] = round(r.latency["throughput"]) if r.latency.get("throughput") else None
        rows.append(row)
    return pl.DataFrame(rows, infer_schema_length=None)


def slice_gains_frame(c: VariantComparison) -> pl.DataFrame:
    """One row per variant and slice: its recall, false-alarm rate and AUC gains over the parent, with the paired
    intervals (negative: worse)."""
    frames = []
    for r in c.rows[1:]:
        if r.slices.height == 0:
            continue
        keep = [*c.by, "rows", "positives"] + [f"diff_{m}{s}" for m in ("recall", "fpr", "auc")
                                               for s in ("", "_low", "_high")]
        frames.append(r.slices.select([k for k in keep if k in r.slices.columns])
                      .with_columns(pl.lit(r.version_id).alias("version_id")))
    return pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()
