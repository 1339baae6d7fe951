"""Impact of a drifted input on a model's decisions: re-score a sample of the slice's current rows with the
feature put back to its reference distribution, and count the decisions that flip.

The feature is quantile-mapped (x -> reference quantile at x's rank among the current rows), every other input
is left as logged, and both matrices are scored with the registered ONNX model in ONNX Runtime. The recall the
line loses is estimated as CBPE would if the restored scores were the truth: the share of their expected
defects that today's decisions catch, against the share the model believes it catches.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime

import numpy as np

from app.core.models.validation.scoring import score_onnxruntime
from app.core.progress import NullProgress, Progress
from app.core.store.project import Project
from app.core.store.sources import sql_ident, sql_literal

SAMPLE_ROWS = 50_000
QUANTILES = 1001  # reference quantile grid for the mapping
SEED = 7  # the sample is repeatable: the same project gives the same impact


@dataclass(frozen=True)
class Impact:
    """How much one drifted feature moves one slice's decisions, or why that was not measured."""

    version_id: str | None
    feature: str
    rows: int = 0
    flip_share: float | None = None
    to_defect: int = 0  # good -> defect once the feature is restored
    to_good: int = 0
    recall_believed: float | None = None
    recall_if_restored: float | None = None
    note: str = ""

    def as_dict(self) -> dict:
        """The impact as stored in an alert's evidence."""
        return asdict(self)

    @property
    def recall_change(self) -> float | None:
        """Estimated recall today's decisions would have if the restored scores were the truth, less believed."""
        if self.recall_believed is None or self.recall_if_restored is None:
            return None
        return self.recall_if_restored - self.recall_believed


def _where(where: dict[str, str]) -> str:
    return "".join(f" AND {sql_ident(k)}::VARCHAR = {sql_literal(v)}" for k, v in where.items())


def _between(column: str, window: tuple[datetime, datetime]) -> str:
    return (f"{column} >= {sql_literal(window[0].isoformat(sep=' '))}::TIMESTAMP AND "
            f"{column} < {sql_literal(window[1].isoformat(sep=' '))}::TIMESTAMP")


def _model_for(project: Project, where: dict[str, str], feature: str, current: tuple[datetime, datetime]):
    """The registered ONNX binary version logged most on the slice in the window that uses `feature`."""
    with project.reading() as con:
        rows = con.execute(f"""SELECT p.version_id, count(*) AS n, any_value(v.artifact_path), any_value(v.threshold),
                                      any_value(v.card_json), any_value(v.format), any_value(m.task)
                               FROM predictions p JOIN model_versions v USING (version_id) JOIN models m USING (model_id)
                               WHERE {_between('p.ts', current)}{_where(where)} GROUP BY 1 ORDER BY 2 DESC""").fetchall()
    for version, _, path, threshold, card, fmt, task in rows:
        features = (json.loads(card or "{}").get("features") or [])
        if isinstance(features, str):
            features = [f.strip() for f in features.split(",") if f.strip()]
        if fmt == "onnx" and task == "binary" and feature in features:
            return version, project.folder / path, float(threshold if threshold is not None else 0.5), features
    return None


def measure_impact(project: Project, where: dict[str, str], feature: str, reference: tuple[datetime, datetime],
                   current: tuple[datetime, datetime], sample_rows: int = SAMPLE_ROWS,
                   progress: Progress | None = None) -> Impact:
    """Share of a slice's current decisions that flip when `feature` is put back to its reference distribution."""
    progress = progress or NullProgress()
    model = _model_for(project, where, feature, current)
    if model is None:
        return Impact(None, feature, note=f"no registered binary ONNX model with input {feature} is logged here")
    version, path, threshold, features = model
    cols = ", ".join(sql_ident(f) for f in features)
    not_null = " AND ".join(f"{sql_ident(f)} IS NOT NULL" for f in features)
    with project.reading() as con:
        x = con.sql(f"""SELECT {cols} FROM (SELECT {cols} FROM predictions WHERE version_id = {sql_literal(version)}
                        AND {_between('ts', current)}{_where(where)} AND {not_null})
                        USING SAMPLE reservoir({int(sample_rows)} ROWS) REPEATABLE ({SEED})""").fetchnumpy()
        grid = np.linspace(0.0, 1.0, QUANTILES)
        ref = con.execute(f"""SELECT quantile_cont({sql_ident(feature)}, {grid.tolist()}) FROM predictions
                              WHERE {_between('ts', reference)}{_where(where)}""").fetchall()[0][0]
    if ref is None:
        return Impact(version, feature, note="the reference window has no values of this feature here")
    matrix = np.ascontiguousarray(np.column_stack([x[f] for f in features]).astype(np.float32))
    if not len(matrix):
        return Impact(version, feature, note="no complete rows of the model's inputs in the current window")
    column = features.index(feature)
    values = matrix[:, column].astype(np.float64)
    ranks = (np.argsort(np.argsort(values, kind="stable"), kind="stable") + 0.5) / len(values)
    restored = matrix.copy()
    restored[:, column] = np.interp(ranks, grid, np.asarray(ref, dtype=np.float64)).astype(np.float32)
    scored = []
    for i, m in enumerate((matrix, restored)):
        result = score_onnxruntime(path, m, version, 8192, 0, progress,
                                   lambda f, i=i: progress.report(0.5 * (i + f), f"Scoring {len(matrix):,} rows"))
        if result.scores is None:
            return Impact(version, feature, note=result.skipped)
        scored.append(result.scores)
    before, after = scored
    d_before, d_after = before >= threshold, after >= threshold
    believed = float((before * d_before).sum() / before.sum()) if before.sum() > 0 else None
    restored_recall = float((after * d_before).sum() / after.sum()) if after.sum() > 0 else None
    return Impact(version, feature, len(matrix), float(np.mean(d_before != d_after)),
                  int((~d_before & d_after).sum()), int((d_before & ~d_after).sum()), believed, restored_recall)
