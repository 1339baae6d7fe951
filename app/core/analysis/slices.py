"""Slice performance: metrics per plant, line, asset, shift, firmware and time window, with intervals.

All row work happens in DuckDB over predictions LEFT JOIN labels; only one row per slice (and, for ROC AUC,
per slice and score bin) comes back. Scores are assumed to be probabilities for binary models.

ROC AUC is computed from scores quantised to AUC_BINS bins (a Mann-Whitney count over bins, ties inside a
bin counted one half). It is exact when scores have at most three decimals; otherwise `auc_max_error` gives
the largest possible difference to the exact value (half the share of positive-negative pairs that share a bin).
NaN or infinite scores never reach this module: ingest refuses them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import duckdb
import polars as pl

from app.core.engine.rows import LocalRows
from app.core.errors import Cancelled, LineproofError
from app.core.progress import NullProgress, Progress, check_cancelled, interrupt_on_cancel
from app.core.stats.intervals import hanley_mcneil, normal_mean, wilson, z_value
from app.core.store.db import one
from app.core.store.project import Project
from app.core.store.sources import sql_ident, sql_literal

AUC_BINS = 1000
WINDOWS = ("day", "week", "month")
PERIOD = "period"
RECENT_DAYS = 14
BINARY_METRICS = ("accuracy", "precision", "recall", "f1", "fpr", "auc", "brier")
REGRESSION_METRICS = ("mae", "rmse", "bias")
MULTICLASS_METRICS = ("accuracy", "macro_f1")
LOWER_IS_BETTER = {"fpr", "brier", "mae", "rmse"}
METRIC_LABELS = {"accuracy": "Accuracy", "precision": "Precision", "recall": "Recall", "f1": "F1",
                 "fpr": "False-alarm rate", "auc": "ROC AUC", "brier": "Brier score", "mae": "MAE",
                 "rmse": "RMSE", "bias": "Bias", "macro_f1": "Macro F1", "coverage": "Label coverage"}


class SliceError(LineproofError):
    """A slice query cannot be answered as asked."""


@dataclass(frozen=True)
class SliceQuery:
    """What to slice: one model version, by dimensions and optionally a time window."""

    version_id: str
    by: tuple[str, ...] = ()
    window: str | None = None  # day, week, month
    start: datetime | None = None
    end: datetime | None = None  # exclusive
    where: tuple[tuple[str, str], ...] = ()  # (dimension, value) filters, e.g. a drilled-into slice
    min_support: int = 30
    confidence: float = 0.95
    threshold: float | None = None  # default: the model version's threshold
    latency: bool = True  # label delay and recent coverage
    auc: bool = True  # ROC AUC needs a group per score bin: about twice the time of the other metrics
    log: str | None = None  # an attached log's name; None: the project's own log
    engine: str | None = None  # duckdb or spark for an attached log; None: the project's [engine] setting

    @property
    def keys(self) -> tuple[str, ...]:
        """Group keys: the dimensions, then the time window."""
        return self.by + ((PERIOD,) if self.window else ())


@dataclass(frozen=True)
class SliceTable:
    """Metrics per slice plus the overall row, as polars DataFrames."""

    query: SliceQuery
    task: str
    threshold: float
    metrics: tuple[str, ...]
    overall: pl.DataFrame
    slices: pl.DataFrame
    notes: tuple[str, ...] = field(default_factory=tuple)
    logged_decisions: bool = False  # decisions from the log's predicted labels rather than the threshold

    def worst(self, metric: str) -> pl.DataFrame:
        """Slices ranked worst first by the bound of the metric's interval that favours the slice.

        A slice counts as worse only when even its most favourable plausible value is bad: higher-is-better
        metrics sort by the upper bound ascending, lower-is-better ones by the lower bound descending.
        """
        if metric not in self.metrics:
            raise SliceError(f"{metric!r} is not a metric of a {self.task} model.",
                             f"Choose one of {', '.join(self.metrics)}.")
        lower_better = metric in LOWER_IS_BETTER
        bound = f"{metric}_low" if lower_better else f"{metric}_high"
        if bound not in self.slices.columns:
            bound = metric
        overall = self.overall[metric][0] if self.overall.height else None
        ranked = self.slices.with_columns(
            (pl.col(metric) - overall).alias("vs_overall") if overall is not None else pl.lit(None).alias(
                "vs_overall")).sort(bound, descending=lower_better, nulls_last=True)
        return ranked.with_columns(pl.int_range(1, ranked.height + 1).alias("rank")).select(
            "rank", *[c for c in ranked.columns if c != "rank"])


def resolve_version(project: Project, spec: str) -> str:
    """`weld-defect`, `weld-defect:v1` or a model name -> a version id with logged predictions."""
    con = project.cursor()
    try:
        if ":" in spec and one(con, "SELECT 1 FROM model_versions WHERE version_id = ?", [spec]):
            return spec
        model = one(con, "SELECT model_id FROM models WHERE model_id = ? OR name = ?", [spec, spec])
        logged = con.execute("SELECT version_id, count(*) FROM predictions WHERE version_id IS NOT NULL GROUP BY 1 "
                             "ORDER BY 1").fetchall()
    finally:
        con.close()
    if model:
        mine = [v for v, _ in logged if v.startswith(model[0] + ":")]
        if len(mine) == 1:
            return mine[0]
        if mine:
            raise SliceError(f"{spec} has predictions from several versions: {', '.join(mine)}.",
                             "Name one, e.g. --model " + mine[-1])
        raise SliceError(f"No predictions are logged for {spec}.", "Import its prediction log first.")
    if any(v == spec for v, _ in logged):
        return spec  # an unregistered version that appears in the log
    known = ", ".join(v for v, _ in logged) or "none"
    raise SliceError(f"Unknown model or version {spec!r}.", f"Versions with predictions: {known}.")


class ThresholdUnknown(SliceError):
    """A log-only binary version without predicted labels: nobody said where its decision threshold is."""


def model_info(project: Project, version_id: str) -> tuple[str, float | None, bool]:
    """(task, threshold, whether the log carries predicted labels) of a version; threshold None when unknown."""
    with project.reading() as con:
        row = one(con, "SELECT m.task, v.threshold FROM model_versions v JOIN models m USING (model_id) "
                       "WHERE v.version_id = ?", [version_id])
        rows, decided = one(con, "SELECT count(*), count(predicted_label) FROM predictions WHERE version_id = ?",
                            [version_id])
    if not rows:
        raise SliceError(f"No predictions are logged for {version_id}.",
                         "Import its prediction log, or choose another model version.")
    has_pred = decided > 0
    if row is None:
        return "binary", None, has_pred
    return row[0], float(row[1] if row[1] is not None else 0.5), has_pred


def check_dimensions(project: Project, query: SliceQuery) -> None:
    """Refuse unknown or repeated slice dimensions and unknown time windows."""
    with project.reading() as con:
        slice_cols = {r[0] for r in con.execute("SELECT name FROM log_columns WHERE role = 'slice'").fetchall()}
    wanted = list(query.by) + [d for d, _ in query.where]
    unknown = [d for d in wanted if d not in slice_cols]
    if unknown:
        raise SliceError(f"Unknown slice dimension(s): {', '.join(unknown)}.",
                         f"This project's log has: {', '.join(sorted(slice_cols)) or 'no slice columns yet'}.")
    if query.window and query.window not in WINDOWS:
        raise SliceError(f"Unknown time window {query.window!r}.", f"Use one of {', '.join(WINDOWS)}.")
    if len(set(query.by)) != len(query.by):
        raise SliceError("A dimension is named twice.", "Name each slice dimension once.")


OWN_ROWS = "predictions p LEFT JOIN labels l USING (record_id)"
ATTACHED_ROWS = "_log p LEFT JOIN _labels l USING (record_id)"


def _base_sql(query: SliceQuery, whole_log: bool, rows: str = OWN_ROWS) -> str:
    # Keys stay raw here (NULL groups like any value); '(missing)' is filled in after aggregation.
    keys = [f"p.{sql_ident(d)}" for d in query.by]
    if query.window:
        keys.append(f"date_trunc('{query.window}', p.ts)::DATE AS {PERIOD}")
    where = [] if whole_log else [f"p.version_id = {sql_literal(query.version_id)}"]
    if query.start:
        where.append(f"p.ts >= TIMESTAMP {sql_literal(query.start.isoformat(sep=' '))}")
    if query.end:
        where.append(f"p.ts < TIMESTAMP {sql_literal(query.end.isoformat(sep=' '))}")
    where += [f"p.{sql_ident(d)} = {sql_literal(v)}" for d, v in query.where]
    cols = ", ".join(keys + ["p.ts", "p.score", "p.predicted_label", "l.label", "l.labelled_at"])
    condition = f" WHERE {' AND '.join(where)}" if where else ""
    return f"SELECT {cols} FROM {rows}{condition}"


def _latency_sql(query: SliceQuery) -> str:
    """Aggregates for label delay and recent coverage, or zeros when the query skips them."""
    if not query.latency:
        return "0.0 AS delay_days, 0::BIGINT AS n_recent, 0::BIGINT AS nl_recent"
    return ("coalesce(sum(epoch_us(labelled_at) - epoch_us(ts)), 0) / 86400e6 AS delay_days, "
            "count(*) FILTER (WHERE ts >= $recent) AS n_recent, count(label) FILTER (WHERE ts >= $recent) AS nl_recent")


def compute_slices(project: Project, query: SliceQuery, progress: Progress | None = None) -> SliceTable:
    """Metrics per slice and overall for one model version (binary, regression or multiclass)."""
    progress = progress or NullProgress()
    if query.log:
        from app.core.analysis.attached import compute_attached
        return compute_attached(project, query, progress)
    check_dimensions(project, query)
    task, threshold, has_pred = model_info(project, query.version_id)
    # The line's own decisions (a predicted label column) are what happened; a threshold given here overrides
    # them to explore another operating point.
    use_pred = has_pred and query.threshold is None
    if query.threshold is not None:
        threshold = query.threshold
    _check_threshold(query, task, threshold, use_pred)
    con = project.cursor()
    try:
        with interrupt_on_cancel(progress, con):
            return _compute(project, con, query, task, threshold if threshold is not None else 0.5, progress,
                            use_pred)
    except duckdb.InterruptException as exc:
        raise Cancelled() from exc
    finally:
        con.close()


def _check_threshold(query: SliceQuery, task: str, threshold: float | None, use_pred: bool) -> None:
    if task == "binary" and threshold is None and not use_pred:
        raise ThresholdUnknown(f"{query.version_id} is not a registered model and its log carries no predicted "
                               "labels, so its decision threshold is unknown.",
                               "Give the threshold (--threshold 0.4, or Threshold on the Slices screen), import the "
                               "log with its decision column (--map predicted_label=pred), or register the model.")


def _compute(project: Project, con, query: SliceQuery, task: str, threshold: float,
             progress: Progress, use_pred: bool = False) -> SliceTable:
    # The coverage summary (kept in every import's transaction) knows the last row's time without a scan.
    latest = one(con, "SELECT max(last_ts) FROM coverage_summary WHERE version_id = ?", [query.version_id])[0]
    if latest is None:
        raise SliceError(f"No predictions are logged for {query.version_id}.",
                         "Import its prediction log, or choose another model version.")
    progress.report(0.1, "Joining predictions with labels")
    # Input-only rows (no version) count as another version here: they must never reach the metrics.
    versions = one(con, "SELECT count(DISTINCT coalesce(version_id, '')) FROM coverage_summary")[0]
    con.execute(f"CREATE OR REPLACE TEMP VIEW _slice_base AS {_base_sql(query, whole_log=versions == 1)}")
    return summarise(con, query, task, threshold, progress, use_pred, latest, LocalRows(con))


def summarise(con, query: SliceQuery, task: str, threshold: float, progress: Progress, use_pred: bool,
              latest: datetime, rows) -> SliceTable:
    """From the relation _slice_base (defined by the caller on the engine `rows` runs on) to the slice table:
    the row work goes through `rows.materialise`, everything after it reads the summaries in `con`."""
    recent_from = min(latest, query.end or latest) - timedelta(days=RECENT_DAYS)
    check_cancelled(progress)
    if task != "binary" and rows.name != "duckdb":
        raise SliceError(f"{task.capitalize()} models are summarised on DuckDB only so far.",
                         "Use --engine duckdb for this version (the attached files are read in place).")
    if task == "binary":
        overall, slices = _binary(con, query, threshold, recent_from, progress, use_pred, rows)
        metrics = BINARY_METRICS
    elif task == "regression":
        overall, slices = _regression(con, query, recent_from)
        metrics = REGRESSION_METRICS
    else:
        overall, slices = _multiclass(con, query, recent_from)
        metrics = MULTICLASS_METRICS
    con.execute("DROP VIEW IF EXISTS _slice_base")
    progress.report(0.9, "Intervals and ranking")
    z = z_value(query.confidence)
    finish = {"binary": _binary_metrics, "regression": _regression_metrics, "multiclass": _multiclass_metrics}[task]
    overall, slices = finish(overall, z), finish(slices, z)
    if task == "binary" and not query.auc:
        blank = [pl.lit(None, pl.Float64).alias(c) for c in ("auc", "auc_low", "auc_high", "auc_max_error")]
        overall, slices = overall.with_columns(blank), slices.with_columns(blank)
    overall, slices = _support(overall, query, metrics), _support(slices, query, metrics)
    if query.by:
        slices = slices.with_columns(pl.col(list(query.by)).cast(pl.Utf8).fill_null("(missing)"))
    if query.keys:
        slices = slices.sort(list(query.keys))
    progress.report(1.0, f"{slices.height:,} slices")
    notes = (f"ROC AUC from scores in {AUC_BINS} bins; see auc_max_error.",) if task == "binary" else ()
    if task == "binary" and use_pred:
        notes += ("Decisions are the predicted labels in the log (what the line did); rows without one use the "
                  "threshold.",)
    return SliceTable(query, task, threshold, metrics, overall, slices, notes, use_pred)


def _partition(keys: tuple[str, ...]) -> str:
    return f"PARTITION BY {', '.join(sql_ident(k) for k in keys)} " if keys else ""


def _key_list(keys: tuple[str, ...]) -> str:
    return "".join(f"{sql_ident(k)}, " for k in keys)


def _binary(con, query: SliceQuery, threshold: float, recent_from: datetime, progress: Progress,
            use_pred: bool, rows):
    keys = query.keys
    flagged = ("(CASE WHEN predicted_label IS NOT NULL THEN predicted_label = 1 ELSE score >= $t END)" if use_pred
               else "score >= $t")
    bin_expr = (f"greatest(0, least(floor(round(score * {AUC_BINS}, 6)), {AUC_BINS - 1}))::INTEGER"
                if query.auc else "0")
    # The row work: one row per slice and score bin. Everything below reads only these bins.
    rows.materialise("_slice_bins", f"""
        SELECT {_key_list(keys)}
               {bin_expr} AS bin,
               count(*) AS n, count(label) AS nl, coalesce(sum(label), 0)::BIGINT AS np,
               count(*) FILTER (WHERE label = 1 AND {flagged}) AS tp,
               count(*) FILTER (WHERE label = 0 AND {flagged}) AS fp,
               coalesce(sum((score - label) ^ 2), 0) AS se, {_latency_sql(query)},
               count(*) FILTER (WHERE label NOT IN (0, 1)) AS not_binary
        FROM _slice_base GROUP BY ALL""", {"t": threshold, **({"recent": recent_from} if query.latency else {})})
    bad = one(con, "SELECT coalesce(sum(not_binary), 0) FROM _slice_bins")[0]
    if bad:
        con.execute("DROP TABLE IF EXISTS _slice_bins")
        raise SliceError(f"{bad:,} labels of {query.version_id} are not 0 or 1, but the model is binary.",
                         "Re-import the labels as 0 (good) / 1 (defect), or fix the model's task.")
    check_cancelled(progress)
    progress.report(0.7, "Ranking scores for ROC AUC")
    sums = ("coalesce(sum(n), 0)::BIGINT AS n, coalesce(sum(nl), 0)::BIGINT AS labelled, coalesce(sum(np), 0)::BIGINT AS positives, "
            "coalesce(sum(tp), 0)::BIGINT AS tp, coalesce(sum(fp), 0)::BIGINT AS fp, "
            "coalesce(sum(nl - np - fp), 0)::BIGINT AS tn, coalesce(sum(np - tp), 0)::BIGINT AS fn, "
            "coalesce(sum(se), 0)::DOUBLE AS se, coalesce(sum(delay_days), 0)::DOUBLE AS delay_days, coalesce(sum(n_recent), 0)::BIGINT AS n_recent, "
            "coalesce(sum(nl_recent), 0)::BIGINT AS nl_recent, coalesce(sum(np * (neg_below + 0.5 * (nl - np))), 0)::DOUBLE AS auc_num, "
            "coalesce(sum(np::DOUBLE * (nl - np)), 0)::DOUBLE AS tied_pairs")

    def aggregate(group: tuple[str, ...], source: str) -> pl.DataFrame:
        below = f"coalesce(sum(nl - np) OVER ({_partition(group)}ORDER BY bin ROWS BETWEEN UNBOUNDED " \
                "PRECEDING AND 1 PRECEDING), 0)"
        group_by = f"GROUP BY {', '.join(sql_ident(k) for k in group)}" if group else ""
        return con.sql(f"""SELECT {_key_list(group)}{sums}
                           FROM (SELECT *, {below} AS neg_below FROM {source}) {group_by}""").pl()

    overall_bins = "(SELECT bin, sum(n) AS n, sum(nl) AS nl, sum(np) AS np, sum(tp) AS tp, sum(fp) AS fp, " \
                   "sum(se) AS se, sum(delay_days) AS delay_days, " \
                   "sum(n_recent) AS n_recent, sum(nl_recent) AS nl_recent FROM _slice_bins GROUP BY bin)"
    overall = aggregate((), overall_bins)
    slices = aggregate(keys, "_slice_bins") if keys else overall.clone()
    con.execute("DROP TABLE IF EXISTS _slice_bins")
    return overall, slices


def _common(frame: pl.DataFrame, z: float) -> pl.DataFrame:
    cov_low, cov_high = wilson(pl.col("labelled"), pl.col("n"), z)
    return frame.with_columns(
        (pl.col("labelled") / pl.col("n")).alias("coverage"), cov_low.alias("coverage_low"),
        cov_high.alias("coverage_high"),
        pl.when(pl.col("labelled") > 0).then(pl.col("delay_days") / pl.col("labelled")).alias("label_delay_days"),
        pl.when(pl.col("n_recent") > 0).then(pl.col("nl_recent") / pl.col("n_recent")).alias("recent_coverage"),
    ).drop("delay_days")


def _binary_metrics(frame: pl.DataFrame, z: float) -> pl.DataFrame:
    c = pl.col
    negatives = c("labelled") - c("positives")
    out = _common(frame, z).with_columns(negatives.alias("negatives"))

    def ratio(num: pl.Expr, den: pl.Expr) -> pl.Expr:
        return pl.when(den > 0).then(num.cast(pl.Float64) / den)

    pairs = c("positives").cast(pl.Float64) * negatives
    out = out.with_columns(
        ratio(c("tp") + c("tn"), c("labelled")).alias("accuracy"),
        ratio(c("tp"), c("tp") + c("fp")).alias("precision"),
        ratio(c("tp"), c("tp") + c("fn")).alias("recall"),
        ratio(2 * c("tp"), 2 * c("tp") + c("fp") + c("fn")).alias("f1"),
        ratio(c("fp"), c("fp") + c("tn")).alias("fpr"),
        pl.when(pairs > 0).then(c("auc_num") / pairs).alias("auc"),
        pl.when(pairs > 0).then(0.5 * c("tied_pairs") / pairs).alias("auc_max_error"),
        ratio(c("se"), c("labelled")).alias("brier"),
    )
    for metric, (k, n) in {"accuracy": (c("tp") + c("tn"), c("labelled")), "precision": (c("tp"), c("tp") + c("fp")),
                           "recall": (c("tp"), c("tp") + c("fn")), "fpr": (c("fp"), c("fp") + c("tn"))}.items():
        low, high = wilson(k, n, z)
        out = out.with_columns(low.alias(f"{metric}_low"), high.alias(f"{metric}_high"))
    low, high = hanley_mcneil(c("auc"), c("positives"), negatives, z)
    return out.with_columns(low.alias("auc_low"), high.alias("auc_high")).drop("auc_num", "tied_pairs", "se")


def _regression(con, query: SliceQuery, recent_from: datetime):
    keys = query.keys
    sql = f"""SELECT {_key_list(keys)} grouping({', '.join(sql_ident(k) for k in keys) or '1'}) > 0 AS _all,
               count(*) AS n, count(label) AS labelled, coalesce(sum(abs(score - label)), 0) AS abs_sum,
               coalesce(sum((score - label) ^ 2), 0) AS sq_sum, coalesce(sum(score - label), 0) AS err_sum,
               {_latency_sql(query)}
        FROM _slice_base GROUP BY GROUPING SETS (({', '.join(sql_ident(k) for k in keys)}), ())"""
    frame = con.sql(sql, params={"recent": recent_from} if query.latency else None).pl()
    if not keys:
        frame = frame.unique(subset=["_all"]).head(1)
        return frame.drop("_all"), frame.drop("_all")
    return frame.filter(pl.col("_all")).drop("_all", *keys), frame.filter(~pl.col("_all")).drop("_all")


def _regression_metrics(frame: pl.DataFrame, z: float) -> pl.DataFrame:
    c = pl.col
    n = c("labelled").cast(pl.Float64)
    out = _common(frame, z).with_columns(
        pl.when(n > 0).then(c("abs_sum") / n).alias("mae"),
        pl.when(n > 0).then((c("sq_sum") / n).sqrt()).alias("rmse"),
        pl.when(n > 0).then(c("err_sum") / n).alias("bias"))
    sd_abs = pl.when(n > 1).then(((c("sq_sum") - n * c("mae") ** 2) / (n - 1)).clip(0.0, None).sqrt())
    sd_err = pl.when(n > 1).then(((c("sq_sum") - n * c("bias") ** 2) / (n - 1)).clip(0.0, None).sqrt())
    mae_low, mae_high = normal_mean(c("mae"), sd_abs, c("labelled"), z)
    bias_low, bias_high = normal_mean(c("bias"), sd_err, c("labelled"), z)
    return out.with_columns(mae_low.clip(0.0, None).alias("mae_low"), mae_high.alias("mae_high"),
                            bias_low.alias("bias_low"), bias_high.alias("bias_high")).drop(
        "abs_sum", "sq_sum", "err_sum")


def _multiclass(con, query: SliceQuery, recent_from: datetime):
    keys = query.keys
    key_cols = ", ".join(sql_ident(k) for k in keys)
    sets = f"GROUPING SETS (({key_cols}), ())" if keys else "GROUPING SETS (())"
    flag = f"grouping({key_cols}) > 0" if keys else "true"
    counts = con.sql(f"""SELECT {_key_list(keys)} {flag} AS _all, count(*) AS n, count(label) AS labelled,
               count(*) FILTER (WHERE label = predicted_label) AS correct,
               {_latency_sql(query)}
        FROM _slice_base GROUP BY {sets}""", params={"recent": recent_from} if query.latency else None).pl()
    per_class = con.sql(f"""
        WITH x AS (SELECT {_key_list(keys)} label::INTEGER AS y, predicted_label AS yhat FROM _slice_base
                   WHERE label IS NOT NULL),
             classes AS (SELECT y AS k FROM x UNION SELECT yhat FROM x WHERE yhat IS NOT NULL)
        SELECT {_key_list(keys)} {flag} AS _all, k,
               count(*) FILTER (WHERE y = k AND yhat = k) AS tp, count(*) FILTER (WHERE y <> k AND yhat = k) AS fp,
               count(*) FILTER (WHERE y = k AND yhat IS DISTINCT FROM k) AS fn
        FROM x CROSS JOIN classes GROUP BY GROUPING SETS ({f'({key_cols}, k), ' if keys else ''}(k))""").pl()
    per_class = per_class.filter(pl.col("tp") + pl.col("fp") + pl.col("fn") > 0).with_columns(
        (2 * pl.col("tp") / (2 * pl.col("tp") + pl.col("fp") + pl.col("fn"))).alias("f1_k"))
    f1 = per_class.group_by(["_all", *keys]).agg(pl.col("f1_k").mean().alias("macro_f1"))
    frame = counts.join(f1, on=["_all", *keys], how="left", nulls_equal=True)
    overall = frame.filter(pl.col("_all")).drop("_all", *keys)
    slices = frame.filter(~pl.col("_all")).drop("_all") if keys else overall.clone()
    return overall, slices


def _multiclass_metrics(frame: pl.DataFrame, z: float) -> pl.DataFrame:
    low, high = wilson(pl.col("correct"), pl.col("labelled"), z)
    return _common(frame, z).with_columns(
        pl.when(pl.col("labelled") > 0).then(pl.col("correct") / pl.col("labelled")).alias("accuracy"),
        low.alias("accuracy_low"), high.alias("accuracy_high")).drop("correct")


def _support(frame: pl.DataFrame, query: SliceQuery, metrics: tuple[str, ...]) -> pl.DataFrame:
    """Blank every metric of a slice below the minimum labelled support and say why."""
    enough = pl.col("labelled") >= query.min_support
    cols = [c for c in frame.columns if any(c == m or c.startswith(m + "_") for m in metrics)]
    return frame.with_columns(
        *[pl.when(enough).then(pl.col(c)).alias(c) for c in cols],
        pl.when(enough).then(pl.lit("ok")).otherwise(
            pl.format("insufficient data ({} labelled < {})", pl.col("labelled"), pl.lit(query.min_support))
        ).alias("status"))


def with_query(table: SliceTable, **changes) -> SliceQuery:
    """A copy of the table's query with some fields changed (for drill-downs)."""
    return replace(table.query, **changes)


