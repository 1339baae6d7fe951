"""A validation run: check the plan, audit its hash, score both models on both runtimes, judge, store.

Order matters: everything that can be refused (unknown metric, dimension or column, a missing model card
feature, a dataset whose file no longer matches its hash) is refused before any inference or write.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from app.core.errors import LineproofError, runtime_cause
from app.core.governance.identity import Signer
from app.core.models.integrity import verify_version_files
from app.core.models.validation import checks, criteria
from app.core.models.validation.criteria import Criterion
from app.core.models.validation.multiclass import multiclass_metrics
from app.core.models.validation.paired import slice_metrics
from app.core.models.validation.plan import PlanError, ValidationPlan, check_plan_columns, check_plan_task
from app.core.models.validation.scoring import RuntimeScores, score_onnxruntime, score_openvino
from app.core.models.validation.store import insert_run, save_plan
from app.core.progress import NullProgress, Progress, check_cancelled
from app.core.stats.intervals import z_value
from app.core.store.audit import current_actor
from app.core.store.datasets import is_tensor_dataset
from app.core.store.db import one
from app.core.store.project import Project
from app.core.store.sources import sha256_of
from app.core.store.tensor_datasets import Preprocess, npz_names, read_npz

ROUND = 12  # digits kept in stored floats: identical runs store identical text


class ValidationError(LineproofError):
    """A validation cannot be run as asked; nothing was scored or stored."""


@dataclass(frozen=True)
class ModelUnderTest:
    """A model version as validation needs it."""

    role: str
    version_id: str
    sha256: str
    path: Path
    threshold: float
    task: str
    features: list[str]
    training_dataset: str
    runtime: str = "onnxruntime"  # the runtime whose scores are judged: OpenVINO for an IR file (a variant)
    classes: tuple[str, ...] = ()  # a multiclass model's class names, in the order of its probability columns
    card: dict[str, Any] = field(default_factory=dict)

    @property
    def multiclass(self) -> bool:
        """Judged on accuracy and per-class recall instead of a defect threshold."""
        return self.task == "multiclass"


@dataclass
class ValidationRun:
    """The outcome of one run: verdict, criteria, metric tables and where the per-row scores are."""

    run_id: str
    verdict: str
    criteria: list[Criterion]
    result: dict[str, Any]
    result_sha256: str
    scores_path: Path
    timing: dict[str, float] = field(default_factory=dict)

    def failing(self) -> list[tuple[Criterion, criteria.Check]]:
        """(criterion, check) for every failed check."""
        return [(c, k) for c in self.criteria for k in c.failing()]


def _model(project: Project, role: str, version_id: str) -> ModelUnderTest:
    with project.reading() as con:
        row = one(con, """SELECT v.sha256, v.artifact_path, v.threshold, m.task, v.card_json, v.lineage_json, v.format
                          FROM model_versions v JOIN models m USING (model_id) WHERE v.version_id = ?""",
                  [version_id])
        known = [r[0] for r in con.execute("SELECT version_id FROM model_versions ORDER BY 1").fetchall()]
    if not row:
        raise ValidationError(f"Unknown {role} model version {version_id!r}.",
                              f"Registered versions: {', '.join(known) or 'none'} (write MODEL:VERSION).")
    sha, rel, threshold, task, card, lineage, fmt = row
    if task not in ("binary", "multiclass"):
        raise ValidationError(f"{version_id} is a {task} model; validation judges binary and multiclass "
                              "classifiers.", "Choose a classifier version.")
    if fmt not in ("onnx", "openvino-ir"):
        raise ValidationError(f"{version_id} is stored as {fmt}; validation scores ONNX and OpenVINO IR files.",
                              "Import the ONNX export of this model.")
    path = project.folder / rel
    verify_version_files(project, version_id)  # every file (external weights too), not the graph alone
    card, lineage = json.loads(card or "{}"), json.loads(lineage or "{}")
    classes = tuple(str(c) for c in card.get("classes") or ())
    if task == "multiclass" and not classes:
        classes = tuple(_output_classes(path, version_id))
    return ModelUnderTest(role, version_id, sha, path, float(threshold if threshold is not None else 0.5), task,
                          list(card.get("features") or []), str(lineage.get("training_dataset") or ""),
                          "onnxruntime" if fmt == "onnx" else "openvino", classes, card)


def _output_classes(path: Path, version_id: str) -> list[str]:
    """A model's class names when its card names none: a scikit-learn export's ZipMap labels, else the indices of
    its probability output's last axis."""
    from app.core.models.validation.scoring import has_zipmap, zipmap_free

    if path.suffix == ".onnx":
        import onnxruntime as ort

        try:
            zipped = has_zipmap(ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]))
        except Exception:  # noqa: BLE001 - OpenVINO below says what is wrong with the file
            zipped = False
        if zipped:
            return zipmap_free(path)[1]
    import openvino as ov

    try:
        shape = ov.Core().read_model(str(path)).outputs[0].get_partial_shape()
        return [str(k) for k in range(int(shape[len(shape) - 1].get_length()))]
    except Exception as exc:  # noqa: BLE001 - any reader failure means the same thing to the user
        raise ValidationError(f"{version_id}'s output has no fixed number of classes ({runtime_cause(str(exc))}).",
                              "Name the classes in the model card: lineproof card ... --set classes=a,b,c.") from exc


