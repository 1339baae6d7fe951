"""Performance estimated before the labels arrive: CBPE per slice and window, beside the realized metrics.

The row work is two summaries in SQL with one point per distinct score: the labelled reference window per slice,
fold and decision, and the log per slice, window and decision with its labelled rows and positives. Everything
after them (calibration, expected confusion matrices, ROC AUC, sampling bands, the gap to the realized value)
works on those points, never on rows.

Definitions follow NannyML's CBPE (its numbers are reproduced to 1e-6 in tests/test_estimate.py); the one
difference is the calibration decision's split, stated in `needs_calibration`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import duckdb
import numpy as np
import polars as pl

from app.core.analysis.slices import AUC_BINS, SliceQuery, ThresholdUnknown, check_dimensions, model_info
from app.core.errors import Cancelled, LineproofError
from app.core.progress import NullProgress, Progress, check_cancelled, interrupt_on_cancel
from app.core.stats.cbpe import METRICS, Confusion, ReferenceSpread, band, realized_auc
from app.core.stats.isotonic import (
    IsotonicMap,
    chance_calibration_error,
    expected_calibration_error,
    fit_isotonic,
)
from app.core.store.db import one
from app.core.store.project import Project
from app.core.store.sources import sql_ident, sql_literal

WINDOWS = ("day", "week", "month", "all")
FOLDS = 10  # calibration decision: out-of-fold ECE over this many folds of the reference
CHANCE_FACTOR = 2.0  # miscalibration is shown when the ECE exceeds this many times its chance level
# A gap is flagged beyond 3.5 standard errors of the labelled rows: six metrics per window at 3.5 each raise a
# chance flag about as often (0.3% of windows) as one metric at 3.
GAP_SIGMAS = 3.5
# ... and by at least 3 points: on 100k-row windows sampling noise vanishes, and a real but small deviation (the
# model a little off in one region of its inputs as the season moves them) is not the broken confidence a gap means.
GAP_MIN = 0.03
MIN_ROWS = 300  # rows a window needs before an estimate is shown
MIN_REFERENCE = 200  # labelled reference rows a slice needs, of both classes
MISSING = "(missing)"
REFERENCE_WEEKS = 8  # the default reference: the first 8 labelled weeks
MODES = ("auto", "exact", "bounded")
EXACT_MAX_ROWS = 1_000_000  # above this, auto mode pools rows into score bins (cost like the slice table's)
BINS = AUC_BINS  # bounded mode: the slice table's score bins, exact when scores have at most 3 decimals
REFERENCE_DECIMALS = 3  # bounded mode fits the calibration on reference scores rounded like its bins


class EstimateError(LineproofError):
    """Estimation cannot be done as asked (the message says what it needs)."""


@dataclass(frozen=True)
class EstimateQuery:
    """One model version, a labelled reference window, slice dimensions and the time window."""

    version_id: str
    reference: tuple[datetime, datetime]  # [start, end)
    by: tuple[str, ...] = ()
    window: str = "week"
    min_rows: int = MIN_ROWS
    min_reference: int = MIN_REFERENCE
    threshold: float | None = None  # default: the log's decisions, else the version's threshold
    mode: str = "auto"  # "exact", "bounded", or "auto": exact up to EXACT_MAX_ROWS logged rows
    where: tuple[tuple[str, str], ...] = ()  # (dimension, value) filters, e.g. the slice a user drilled into
    start: datetime | None = None  # rows estimated: from (inclusive)
    end: datetime | None = None  # to (exclusive); window "all" makes the whole span one window


@dataclass(frozen=True)
class SliceCalibration:
    """How one slice's scores were turned into probabilities, or why the slice has no estimate."""

    key: tuple[str, ...]
    reference_rows: int
    reference_positives: int
    calibrated: bool = False
    ece_raw: float | None = None
    ece_calibrated: float | None = None
    problem: str | None = None


@dataclass(frozen=True)
class EstimateTable:
    """One row per slice and window: each metric estimated, its band, the realized value and the gap."""

    query: EstimateQuery
    rows: pl.DataFrame
    calibration: tuple[SliceCalibration, ...]
    notes: tuple[str, ...] = ()
    bounded: bool = False  # rows pooled into score bins: see the *_max_error columns

    def flagged(self) -> pl.DataFrame:
        """Windows whose realized metrics left the estimate's band: the model's confidence no longer holds."""
        return self.rows.filter(pl.col("gap_flagged"))