def firmware_changes(project: Project, version_id: str, where: tuple[tuple[str, str], ...],
                     column: str = "firmware") -> pl.DataFrame:
    """When each firmware value first appears in a slice (the first value is the baseline, not an event)."""
    with project.reading() as con:
        known = {r[0] for r in con.execute("SELECT name FROM log_columns").fetchall()}
    if column not in known:
        return pl.DataFrame(schema={"value": pl.Utf8, "first_seen": pl.Datetime("us")})
    cond = " AND ".join([f"version_id = {sql_literal(version_id)}"] +
                        [f"{sql_ident(d)} = {sql_literal(v)}" for d, v in where])
    con = project.cursor()
    try:
        frame = con.sql(f"SELECT {sql_ident(column)} AS value, min(ts) AS first_seen FROM predictions "
                        f"WHERE {cond} GROUP BY 1 ORDER BY 2").pl()
    finally:
        con.close()
    return frame.slice(1)


def logged_versions(project: Project) -> list[tuple[str, int]]:
    """(version id, predictions) for every version in the log, from the coverage summary."""
    with project.reading() as con:
        rows = con.execute("SELECT version_id, sum(rows) FROM coverage_summary WHERE version_id IS NOT NULL "
                           "GROUP BY 1 ORDER BY 1").fetchall()
    return [(v, int(n)) for v, n in rows]