def _dataset(project: Project, dataset_id: str) -> tuple[str, Path, str, str]:
    with project.reading() as con:
        row = one(con, "SELECT sha256, artifact_path, kind, name FROM datasets WHERE dataset_id = ?", [dataset_id])
        known = [r[0] for r in con.execute("SELECT dataset_id FROM datasets WHERE kind = 'validation'").fetchall()]
    if not row:
        raise ValidationError(f"Unknown dataset {dataset_id!r}.",
                              f"Validation datasets in this project: {', '.join(known) or 'none (register one)'}.")
    sha, rel, kind, name = row
    if kind == "training":
        raise ValidationError(f"{dataset_id} is a training dataset; validating on it would flatter the model.",
                              f"Choose a held-out validation dataset: {', '.join(known) or 'register one first'}.")
    path = project.folder / rel
    if not path.is_file() or sha256_of(path) != sha:
        raise ValidationError(f"Dataset {dataset_id}'s file {rel} is missing or no longer matches its sha256.",
                              "Restore it from a backup or register the dataset again; nothing was run.")
    return sha, path, name, kind


def prepare(project: Project, plan: ValidationPlan, candidate: str, champion: str | None,
            dataset_id: str | None) -> tuple[list[ModelUnderTest], str, tuple[str, Path, str, str]]:
    """Every check that needs no inference: models, dataset, plan against both."""
    dataset_id = dataset_id or plan.dataset
    if not dataset_id:
        raise PlanError("No dataset chosen and the plan names none.", 'Pick a dataset, or set dataset = "..." in [plan].')
    if plan.needs_champion and not champion:
        raise PlanError("The plan compares with a champion (non-regression or champion parity), but none was "
                        "chosen.", "Choose the production version as champion, or remove those criteria.")
    models = [_model(project, "candidate", candidate)]
    if champion:
        if champion == candidate:
            raise ValidationError("Candidate and champion are the same version.", "Choose two different versions.")
        models.append(_model(project, "champion", champion))
    data = _dataset(project, dataset_id)
    if len({m.task for m in models}) > 1:
        raise ValidationError(f"{models[0].version_id} is {models[0].task} and {models[1].version_id} is "
                              f"{models[1].task}: they cannot be judged on the same metrics.",
                              "Compare versions of one task.")
    for m in models:
        check_plan_task(plan, m.task, list(m.classes), m.version_id)
    if is_tensor_dataset(data[1]):
        # Tensors, not feature columns (checked when loaded); no overlap check either: it is not applicable.
        check_plan_columns(replace(plan, data=replace(plan.data, no_overlap_with_training=False)),
                           npz_names(data[1]), {}, dataset_id)
    else:
        columns = set(pq.read_schema(data[1]).names)
        check_plan_columns(plan, columns, {m.version_id: m.features for m in models}, dataset_id)
    return models, dataset_id, data