def compute_estimates(project: Project, query: EstimateQuery, progress: Progress | None = None) -> EstimateTable:
    """Estimated (and, where labelled, realized) binary metrics per slice and window of one model version."""
    progress = progress or NullProgress()
    use_pred, threshold = _decisions(project, query)
    keys = list(query.by)
    con = project.cursor()
    try:
        with interrupt_on_cancel(progress, con):
            # the coverage summary knows rows per plant and line without a scan; other filters count as the whole
            summary_keys = [(d, v) for d, v in query.where if d in ("plant", "line")]
            rows = one(con, "SELECT coalesce(sum(rows), 0) FROM coverage_summary WHERE version_id = ?" + "".join(
                f" AND {sql_ident(d)} = {sql_literal(v)}" for d, v in summary_keys), [query.version_id])[0]
            bounded = query.mode == "bounded" or query.mode == "auto" and rows > EXACT_MAX_ROWS
            progress.report(0.05, "Summarising the labelled reference")
            reference = con.sql(_reference_sql(query, use_pred, bounded), params=_params(query, threshold)).pl()
            _check_reference(query, reference)
            progress.report(0.3, "Calibrating each slice on its reference")
            fitted = {key: _calibrate(query, key, part) for key, part in _split(reference, keys).items()}
            check_cancelled(progress)
            progress.report(0.4, "Expected and realized confusion per slice and window")
            con.register("_estimate_map", _edges(query, fitted) if bounded else _knots(query, fitted))
            windows = con.sql(_windows_sql(query, use_pred, bounded),
                              params={"v": query.version_id, "t": threshold}).pl()
            con.unregister("_estimate_map")
            unscored = one(con, "SELECT count(*) FROM predictions WHERE version_id = ? AND score IS NULL",
                           [query.version_id])[0]
    except duckdb.InterruptException as exc:
        raise Cancelled() from exc
    finally:
        con.close()
    _check_windows(query, windows)
    progress.report(0.9, "Bands and gaps")
    records, calibrations = [], []
    for key, part in _split(windows.sort([*keys, "period"]), keys).items():
        calibration, spread = fitted.get(key, (SliceCalibration(
            key, 0, 0, problem="no labelled rows in the reference window"), None, None))[::2]
        calibrations.append(calibration)
        records += _records(query, key, part, calibration, spread)
    table = pl.DataFrame(records, infer_schema_length=None) if records else _empty(query)
    table = table.sort([*keys, "period"])
    progress.report(1.0, f"{table.height:,} windows estimated")
    calibrations.sort(key=lambda c: c.key)
    return EstimateTable(query, table, tuple(calibrations), _notes(calibrations, unscored, use_pred, bounded), bounded)


def default_reference(project: Project, version_id: str, weeks: int = REFERENCE_WEEKS
                      ) -> tuple[datetime, datetime] | None:
    """The first `weeks` weeks of a version's log whose labels have mostly arrived (half the rows or more)."""
    with project.reading() as con:
        rows = con.execute("SELECT week, sum(rows), sum(labelled) FROM coverage_summary WHERE version_id = ? "
                           "GROUP BY week ORDER BY week", [version_id]).fetchall()
    labelled = [w for w, n, k in rows if n and k >= 0.5 * n]
    if not labelled:
        return None
    run = [labelled[0]]
    for week in labelled[1:weeks]:
        if week - run[-1] != timedelta(days=7):
            break
        run.append(week)
    start = datetime.combine(run[0], datetime.min.time())
    return start, start + timedelta(days=7 * len(run))


def binary_reference(project: Project, version_id: str) -> tuple[datetime, datetime] | None:
    """The default reference of a binary version, or None where estimation does not apply (another task, or no
    labelled weeks yet)."""
    if model_info(project, version_id)[0] != "binary":
        return None
    return default_reference(project, version_id)


def slice_estimate(project: Project, version_id: str, where: tuple[tuple[str, str], ...], window: str = "week",
                   progress: Progress | None = None) -> EstimateTable | None:
    """Estimates for one slice over time against the default reference; None where estimation cannot apply."""
    reference = binary_reference(project, version_id)
    if reference is None:
        return None
    try:
        return compute_estimates(project, EstimateQuery(version_id, reference, window=window, where=where), progress)
    except (EstimateError, ThresholdUnknown):
        return None


