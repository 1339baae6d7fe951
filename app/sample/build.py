"""Build the "weld-seam inspection" sample project from the seeded recipe, through the real import paths."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import polars as pl

from app.core.analysis.events import add_event
from app.core.governance.release_history import import_history
from app.core.models.model_import import import_model
from app.core.models.registry import register_model, set_stage
from app.core.progress import NullProgress, Progress, check_cancelled
from app.core.store.datasets import register_dataset
from app.core.store.ingest import LabelMapping, PredictionMapping, import_labels, import_predictions
from app.core.store.project import Project
from app.core.store.sources import sha256_of
from app.sample import models
from app.sample.history import RELEASE_HISTORY
from app.sample.plant import (
    ALUMINIUM_LINE,
    FEATURES,
    LINES_PER_PLANT,
    TOOLING_AT,
    TOOLING_LINE,
    operator_decisions,
    production_log,
    validation_set,
)
from app.sample.release_plan import RELEASE_PLAN, VARIANT_PLAN

SAMPLE_NAME = "Weld-seam inspection"
DIMENSIONS = ("plant", "line", "asset", "shift", "firmware")
RECIPE_REVISION = "sample-recipe/1"


def build_sample(dest: Path | str, scale: float = 1.0, progress: Progress | None = None) -> Path:
    """Create the sample project at `dest` (~2M predictions at scale 1); returns its folder."""
    progress = progress or NullProgress()
    dest = Path(dest)
    project = Project.create(dest, SAMPLE_NAME, site="Plants P1-P3",
                             slice_dimensions=DIMENSIONS,
                             description="Seeded demo: 3 plants, 12 lines, ~200 welding robots, 26 weeks.")
    try:
        with tempfile.TemporaryDirectory(prefix="lineproof-sample-") as tmp_name:
            tmp = Path(tmp_name)
            _build(project, tmp, scale, progress)
    finally:
        project.close()
    return dest


def _build(project: Project, tmp: Path, scale: float, progress: Progress) -> None:
    progress.report(0.02, "Training v1 (MLP)")
    v1_path, v1_train = models.train_v1(tmp)
    check_cancelled(progress)
    progress.report(0.10, "Training v2 (gradient-boosted trees)")
    v2_path, v2_train = models.train_v2(tmp)
    cnn_path = models.build_vision_cnn(tmp)
    check_cancelled(progress)

    progress.report(0.20, "Registering datasets")
    v1_train.write_parquet(tmp / "train_v1.parquet")
    v2_train.write_parquet(tmp / "train_v2.parquet")
    held_out = validation_set(40_000)
    held_out.write_parquet(tmp / "validation.parquet")
    sha_t1 = register_dataset(project, "train-v1", "Training pull 2025 (all lines)", "training",
                              tmp / "train_v1.parquet", "Historic inspected seams used to train v1.")
    sha_t2 = register_dataset(project, "train-v2", f"Training pull 2026 (data lake, without {ALUMINIUM_LINE})",
                              "training", tmp / "train_v2.parquet",
                              "Larger pull used to train v2; the aluminium line was missing from the lake.")
    register_dataset(project, "holdout-2026H2", "Held-out validation set, production period", "validation",
                     tmp / "validation.parquet", "Fully inspected seams never used for training.")

    progress.report(0.25, "Registering models")
    register_model(project, "weld-defect", "Weld seam defect detector", "binary", risk_tier="high",
                   description="Flags weld seams for re-inspection from robot process data.")
    register_model(project, "seam-vision", "Seam image classifier", "multiclass", risk_tier="medium",
                   description="Camera check of the seam surface (benchmark model).")
    card = {"intended_use": "Flag seams for manual re-inspection; never reject parts on its own.",
            "out_of_scope": "Lines or materials not in the training data; structural sign-off.",
            "known_limits": "Sensor firmware changes shift input distributions.",
            "features": list(FEATURES)}
    v1 = import_model(project, v1_path, "weld-defect", "v1", models.V1_THRESHOLD,
                          lineage={"training_dataset": sha_t1, "code_revision": RECIPE_REVISION, "author": "qa-eng"},
                          card={**card, "training_data": "10k inspected seams, all 12 lines, 2025"})
    import_model(project, v2_path, "weld-defect", "v2", models.V2_THRESHOLD,
                     lineage={"training_dataset": sha_t2, "code_revision": RECIPE_REVISION,
                              "parent_version": v1.version_id, "author": "ds-team"},
                     card={**card, "training_data": f"30k seams, 11 lines (without {ALUMINIUM_LINE}), 2026"})
    import_model(project, cnn_path, "seam-vision", "v1", 0.5,
                     lineage={"code_revision": RECIPE_REVISION, "author": "vision-team"},
                     card={"intended_use": "Benchmark reference network (1x3x224x224)."})
    for plant in LINES_PER_PLANT:
        set_stage(project, "weld-defect:v1", plant, "production", "Released 2026 per the plant's change records "
                  "(lineproof history)")
        set_stage(project, "weld-defect:v2", plant, "candidate", "Awaiting offline validation")
    set_stage(project, "seam-vision:v1", "P1", "shadow", "Camera pilot on P1")
    _add_plans(project)
    (tmp / "release-history.csv").write_text(RELEASE_HISTORY, encoding="utf-8")
    import_history(project, tmp / "release-history.csv")
    check_cancelled(progress)

    progress.report(0.30, "Simulating 26 weeks of production")
    log, labels, truth = production_log(scale)
    x = log.select(FEATURES).to_numpy().astype(np.float32)
    progress.report(0.45, f"Scoring {log.height:,} seams with v1 in ONNX Runtime")
    scores = models.score(v1_path, x)
    decided = (scores >= models.V1_THRESHOLD).astype(np.int32)
    log = log.with_columns(model_version=pl.lit(v1.version_id), score=pl.Series(np.round(scores, 6)),
                           predicted_label=pl.Series(decided))
    log = pl.concat([log, operator_decisions(log, decided, truth)], how="horizontal")
    log.write_parquet(tmp / "predictions.parquet")
    labels.write_parquet(tmp / "labels.parquet")
    check_cancelled(progress)
    progress.report(0.6, "Importing the prediction log")
    mapping = PredictionMapping(predicted_label="predicted_label", slices={d: d for d in DIMENSIONS},
                                features=FEATURES, operator_decision="operator_decision",
                                override_reason="override_reason")
    import_predictions(project, tmp / "predictions.parquet", mapping)
    add_event(project, TOOLING_AT, f"new torch tooling on {TOOLING_LINE}", kind="tooling", dimension="line",
              scope=TOOLING_LINE)
    progress.report(0.85, "Importing labels")
    import_labels(project, tmp / "labels.parquet", LabelMapping())
    _add_escapes_kpi(project, log, labels, tmp)
    progress.report(1.0, "Sample project ready")


def _add_plans(project: Project) -> None:
    """The agreed plans (v2's release, a variant's acceptance), stored in the project and as files next to the
    artifacts for the CLI."""
    from app.core.models.validation import parse_plan
    from app.core.models.validation.store import save_plan

    for text, name in ((RELEASE_PLAN, "weld-defect-release.toml"), (VARIANT_PLAN, "weld-defect-variant.toml")):
        plan = parse_plan(text, name)
        path = project.folder / "artifacts" / "plans" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        with project.change("validation.plan.save", plan.name, {"sha256": plan.sha256}) as con:
            save_plan(con, plan, "qa-eng")


def _add_escapes_kpi(project: Project, log: pl.DataFrame, labels: pl.DataFrame, tmp: Path) -> None:
    """The plant's business KPI: defective seams that passed the model per 1000 inspected, per line and week."""
    from app.core.analysis.kpis import import_kpis

    inspected = log.select("record_id", "line", "ts", "predicted_label").join(labels, on="record_id")
    kpi = inspected.group_by("line", pl.col("ts").dt.truncate("1w").dt.date().alias("week")).agg(
        ((pl.col("label") == 1) & (pl.col("predicted_label") == 0)).mean().mul(1000).round(2).alias("value"))
    kpi.with_columns(pl.lit("escapes_per_1000").alias("kpi")).select("line", "week", "kpi", "value").sort(
        "line", "week").write_csv(tmp / "escapes.csv")
    import_kpis(project, tmp / "escapes.csv")


def model_hashes(folder: Path | str) -> dict[str, str]:
    """sha256 of every model artifact in a project (for the determinism check)."""
    root = Path(folder) / "artifacts" / "models"
    return {p.name: sha256_of(p) for p in sorted(root.rglob("*.onnx"))}