def run_validation(project: Project, plan: ValidationPlan, candidate: str, champion: str | None = None,
                   dataset_id: str | None = None, progress: Progress | None = None, by: Signer | None = None
                   ) -> ValidationRun:
    """Validate `candidate` against `champion` on a held-out dataset under `plan`, and store the run; `by` (the
    person running it, unlocked) signs the result, which a release in a governed project needs."""
    progress = progress or NullProgress()
    project.require_writable()
    if by is not None:
        from app.core.store.audit import acting_as

        with acting_as(by.user_id):
            run = run_validation(project, plan, candidate, champion, dataset_id, progress)
        sign_run(project, run.run_id, by)
        return run
    models, dataset_id, (data_sha, data_path, data_name, _) = prepare(project, plan, candidate, champion, dataset_id)
    started = datetime.now(UTC)
    run_id = f"VAL-{started:%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
    actor = current_actor()
    hashes = {m.role: m.sha256 for m in models}
    with project.change("validation.start", run_id, {"plan_sha256": plan.sha256, "plan": plan.name,
                                                      "dataset": dataset_id, "dataset_sha256": data_sha,
                                                      "models": {m.role: m.version_id for m in models},
                                                      "model_sha256": hashes}) as con:
        plan_id, revision, _ = save_plan(con, plan, actor)
    try:
        return _run(project, plan, models, run_id, started, actor, (dataset_id, data_sha, data_path, data_name),
                    (plan_id, revision), progress)
    except BaseException as exc:
        # The start is audited; say how it ended, so a started run never just vanishes from the trail.
        with project.change("validation.abandoned", run_id, {"plan_sha256": plan.sha256,
                                                              "why": str(exc).splitlines()[0] if str(exc) else
                                                              type(exc).__name__}):
            pass
        raise


def _run(project: Project, plan: ValidationPlan, models: list[ModelUnderTest], run_id: str, started: datetime,
         actor: str, data: tuple[str, str, Path, str], plan_ref: tuple[str, int], progress: Progress
         ) -> ValidationRun:
    dataset_id, data_sha, data_path, data_name = data
    plan_id, revision = plan_ref
    timing: dict[str, float] = {}
    clock = datetime.now(UTC)
    frame, matrices = (_load_tensors if is_tensor_dataset(data_path) else _load)(data_path, plan, models)
    timing["load_s"] = (datetime.now(UTC) - clock).total_seconds()
    scores = _score_all(plan, models, matrices, progress, timing)
    check_cancelled(progress)
    progress.report(0.85, "Metrics per slice with intervals")
    clock = datetime.now(UTC)
    result, crit, score_frame = _judge(project, plan, models, frame, scores, data_path, progress, timing)
    timing["metrics_s"] = (datetime.now(UTC) - clock).total_seconds() - timing.get("latency_s", 0.0)
    result.update({"plan": {"name": plan.name, "sha256": plan.sha256, "plan_id": plan_id, "revision": revision,
                            "decision": plan.decision, "confidence": plan.confidence},
                   "dataset": {"dataset_id": dataset_id, "name": data_name, "sha256": data_sha, "rows": frame.height},
                   "models": {m.role: {"version_id": m.version_id, "sha256": m.sha256, "threshold": m.threshold,
                                       "runtimes": {rt: (s.skipped or "ok") for rt, s in scores[m.role].items()}}
                              for m in models}})
    verdict = criteria.verdict(crit)
    result["verdict"] = verdict
    body = _canonical(result)
    result_sha = result_sha256(result)
    check_cancelled(progress)
    progress.report(0.97, "Storing the run")
    scores_path = _write_scores(project, run_id, score_frame)
    stored = {**json.loads(body), "scores_file": {"path": scores_path.relative_to(project.folder).as_posix(),
                                                   "sha256": sha256_of(scores_path)}, "timing": timing}
    finished = datetime.now(UTC)
    cand = models[0]
    champ = models[1] if len(models) > 1 else None
    try:
        with project.change("validation.finish", run_id, {"verdict": verdict, "result_sha256": result_sha,
                                                           "plan_sha256": plan.sha256}) as con:
            insert_run(con, {
                "run_id": run_id, "candidate_version": cand.version_id,
                "champion_version": champ.version_id if champ else None, "dataset_id": dataset_id,
                "dataset_sha256": data_sha, "plan_sha256": plan.sha256, "plan_toml": plan.text,
                "candidate_sha256": cand.sha256, "champion_sha256": champ.sha256 if champ else None,
                "verdict": verdict, "result_json": json.dumps(stored, sort_keys=True), "result_sha256": result_sha,
                "tool_version": _tool_version(), "started_at": started.replace(tzinfo=None),
                "finished_at": finished.replace(tzinfo=None), "created_by": actor})
    except BaseException:
        scores_path.unlink(missing_ok=True)
        raise
    progress.report(1.0, f"Verdict: {verdict}")
    return ValidationRun(run_id, verdict, crit, stored, result_sha, scores_path, timing)