def _decisions(project: Project, query: EstimateQuery) -> tuple[bool, float]:
    task, threshold, has_pred = model_info(project, query.version_id)
    if task != "binary":
        raise EstimateError(f"Estimation needs a binary classifier; {query.version_id} is a {task} model.",
                            "Confidence-based estimation works from the probability of the positive class. For this "
                            "model, read measured performance with `lineproof slices` once labels arrive.")
    if query.mode not in MODES:
        raise EstimateError(f"Unknown mode {query.mode!r}.", f"Use one of {', '.join(MODES)}.")
    if query.window not in WINDOWS:
        raise EstimateError(f"Unknown time window {query.window!r}.", f"Use one of {', '.join(WINDOWS)}.")
    check_dimensions(project, SliceQuery(query.version_id, query.by, where=query.where))
    start, end = query.reference
    if start is None or end is None or start >= end:
        raise EstimateError("The reference window is empty.", "Give FROM..TO with FROM before TO, e.g. "
                            "--reference 2026-05-04..2026-06-29.")
    use_pred = has_pred and query.threshold is None
    if query.threshold is not None:
        threshold = query.threshold
    if threshold is None and not use_pred:
        raise ThresholdUnknown(f"{query.version_id} is not a registered model and its log carries no predicted "
                               "labels, so its decision threshold is unknown.",
                               "Give the threshold (--threshold 0.4), or import the log with its decision column.")
    return use_pred, threshold if threshold is not None else 0.5


def _params(query: EstimateQuery, threshold: float) -> dict:
    return {"v": query.version_id, "t": threshold, "rs": query.reference[0], "re": query.reference[1]}


def _key_sql(query: EstimateQuery) -> str:
    return "".join(f"coalesce(p.{sql_ident(d)}::VARCHAR, '{MISSING}') AS {sql_ident(d)}, " for d in query.by)


def _period_sql(query: EstimateQuery) -> str:
    if query.window == "all":
        return f"DATE {sql_literal(str((query.start or datetime(1970, 1, 1)).date()))}"
    return f"date_trunc('{query.window}', p.ts)::DATE"


def _span(query: EstimateQuery) -> str:
    out = f" AND p.ts >= TIMESTAMP {sql_literal(query.start.isoformat(sep=' '))}" if query.start else ""
    return out + (f" AND p.ts < TIMESTAMP {sql_literal(query.end.isoformat(sep=' '))}" if query.end else "")


def _filters(query: EstimateQuery) -> str:
    return "".join(f" AND p.{sql_ident(d)}::VARCHAR = {sql_literal(v)}" for d, v in query.where)


def _decided(use_pred: bool) -> str:
    # The line's own decisions are what happened; a threshold given on the command line overrides them.
    rule = ("CASE WHEN p.predicted_label IS NOT NULL THEN p.predicted_label = 1 ELSE p.score >= $t END" if use_pred
            else "p.score >= $t")
    return f"({rule})::INTEGER AS decided"


def _reference_sql(query: EstimateQuery, use_pred: bool, bounded: bool) -> str:
    """Labelled reference rows per slice, fold (by record id), score (rounded in bounded mode) and decision."""
    score = f"round(p.score, {REFERENCE_DECIMALS}) AS score" if bounded else "p.score"
    return f"""SELECT {_key_sql(query)}(hash(p.record_id) % {FOLDS})::INTEGER AS fold, {score}, {_decided(use_pred)},
                      count(*) AS n, sum(l.label)::BIGINT AS positives,
                      count(*) FILTER (WHERE l.label NOT IN (0, 1)) AS not_binary
               FROM predictions p JOIN labels l USING (record_id)
               WHERE p.version_id = $v AND p.score IS NOT NULL AND p.ts >= $rs AND p.ts < $re{_filters(query)}
               GROUP BY ALL"""