def logged_span(project: Project) -> tuple[datetime | None, datetime | None]:
    """First and last prediction time in the log."""
    with project.reading() as con:
        return one(con, "SELECT min(first_ts), max(last_ts) FROM coverage_summary")


def has_line_dimension(project: Project) -> bool:
    """Whether the log is sliced by line (reviews and their answers speak per line when it is)."""
    with project.reading() as con:
        return bool(con.execute("SELECT 1 FROM log_columns WHERE name = 'line' AND role = 'slice'").fetchall())


def slice_dimensions(project: Project) -> list[str]:
    """The slice columns present in the log, in manifest order."""
    with project.reading() as con:
        present = {r[0] for r in con.execute("SELECT name FROM log_columns WHERE role = 'slice'").fetchall()}
    ordered = [d for d in project.manifest.slice_dimensions if d in present]
    return ordered + sorted(present - set(ordered))


def task_metrics(project: Project, version_id: str) -> tuple[str, ...]:
    """The metrics available for a version's task."""
    task, _, _ = model_info(project, version_id)
    return {"binary": BINARY_METRICS, "regression": REGRESSION_METRICS}.get(task, MULTICLASS_METRICS)


@dataclass(frozen=True)
class SliceTrend:
    """One slice over time next to the overall trend, with the slice's firmware changes as events."""

    where: tuple[tuple[str, str], ...]
    slice: SliceTable
    overall: SliceTable
    events: pl.DataFrame  # value, first_seen
    estimate: pl.DataFrame | None = None  # estimated metrics per window (analysis.estimate), where they apply
    overrides: pl.DataFrame | None = None  # operator override rate per window (analysis.overrides), where logged