def _tool_version() -> str:
    from app import __version__

    return f"lineproof {__version__}"


def _load(path: Path, plan: ValidationPlan, models: list[ModelUnderTest]
          ) -> tuple[pl.DataFrame, dict[str, np.ndarray]]:
    """Label, slice columns and record id as polars; each model's features as one float32 matrix."""
    features = list(dict.fromkeys(f for m in models for f in m.features))
    schema = set(pq.read_schema(path).names)
    keep = list(dict.fromkeys([plan.label, *plan.dimensions, *([plan.record_id] if plan.record_id in schema else [])]))
    table = pq.read_table(path, columns=[c for c in dict.fromkeys(keep + features) if c in schema])
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    label = _labels(frame[plan.label], plan.label, models[0])
    nulls = frame.select(pl.col(features).null_count()).row(0, named=True)
    missing = {k: v for k, v in nulls.items() if v}
    if missing:
        col, count = next(iter(missing.items()))
        raise ValidationError(f"Feature column {col!r} has {count:,} empty values in the dataset.",
                              "Models cannot score empty inputs; fill or drop those rows and register it again.")
    matrices = {m.role: np.ascontiguousarray(frame.select(m.features).to_numpy().astype(np.float32))
                for m in models}
    frame = frame.select(keep).with_columns(label.alias(plan.label))
    return (frame.rename({plan.label: "label"}) if plan.label != "label" else frame), matrices


def _labels(raw: pl.Series, column: str, model: ModelUnderTest) -> pl.Series:
    """Labels as the metrics count them: 0/1 for a binary model; a class index for a multiclass one (the card's
    class names or the indices themselves); null where a row is not labelled. Refuses anything else."""
    if not model.multiclass:
        try:
            label = raw.cast(pl.Float64)
        except pl.exceptions.PolarsError as exc:
            raise ValidationError(f"The dataset's label column {column!r} is {raw.dtype}, not 0/1.",
                                  "Labels of a binary model must be 0 (good) or 1 (defect); fix the dataset.") from exc
        bad = int((label.is_not_null() & ~label.is_in([0.0, 1.0])).sum())
        if bad:
            raise ValidationError(f"{bad:,} rows of the dataset have a {column!r} that is not 0 or 1.",
                                  "Labels of a binary model must be 0 (good) or 1 (defect); fix the dataset.")
        return label.cast(pl.Int8)
    classes = list(model.classes)
    text = raw.cast(pl.Utf8)
    # A class name, or its index written as a number (a name wins where a class is called "1").
    mapping = {**{str(i): i for i in range(len(classes))}, **{c: i for i, c in enumerate(classes)}}
    label = text.replace_strict(list(mapping), list(mapping.values()), default=None, return_dtype=pl.Int32)
    unknown = text.filter(text.is_not_null() & label.is_null())
    if unknown.len():
        raise ValidationError(f"{unknown.len():,} rows of the dataset have a {column!r} that is not a class of "
                              f"{model.version_id}: first {unknown[0]!r}.",
                              f"Its classes: {', '.join(classes)} (or their indices 0..{len(classes) - 1}); set "
                              "the card's classes or fix the labels.")
    return label