def _windows_sql(query: EstimateQuery, use_pred: bool, bounded: bool) -> str:
    """Per slice and window: expected confusion (p from the slice's map), counted confusion, and both ROC AUCs.

    Rows are first pooled per distinct score (exact) or per score bin (bounded); one pass from the highest
    score down accumulates the expected positives (for the expected ROC curve) and the labelled negatives (for
    the realized Mann-Whitney count). In bounded mode a bin counts as one tie (hence the AUCs' error bounds),
    and p is the slice's map drawn straight between the bin edges, which a bin's row count and score sum
    integrate exactly; `count_error` bounds what that changes in each expected count.
    """
    keys = [sql_ident(d) for d in query.by]
    part = ", ".join([*keys, "period"])
    if bounded:
        grain = "bin"
        pooled = (f"greatest(0, least(floor(round(score * {BINS}, 6)), {BINS - 1}))::INTEGER AS bin, "
                  "sum(score) AS s, coalesce(sum(score) FILTER (WHERE decided = 1), 0) AS s1")
        mapped = f"""SELECT g.*, k.v * n + k.slope * (s - n * k.edge) AS e, k.v * n1 + k.slope * (s1 - n1 * k.edge) AS e1,
                            n * k.rise AS err
                     FROM g LEFT JOIN _estimate_map k ON {" AND ".join([*(f"g.{k} = k.{k}" for k in keys), "g.bin = k.bin"])}"""
    else:
        grain = "score"
        pooled = "score"
        p = "CASE WHEN k.x_next IS NULL THEN k.y ELSE k.y + (g.score - k.x) * (k.y_next - k.y) / (k.x_next - k.x) END"
        mapped = f"""SELECT g.*, ({p}) * n AS e, ({p}) * n1 AS e1, 0::DOUBLE AS err
                     FROM g ASOF LEFT JOIN _estimate_map k ON {" AND ".join([*(f"g.{k} = k.{k}" for k in keys), "g.score >= k.x"])}"""
    return f"""
WITH g AS (SELECT {part}, {pooled}, count(*) AS n, count(*) FILTER (WHERE decided = 1) AS n1,
                  count(label) AS labelled, count(label) FILTER (WHERE decided = 1) AS labelled1,
                  coalesce(sum(label), 0) AS positives, coalesce(sum(label) FILTER (WHERE decided = 1), 0) AS positives1,
                  count(*) FILTER (WHERE label NOT IN (0, 1)) AS not_binary, min(score) AS low, max(score) AS high
           FROM (SELECT {_key_sql(query)}{_period_sql(query)} AS period, p.score,
                        {_decided(use_pred)}, l.label
                 FROM predictions p LEFT JOIN labels l USING (record_id)
                 WHERE p.version_id = $v AND p.score IS NOT NULL{_filters(query)}{_span(query)})
           GROUP BY ALL),
c AS ({mapped}),
w AS (SELECT *, labelled - positives AS negatives, sum(e) OVER win AS cum_e, sum(labelled - positives) OVER win AS cum_neg
      FROM c WINDOW win AS (PARTITION BY {part} ORDER BY {grain} DESC ROWS UNBOUNDED PRECEDING))
SELECT {part}, sum(n)::BIGINT AS n, sum(labelled)::BIGINT AS labelled,
       sum(e1) AS tp, sum(n1 - e1) AS fp, sum(e - e1) AS fn, sum(n - n1 - e + e1) AS tn,
       sum(positives1)::DOUBLE AS rtp, sum(labelled1 - positives1)::DOUBLE AS rfp,
       sum(positives - positives1)::DOUBLE AS rfn, sum(labelled - labelled1 - positives + positives1)::DOUBLE AS rtn,
       sum(e) AS expected, sum((n - e) * (2 * cum_e - e)) AS auc_area,
       sum(positives * (cum_neg - 0.5 * negatives)) AS auc_wrong,
       {"sum(e * (n - e))" if bounded else "0"}::DOUBLE AS expected_tied,
       {"sum(positives * negatives)" if bounded else "0"}::DOUBLE AS labelled_tied, sum(err)::DOUBLE AS count_error,
       min(low) AS low, max(high) AS high, coalesce(sum(n) FILTER (WHERE low < 0 OR high > 1), 0) AS outside,
       sum(not_binary) AS not_binary
FROM w GROUP BY {part}"""