def slice_trend(project: Project, base: SliceQuery, where: tuple[tuple[str, str], ...], window: str = "week",
                progress: Progress | None = None) -> SliceTrend:
    """The drill-down of a slice: per-window metrics with intervals, the overall trend, and events."""
    progress = progress or NullProgress()
    common = replace(base, by=(), window=window, where=())
    mine = compute_slices(project, replace(common, where=where), progress)
    overall = compute_slices(project, common)
    dims = tuple((d, v) for d, v in where if d != PERIOD)
    return SliceTrend(where, mine, overall, timeline_events(project, base.version_id, dims))


def timeline_events(project: Project, version_id: str, where: tuple[tuple[str, str], ...]) -> pl.DataFrame:
    """Events for a slice's timeline: its firmware changes, plus manual events on its line or project-wide."""
    from app.core.analysis.events import list_events

    fw = firmware_changes(project, version_id, where).with_columns(
        pl.format("firmware {}", pl.col("value")).alias("label"))
    line = dict(where).get("line")
    manual = list_events(project, line).filter(pl.col("source") == "manual") if project_has_events(project) \
        else pl.DataFrame()
    if manual.height:
        manual = manual.select(pl.col("description").alias("value"), pl.col("ts").alias("first_seen"),
                               pl.col("description").alias("label"))
        return pl.concat([fw, manual], how="vertical_relaxed").sort("first_seen")
    return fw


def project_has_events(project: Project) -> bool:
    """Whether the events table exists (schema 4 and later; old projects opened read-only lack it)."""
    with project.reading() as con:
        return bool(one(con, "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'events'")[0])