def _load_tensors(path: Path, plan: ValidationPlan, models: list[ModelUnderTest]
                  ) -> tuple[pl.DataFrame, dict[str, np.ndarray]]:
    """An .npz dataset: label, slice columns and record ids as polars; each model's input tensor as stored (raw
    images are turned into the model's input batch by batch, with the card's preprocess)."""
    arrays = read_npz(path)
    keep = [c for c in dict.fromkeys([plan.label, *plan.dimensions, plan.record_id]) if c in arrays]
    frame = pl.DataFrame({c: arrays[c] for c in keep})
    label = _labels(frame[plan.label], plan.label, models[0])
    frame = frame.with_columns(label.alias(plan.label))
    matrices = {}
    for m in models:
        name = _input_name(m)
        tensor = arrays.get(name, arrays.get("x"))
        if tensor is None or tensor.ndim < 2:
            raise ValidationError(f"The dataset has no input tensor for {m.version_id}: neither {name!r} nor 'x'.",
                                  f"Its arrays: {', '.join(sorted(arrays))}. Store the input under one of them.")
        matrices[m.role] = tensor
    return (frame.rename({plan.label: "label"}) if plan.label != "label" else frame), matrices


def _input_name(model: ModelUnderTest) -> str:
    """The model's first real input (ONNX Runtime lists no initialiser as an input, even in an IR < 4 file)."""
    if model.runtime == "openvino":
        import openvino as ov

        return ov.Core().read_model(str(model.path)).inputs[0].get_any_name()
    import onnxruntime as ort

    return ort.InferenceSession(str(model.path), providers=["CPUExecutionProvider"]).get_inputs()[0].name


def _transform(model: ModelUnderTest, tensor: np.ndarray) -> Any:
    """Raw uint8 images [N, H, W, C] need the card's preprocess per batch; a float tensor goes in as stored."""
    if tensor.dtype == np.uint8 and tensor.ndim == 4:
        return Preprocess.from_card(model.card, model.version_id).apply
    return None