def _edges(query: EstimateQuery, fitted: dict) -> pl.DataFrame:
    """Each slice's map drawn straight between the score bins' edges: per bin its value at the lower edge,
    slope, and rise (how far the straight line can be from the map inside the bin; none for the identity)."""
    edges = np.arange(BINS + 1) / BINS
    frames = []
    for key, (calibration, mapping, _) in fitted.items():
        if calibration.problem:
            continue
        values = mapping(edges) if mapping is not None else edges
        rise = np.diff(values)
        frame = pl.DataFrame({"bin": np.arange(BINS, dtype=np.int32), "edge": edges[:-1], "v": values[:-1],
                              "slope": rise * BINS, "rise": rise if mapping is not None else np.zeros(BINS)})
        frames.append(frame.with_columns(*(pl.lit(v, pl.Utf8).alias(d) for d, v in zip(query.by, key, strict=True))))
    schema = {d: pl.Utf8 for d in query.by} | {"bin": pl.Int32, "edge": pl.Float64, "v": pl.Float64,
                                               "slope": pl.Float64, "rise": pl.Float64}
    return pl.concat(frames).select(list(schema)) if frames else pl.DataFrame(schema=schema)


def _knots(query: EstimateQuery, fitted: dict) -> pl.DataFrame:
    """Each slice's score -> probability map as segments (x, y) -> (x_next, y_next) for the ASOF join.

    A calibrated slice gets its isotonic knots, plus a flat segment from below 0 so lower scores take the first
    value; any other slice gets the identity (0, 0) -> (1, 1), which gives back the score itself.
    """
    frames = []
    for key, (calibration, mapping, _) in fitted.items():
        if calibration.problem:
            continue
        if mapping is None:
            x, y = np.array([0.0, 1.0]), np.array([0.0, 1.0])
        else:
            x = np.concatenate(([-1.0], mapping.knots))
            y = np.concatenate(([mapping.values[0]], mapping.values))
        frame = pl.DataFrame({"x": x, "y": y}).with_columns(
            pl.col("x").shift(-1).alias("x_next"), pl.col("y").shift(-1).alias("y_next"))
        frames.append(frame.with_columns(*(pl.lit(v, pl.Utf8).alias(d) for d, v in zip(query.by, key, strict=True))))
    schema = {d: pl.Utf8 for d in query.by} | {"x": pl.Float64, "y": pl.Float64, "x_next": pl.Float64,
                                               "y_next": pl.Float64}
    return pl.concat(frames).select(list(schema)) if frames else pl.DataFrame(schema=schema)


def _check_reference(query: EstimateQuery, reference: pl.DataFrame) -> None:
    start, end = query.reference
    if not reference.height:
        raise EstimateError(f"The reference window {start:%Y-%m-%d}..{end:%Y-%m-%d} has no labelled predictions of "
                            f"{query.version_id}.", "Estimation calibrates on labelled rows: choose a window whose "
                            "labels have arrived (see `lineproof slices --window week` for labelled coverage).")
    _check_labels(query, int(reference["not_binary"].sum()))


def _check_labels(query: EstimateQuery, bad: int) -> None:
    if bad:
        raise EstimateError(f"{bad:,} labels of {query.version_id} are not 0 or 1, but estimation is for binary "
                            "classifiers.", "Re-import the labels as 0 (good) / 1 (defect); nothing was estimated.")


def _check_windows(query: EstimateQuery, windows: pl.DataFrame) -> None:
    if not windows.height:
        raise EstimateError(f"No scored predictions are logged for {query.version_id}.",
                            "Estimation needs the model's probability per row: import a log with a score column.")
    _check_labels(query, int(windows["not_binary"].sum()))
    outside = int(windows["outside"].sum())
    if outside:
        raise EstimateError(f"Estimation needs probabilities, but {outside:,} scores of {query.version_id} lie outside "
                            f"[0, 1] (from {windows['low'].min():g} to {windows['high'].max():g}).",
                            "Log the model's probability of the positive class (for a logit or a margin, its "
                            "sigmoid); nothing was estimated.")


def _split(frame: pl.DataFrame, keys: list[str]) -> dict[tuple[str, ...], pl.DataFrame]:
    if not keys:
        return {(): frame}
    return {tuple(k): part for k, part in frame.partition_by(keys, as_dict=True).items()}


def _points(frame: pl.DataFrame, *group: str) -> pl.DataFrame:
    return frame.group_by(*group, "score").agg(pl.col("n").sum(), pl.col("positives").sum()).sort(*group, "score")