def _score_all(plan: ValidationPlan, models: list[ModelUnderTest], matrices: dict[str, np.ndarray],
               progress: Progress, timing: dict[str, float]) -> dict[str, dict[str, RuntimeScores]]:
    """Each model on its runtime (ONNX Runtime; OpenVINO for an IR file), and an ONNX file also on OpenVINO where
    parity needs it (an IR file runs on OpenVINO only: its parity check is skipped, saying why)."""
    parity_roles = set(plan.parity.models) if plan.parity else set()
    jobs = [(m, rt) for m in models for rt in ("onnxruntime", "openvino") if rt == m.runtime
            or (m.role in parity_roles and m.runtime == "onnxruntime")]
    out: dict[str, dict[str, RuntimeScores]] = {m.role: {} for m in models}
    for i, (m, rt) in enumerate(jobs):
        span = 0.8 / len(jobs)
        base = 0.02 + i * span
        progress.report(base, f"Scoring {m.version_id} ({m.role}) with {rt}")

        def report(done: float, base: float = base, span: float = span, m: ModelUnderTest = m, rt: str = rt) -> None:
            progress.report(base + span * done, f"Scoring {m.version_id} ({m.role}) with {rt}: {done:.0%}")

        x = matrices[m.role]
        classes, transform = len(m.classes) if m.multiclass else 0, _transform(m, x)
        if rt == "onnxruntime":
            s = score_onnxruntime(m.path, x, m.version_id, plan.batch_size, plan.threads, progress, report,
                                  classes, transform)
        else:
            s = score_openvino(m.path, x, m.version_id, plan.batch_size, plan.parity.precision
                               if plan.parity and rt != m.runtime else "f32", progress, report, classes, transform)
        if rt == m.runtime and s.scores is None:
            raise ValidationError(f"{m.version_id} cannot be scored: {s.skipped}",
                                  "Check the model in Models (runtimes); nothing was stored.")
        if s.scores is not None and not np.isfinite(s.scores).all():
            raise ValidationError(f"{m.version_id} produced NaN or infinite scores on {rt}.",
                                  "Check the model and its input features; nothing was stored.")
        if s.scores is not None:
            timing[f"{m.role}_{rt}_s"] = s.seconds
            timing[f"{m.role}_{rt}_compile_s"] = s.compile_seconds
        out[m.role][rt] = s
    return out


def _judge(project: Project, plan: ValidationPlan, models: list[ModelUnderTest], frame: pl.DataFrame,
           scores: dict[str, dict[str, RuntimeScores]], data_path: Path, progress: Progress,
           timing: dict[str, float]) -> tuple[dict[str, Any], list[Criterion], pl.DataFrame]:
    cand = models[0]
    champ = models[1] if len(models) > 1 else None
    z = z_value(plan.confidence)
    s_cand = scores["candidate"][cand.runtime].scores
    s_champ = scores["champion"][champ.runtime].scores if champ else None
    if cand.multiclass:  # the predicted class (argmax) and its probability stand for the score
        scored = frame.with_columns(
            pl.Series("p_cand", s_cand.argmax(axis=1), dtype=pl.Int32),
            pl.Series("p_champ", s_champ.argmax(axis=1), dtype=pl.Int32) if s_champ is not None
            else pl.lit(None, pl.Int32).alias("p_champ"),
            pl.Series("s_cand", s_cand.max(axis=1)),
            pl.Series("s_champ", s_champ.max(axis=1), dtype=pl.Float64) if s_champ is not None
            else pl.lit(None, pl.Float64).alias("s_champ"))
    else:
        scored = frame.with_columns(pl.Series("s_cand", s_cand), pl.Series("s_champ", s_champ, dtype=pl.Float64)
                                    if s_champ is not None else pl.lit(None, pl.Float64).alias("s_champ"))
    tables: dict[tuple[str, ...], pl.DataFrame] = {}
    for by in plan.groupings:
        table = multiclass_metrics(scored, by, list(cand.classes), z) if cand.multiclass else \
            slice_metrics(scored, by, (cand.threshold, champ.threshold if champ else 0.5), z)
        if champ is None:
            table = table.with_columns(pl.lit(None, pl.Float64).alias(c) for c in table.columns
                                       if c.startswith(("champ_", "diff_")))
        tables[by] = table
        check_cancelled(progress)
    crit: list[Criterion] = []
    crit += [criteria.threshold_criterion(r, tables[()], plan.confidence, plan.decision, "overall")
             for r in plan.overall]
    crit += [criteria.threshold_criterion(r, tables[r.by], plan.confidence, plan.decision, "per_slice")
             for r in plan.per_slice]
    crit += [criteria.regression_criterion(r, tables[r.by], plan.confidence, plan.decision)
             for r in plan.non_regression]
    parity = {m.role: checks.parity_summary(scores[m.role]["onnxruntime"], scores[m.role]["openvino"], m.threshold)
              for m in models if "openvino" in scores[m.role] and "onnxruntime" in scores[m.role]}
    parity.update({m.role: {"compared": False, "reason": f"{m.version_id} is an OpenVINO IR file: ONNX Runtime "
                            "cannot load it, so there is no second runtime to compare (compare it with its parent "
                            "instead: lineproof compare-variants)"} for m in models if m.runtime == "openvino"})
    if plan.parity:
        crit.append(checks.parity_criterion(plan.parity, parity, {m.role: m.version_id for m in models}))
    if plan.latency:
        clock = datetime.now(UTC)
        crit.append(_latency(project, plan, cand, progress))
        timing["latency_s"] = (datetime.now(UTC) - clock).total_seconds()
    overall = tables[()].row(0, named=True)
    if plan.data.min_label_coverage is not None:
        crit.append(checks.coverage_criterion(plan.data, int(overall["rows"]), int(overall["labelled"])))
    if plan.data.no_overlap_with_training and is_tensor_dataset(data_path):
        crit.append(checks.not_applicable(
            "data", "no overlap with training data",
            "not applicable: the held-out data are image tensors, and overlap is found by record id or by the "
            "feature values of table rows; keep the images' split documented in the dataset's description"))
    elif plan.data.no_overlap_with_training:
        crit.append(checks.overlap_criterion(plan.data, _overlaps(project, plan, models, data_path)))
    score_frame = scored.select(
        *([plan.record_id] if plan.record_id in scored.columns else []), "label", *plan.dimensions,
        *(["p_cand", "p_champ"] if cand.multiclass else []),
        pl.col("s_cand").alias(f"candidate_{cand.runtime}"),
        pl.col("s_champ").alias(f"champion_{champ.runtime if champ else 'onnxruntime'}"),
        *[pl.Series(f"{m.role}_openvino", _same_class(scores[m.role]["openvino"].scores,
                                                      scores[m.role][m.runtime].scores)) for m in models
          if m.runtime != "openvino" and "openvino" in scores[m.role]
          and scores[m.role]["openvino"].scores is not None])
    result = {"criteria": [c.as_dict() for c in crit],
              "slices": {",".join(by) or "overall": _rounded(t).to_dicts() for by, t in tables.items()},
              "parity": parity}
    return result, crit, score_frame