def needs_calibration(points: pl.DataFrame, whole: pl.DataFrame) -> tuple[bool, float | None, float | None]:
    """Calibrate when the reference shows miscalibration and out-of-fold isotonic calibration lowers the ECE.

    NannyML calibrates whenever the out-of-fold ECE drops at all, which on a well-calibrated model is a coin
    flip; here the logged scores' ECE must also exceed twice the ECE a calibrated model shows by chance on as
    many rows. NannyML scores ten seeded 10% shuffle splits; here the ten folds are a hash of the record id, so
    the decision is reproducible from the project alone. `points` are per (fold, score), `whole` the same rows per
    score. Returns (decision, ECE as logged, ECE calibrated).
    """
    n, k = points["n"].to_numpy(), points["positives"].to_numpy()
    if k.sum() == 0 or k.sum() == n.sum():
        return False, None, None
    if realized_auc(whole["score"].to_numpy(), whole["n"].to_numpy(), whole["positives"].to_numpy()) > 0.999:
        return False, None, None
    scores, folds = points["score"].to_numpy(), points["fold"].to_numpy()
    raw = expected_calibration_error(scores, n, k)
    if raw <= CHANCE_FACTOR * chance_calibration_error(scores, n, k):
        return False, raw, None
    # The decision's fold fits use scores to 3 decimals (at most 1,001 knots each): the decision is a yes/no,
    # and the map used for the estimates is fitted on the exact scores.
    coarse = points.group_by("fold", pl.col("score").round(3).alias("knot")).agg(
        pl.col("n").sum(), pl.col("positives").sum()).sort("knot")
    knots, knot_n, knot_k, knot_fold = (coarse[c].to_numpy() for c in ("knot", "n", "positives", "fold"))
    calibrated = np.empty_like(scores)
    for fold in np.unique(folds):
        train = knot_fold != fold
        if not train.any():
            return False, raw, None
        held = folds == fold
        calibrated[held] = fit_isotonic(knots[train], knot_n[train], knot_k[train])(scores[held])
    fitted = expected_calibration_error(calibrated, n, k)
    return bool(raw > fitted), raw, fitted


def _calibrate(query: EstimateQuery, key: tuple[str, ...], reference: pl.DataFrame | None
               ) -> tuple[SliceCalibration, IsotonicMap | None, ReferenceSpread | None]:
    if reference is None or not reference.height:
        return SliceCalibration(key, 0, 0, problem="no labelled rows in the reference window"), None, None
    rows, positives = int(reference["n"].sum()), int(reference["positives"].sum())
    if rows < query.min_reference or positives == 0 or positives == rows:
        problem = (f"reference has {rows:,} labelled rows ({positives:,} positive); estimation needs at least "
                   f"{query.min_reference:,} with both classes")
        return SliceCalibration(key, rows, positives, problem=problem), None, None
    whole = _points(reference)
    decision, raw, fitted = needs_calibration(reference.group_by("fold", "score").agg(
        pl.col("n").sum(), pl.col("positives").sum()), whole)
    scores, n, k = (whole[c].to_numpy() for c in ("score", "n", "positives"))
    mapping = fit_isotonic(scores, n, k) if decision else None
    by_decision = reference.group_by("decided").agg(pl.col("n").sum(), pl.col("positives").sum())
    spread = ReferenceSpread.measure(_confusion(by_decision, "n", "positives"), scores, n, k)
    return SliceCalibration(key, rows, positives, decision, raw, fitted), mapping, spread


def _confusion(by_decision: pl.DataFrame, rows: str, positives: str) -> Confusion:
    """Counted confusion matrix from (decided, rows, positives)."""
    counts = {d: (float(r), float(p)) for d, r, p in by_decision.select("decided", rows, positives).iter_rows()}
    n1, p1 = counts.get(1, (0.0, 0.0))
    n0, p0 = counts.get(0, (0.0, 0.0))
    return Confusion(tp=p1, fp=n1 - p1, fn=p0, tn=n0 - p0)