def _same_class(other: np.ndarray, main: np.ndarray) -> np.ndarray:
    """Per row, the second runtime's probability of the class the first one chose (a multiclass model's scores
    are [N, classes]; the per-row file and the parity plot hold one number per row, as for a binary model)."""
    if other.ndim == 1:
        return other
    return other[np.arange(len(other)), main.argmax(axis=1)]


def _latency(project: Project, plan: ValidationPlan, cand: ModelUnderTest, progress: Progress) -> Criterion:
    from app.core.models.bench.fingerprint import hardware_fingerprint

    rule = plan.latency
    assert rule is not None
    fingerprint = hardware_fingerprint()["fingerprint_id"]
    with project.reading() as con:
        run, why = checks.pick_bench_run(con, cand.version_id, rule, fingerprint)
    if run is None and rule.source == "run":
        from app.core.models.bench import BenchConfig, run_benchmark

        progress.report(0.9, f"Benchmarking {cand.version_id} for the latency budget ({rule.seconds:g} s)")
        config = BenchConfig(runtime=rule.runtime, device=rule.device, batch=rule.batch, seconds=rule.seconds)
        bench = run_benchmark(project, cand.version_id, config)
        with project.reading() as con:
            run, why = checks.pick_bench_run(con, cand.version_id, rule, fingerprint)
        if run is None and bench.status != "ok":
            why = f"The benchmark run for the budget failed: {bench.reason}"
    return checks.latency_criterion(rule, run, why)