def _records(query: EstimateQuery, key: tuple[str, ...], windows: pl.DataFrame, calibration: SliceCalibration,
             spread: ReferenceSpread | None) -> list[dict]:
    """One record per window of a slice, from its summary row."""
    out = []
    for w in windows.iter_rows(named=True):
        rows, labelled = w["n"], w["labelled"]
        record = dict(zip(query.by, key, strict=True))
        record.update(period=w["period"], n=rows, labelled=labelled, in_reference=_overlaps(query, w["period"]),
                      calibrated=calibration.calibrated)
        realized = Confusion(w["rtp"], w["rfp"], w["rfn"], w["rtn"]).metrics()
        pairs = (w["rtp"] + w["rfn"]) * (w["rfp"] + w["rtn"])
        realized["auc"] = 1.0 - w["auc_wrong"] / pairs if pairs > 0 else None
        estimated: dict[str, float | None] = {m: None for m in METRICS}
        expected_pairs = 0.0
        status = calibration.problem or ("estimated" if rows >= query.min_rows
                                         else f"too few rows ({rows:,} < {query.min_rows:,})")
        if status == "estimated":
            estimated = Confusion(w["tp"], w["fp"], w["fn"], w["tn"]).metrics()
            expected_pairs = 2.0 * w["expected"] * (rows - w["expected"])
            estimated["auc"] = w["auc_area"] / expected_pairs if expected_pairs > 0 else None
        record["status"] = status
        # bounded mode: a score bin counts as one tie (at most half its pairs can be misordered), and each
        # expected count can move by count_error rows between the binned map and the exact one
        record["auc_max_error"] = (0.5 * w["expected_tied"] / (expected_pairs / 2.0)
                                   if status == "estimated" and expected_pairs > 0 else None)
        record["auc_realized_max_error"] = 0.5 * w["labelled_tied"] / pairs if pairs > 0 else None
        record["count_max_error"] = w["count_error"] if status == "estimated" else None
        flagged = []
        for m in METRICS:
            error = spread.sampling_error(m, rows) if spread and estimated[m] is not None else None
            lower, upper = band(estimated[m], error)
            gap = (realized[m] - estimated[m]) if realized[m] is not None and estimated[m] is not None else None
            record.update({m: estimated[m], f"{m}_lower": lower, f"{m}_upper": upper,
                           f"{m}_realized": realized[m], f"{m}_gap": gap})
            if gap is not None and labelled >= query.min_rows:
                labelled_error = spread.sampling_error(m, labelled)
                if labelled_error is not None and abs(gap) > max(GAP_SIGMAS * labelled_error, GAP_MIN):
                    flagged.append(m)
        record["gap_flagged"] = bool(flagged)
        record["gap_metrics"] = ",".join(flagged)
        out.append(record)
    return out


def _overlaps(query: EstimateQuery, period: date) -> bool:
    start, end = query.reference
    if query.window == "all":
        return (query.start is None or query.start < end) and (query.end is None or query.end > start)
    if query.window == "day":
        period_end = period + timedelta(days=1)
    elif query.window == "week":
        period_end = period + timedelta(days=7)
    else:
        period_end = (period.replace(day=28) + timedelta(days=4)).replace(day=1)
    return period < end.date() and period_end > start.date()


def _empty(query: EstimateQuery) -> pl.DataFrame:
    cols = {d: pl.Utf8 for d in query.by} | {"period": pl.Date, "n": pl.Int64, "labelled": pl.Int64,
                                             "in_reference": pl.Boolean, "calibrated": pl.Boolean, "status": pl.Utf8}
    for m in METRICS:
        cols |= {m: pl.Float64, f"{m}_lower": pl.Float64, f"{m}_upper": pl.Float64, f"{m}_realized": pl.Float64,
                 f"{m}_gap": pl.Float64}
    return pl.DataFrame(schema=cols | {"auc_max_error": pl.Float64, "auc_realized_max_error": pl.Float64,
                                       "count_max_error": pl.Float64, "gap_flagged": pl.Boolean,
                                       "gap_metrics": pl.Utf8})


def _notes(calibrations: list[SliceCalibration], unscored: int, use_pred: bool, bounded: bool) -> tuple[str, ...]:
    notes = []
    if bounded:
        notes.append(f"Rows pooled into {BINS:,} score bins (more than {EXACT_MAX_ROWS:,} rows): ROC AUC within "
                     "auc_max_error, expected counts within count_max_error; --exact for exact values.")
    fitted = [", ".join(c.key) or "all rows" for c in calibrations if c.calibrated]
    if fitted:
        notes.append(f"Scores recalibrated (isotonic, fitted on the reference) for: {'; '.join(fitted)}.")
    refused = [f"{', '.join(c.key) or 'all rows'}: {c.problem}" for c in calibrations if c.problem]
    if refused:
        notes.append("No estimate for " + "; ".join(refused) + ".")
    if unscored:
        notes.append(f"{unscored:,} logged rows without a score are left out.")
    if use_pred:
        notes.append("Decisions are the predicted labels in the log; rows without one use the threshold.")
    return tuple(notes)