def _overlaps(project: Project, plan: ValidationPlan, models: list[ModelUnderTest], data_path: Path
              ) -> list[dict[str, Any]]:
    """Per model: held-out rows found in its training dataset (by record id, or by feature values)."""
    found = []
    for m in models:
        finding: dict[str, Any] = {"version": m.version_id, "training": m.training_dataset, "overlap": 0, "rows": 0}
        found.append(finding)
        if not m.training_dataset:
            finding["reason"] = ("its lineage names no training dataset, so overlap cannot be checked; set "
                                 "lineage.training_dataset in Models")
            continue
        with project.reading() as con:
            row = one(con, "SELECT dataset_id, artifact_path, row_count FROM datasets WHERE sha256 = ? OR "
                           "dataset_id = ?", [m.training_dataset, m.training_dataset])
            if not row:
                finding["reason"] = (f"its training dataset {m.training_dataset[:16]} is not registered in this "
                                     "project; register it (kind training) so overlap can be checked")
                continue
            training = project.folder / row[1]
            compare = [plan.record_id] if plan.data.overlap_key == "record_id" else m.features
            absent = [c for c in compare if c not in set(pq.read_schema(training).names)]
            finding["training"] = row[0]
            if absent:
                finding["reason"] = (f"its training dataset {row[0]} has no column {absent[0]!r}; use "
                                     "overlap_key = \"row\" or add record ids")
                continue
            finding["overlap"] = checks.overlap_count(con, data_path, training, compare)
            finding["rows"] = int(row[2])
    return found


def _rounded(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(pl.col(pl.Float64).round(ROUND))


def _canonical(result: dict[str, Any]) -> str:
    def clean(x: Any) -> Any:
        if isinstance(x, float):
            return None if not np.isfinite(x) else round(x, ROUND)
        if isinstance(x, dict):
            return {str(k): clean(v) for k, v in x.items()}
        if isinstance(x, list | tuple):
            return [clean(v) for v in x]
        return x

    return json.dumps(clean(result), sort_keys=True, separators=(",", ":"), default=str)


UNHASHED = ("scores_file", "timing")  # stored with the result, but neither is a finding


def result_sha256(result: dict[str, Any]) -> str:
    """sha256 of a result's canonical JSON without its timing and score-file location (the run's identity)."""
    return hashlib.sha256(_canonical({k: v for k, v in result.items() if k not in UNHASHED}).encode()).hexdigest()


def sign_run(project: Project, run_id: str, by: Signer) -> None:
    """The person who ran a validation signs its result hash (a governance fact that releases rely on)."""
    from app.core.governance.approvals import GovernanceError, sign_statement

    with project.reading() as con:
        row = one(con, "SELECT candidate_version, verdict, result_sha256, plan_sha256, dataset_sha256, "
                       "candidate_sha256, result_json, plan_toml FROM validation_runs WHERE run_id = ?", [run_id])
    if row is None:
        raise GovernanceError(f"No validation run {run_id!r}.", "Check the id with `lineproof validations`.")
    stored = json.loads(row[6])
    if result_sha256(stored) != row[2] or stored.get("verdict") != row[1] or \
            hashlib.sha256(row[7].encode("utf-8")).hexdigest() != row[3]:
        raise GovernanceError(f"Validation run {run_id} does not match its own hashes: it was edited.",
                              "Validate again; nothing was signed.")
    sign_statement(project, "validation.sign", "validation.run", run_id, {
        "candidate_version": row[0], "verdict": row[1], "result_sha256": row[2], "plan_sha256": row[3],
        "dataset_sha256": row[4], "candidate_sha256": row[5]}, by)


def _write_scores(project: Project, run_id: str, frame: pl.DataFrame) -> Path:
    """Per-row scores of the run, read-only next to the other artifacts (the parity plot reads them)."""
    folder = project.folder / "artifacts" / "validation"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{run_id}.parquet"
    tmp = path.with_suffix(".partial")
    frame.write_parquet(tmp)
    os.chmod(tmp, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    tmp.replace(path)
    return path
