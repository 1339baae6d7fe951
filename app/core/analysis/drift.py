"""Input drift and data quality per feature and slice: a reference window against a current window.

Numeric features: PSI over the reference's quantile bins (empty bins smoothed to PSI_EPSILON), the
Kolmogorov-Smirnov statistic D and its asymptotic p-value, Jensen-Shannon distance (natural log, as scipy)
over the same bins, and the Wasserstein distance normalised by the reference's standard deviation.
Categorical features: Pearson chi-square (no continuity correction) and p-value, PSI and Jensen-Shannon
over the categories.

Two ways to the numeric statistics. Exact: the empirical CDFs of both windows, built in DuckDB from (slice,
value) counts; its cost grows with rows x distinct values. Bounded (drift_summary): a fixed-size histogram per
(slice, window), with KS and Wasserstein reported with an error bound (`ks_d_bound`, `wasserstein_norm_bound`).
`mode="auto"` is exact up to EXACT_MAX_ROWS rows in the two windows and bounded above, except for features with
few distinct (slice, value) pairs (EXACT_MAX_PAIRS), which stay exact at any size.

Drift decision, as Evidently does by default: numeric features use normalised Wasserstein > 0.1 when the
reference has more than 1,000 rows, else KS p < 0.05; categorical ones use Jensen-Shannon > 0.1 above
1,000 rows, else chi-square p < 0.05. PSI (0.1 moderate, 0.2 significant) is reported alongside.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

import numpy as np
import polars as pl

from app.core.analysis import drift_summary
from app.core.engine.rows import LocalRows
from app.core.errors import LineproofError
from app.core.progress import NullProgress, Progress, check_cancelled
from app.core.stats.tails import chi2_sf, ks_pvalue
from app.core.store.db import one
from app.core.store.manifest import settings_table
from app.core.store.project import Project
from app.core.store.sources import sql_ident, sql_literal

PSI_EPSILON = 1e-4  # share given to an empty bin so that PSI stays finite
LARGE_SAMPLE = 1000
# Exact KS/Wasserstein up to this many rows in the two windows (all slices). Exact mode's cost grows with rows x
# distinct values: 20 continuous sensors x 12 lines took 26 s at 2M rows and 152 s at 10M (bounded: 1.0 s and
# ~3 s, tests/bench/bench_drift.py); below 1M rows it stays seconds, and every cross-check against scipy and
# Evidently (all smaller) stays exact.
EXACT_MAX_ROWS = 1_000_000
MODES = ("auto", "exact", "bounded")
GRID_SAMPLE_ROWS = 200_000  # about this many rows place the fine bins (every n-th row of the windows' size)
# Auto mode keeps a feature exact at any size when its sampled reference holds at most this many distinct (slice,
# value) pairs, which is what exact mode's cost follows. At 10M rows, 9 quantised sensors (1,000-4,400 values)
# took 0.75-0.98 s exact and 0.88-0.95 s bounded over 12 lines (~50k pairs), but 3.5 s exact and 2.3 s bounded
# over 212 assets; a sample of continuous readings shows about every row distinct (bench_drift.py).
EXACT_MAX_PAIRS = 60_000


class DriftError(LineproofError):
    """A drift query cannot be answered as asked."""


@dataclass(frozen=True)
class DriftThresholds:
    """When a feature counts as drifted; override in lineproof.toml under [drift]."""

    psi_moderate: float = 0.1
    psi_significant: float = 0.2
    wasserstein: float = 0.1
    jensen_shannon: float = 0.1
    p_value: float = 0.05

    @classmethod
    def from_manifest(cls, extra: dict) -> DriftThresholds:
        """Thresholds from the manifest's [drift] table; a bad key or value is a SettingsError naming it."""
        return settings_table(cls, extra, "drift", {"p_value": (0.0, 1.0), "jensen_shannon": (0.0, 1.0)})


@dataclass(frozen=True)
class DriftQuery:
    """Which rows form the reference and the current window, per slice."""

    reference: tuple[datetime, datetime]  # [start, end)
    current: tuple[datetime, datetime]
    by: tuple[str, ...] = ("line",)
    features: tuple[str, ...] | None = None  # default: every feature column
    version_id: str | None = None  # default: all versions in the log
    where: tuple[tuple[str, str], ...] = ()  # (dimension, value) filters, e.g. one line
    reference_dataset: str | None = None  # a registered dataset (id) as reference instead of the window
    reference_columns: tuple[str, ...] = ()  # filled in by compute_drift from the dataset's file
    bins: int = 10
    min_rows: int = 30
    mode: str = "auto"  # "exact", "bounded", or "auto": exact up to EXACT_MAX_ROWS rows in the windows
    log: str | None = None  # an attached log's name; None: the project's own log
    engine: str | None = None  # duckdb or spark for an attached log; None: the project's [engine] setting

    @property
    def relation(self) -> str:
        """The rows' relation: the project's predictions table, or the attached log's view `_log`."""
        return "_log" if self.log else "predictions"


@dataclass(frozen=True)
class DriftTable:
    """One row per (slice, feature)."""

    query: DriftQuery
    thresholds: DriftThresholds
    rows: pl.DataFrame
    bounded: bool = False  # numeric statistics from bounded summaries (see the *_bound columns)

    def largest_bounds(self) -> tuple[float, float] | None:
        """(KS, W/std) error bounds of the least exact numeric cell; None when every statistic is exact."""
        if not self.bounded or not self.rows.height:
            return None
        numeric = self.rows.filter(pl.col("kind") == "numeric")
        return float(numeric["ks_d_bound"].max() or 0.0), float(numeric["wasserstein_norm_bound"].max() or 0.0)


def _feature_columns(project: Project, wanted: tuple[str, ...] | None) -> list[tuple[str, str]]:
    with project.reading() as con:
        known = con.execute("SELECT name, dtype FROM log_columns WHERE role = 'feature' ORDER BY name").fetchall()
    if wanted is None:
        return known
    types = dict(known)
    missing = [f for f in wanted if f not in types]
    if missing:
        raise DriftError(f"Unknown feature(s): {', '.join(missing)}.",
                         f"Features in this log: {', '.join(types) or 'none yet'}.")
    return [(f, types[f]) for f in wanted]


def _window_sql(query: DriftQuery, column: str, where: tuple[tuple[str, str], ...] = ()) -> str:
    (rs, re_), (cs, ce) = query.reference, query.current

    def ts(v: datetime) -> str:
        return f"TIMESTAMP {sql_literal(v.isoformat(sep=' '))}"

    keys = "".join(f"coalesce({sql_ident(d)}, '(missing)') AS {sql_ident(d)}, " for d in query.by)
    in_cur = f"(ts >= {ts(cs)} AND ts < {ts(ce)})"
    version = f" AND version_id = {sql_literal(query.version_id)}" if query.version_id else ""
    filters = _where_sql(query.where + tuple(where))
    if query.reference_dataset:
        current = (f"SELECT {keys}{sql_ident(column)} AS x, false AS is_ref FROM {query.relation} "
                   f"WHERE {in_cur}{version}{filters}")
        data = f"read_parquet({sql_literal(query.reference_dataset)})"
        if all(d in query.reference_columns for d, _ in query.where + tuple(where)) and \
                all(d in query.reference_columns for d in query.by):
            reference = f"SELECT {keys}{sql_ident(column)} AS x, true AS is_ref FROM {data} WHERE true{filters}"
        else:  # the dataset has no such slice column: every slice is compared with the whole dataset
            slice_keys = ", ".join(sql_ident(d) for d in query.by) or "1 AS _one"
            reference = (f"SELECT s.*, d.{sql_ident(column)} AS x, true AS is_ref FROM {data} d CROSS JOIN "
                         f"(SELECT DISTINCT {slice_keys} FROM ({current})) s")
            if not query.by:
                reference = f"SELECT {sql_ident(column)} AS x, true AS is_ref FROM {data}"
        return f"{reference} UNION ALL {current}"
    in_ref = f"(ts >= {ts(rs)} AND ts < {ts(re_)})"
    return (f"SELECT {keys}{sql_ident(column)} AS x, {in_ref} AS is_ref FROM {query.relation} "
            f"WHERE ({in_ref} OR {in_cur}){version}{filters}")


def _resolve_reference(project: Project, query: DriftQuery, features: list[tuple[str, str]]) -> DriftQuery:
    """Point the query at the reference dataset's Parquet file and check it has the features."""
    if not query.reference_dataset:
        return query
    with project.reading() as con:
        row = one(con, "SELECT artifact_path FROM datasets WHERE dataset_id = ? OR name = ?",
                  [query.reference_dataset, query.reference_dataset])
        if row is None:
            known = ", ".join(r[0] for r in con.execute("SELECT dataset_id FROM datasets").fetchall()) or "none"
            raise DriftError(f"No dataset {query.reference_dataset!r} in this project.", f"Datasets: {known}.")
        path = str(project.folder / row[0])
        if path.endswith(".npz"):
            raise DriftError(f"Dataset {query.reference_dataset} holds image tensors, not feature columns.",
                             "Use a Parquet dataset with the log's features as reference, or a reference window.")
        columns = tuple(r[0] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet({sql_literal(path)})"
                                                  ).fetchall())
    missing = [f for f, _ in features if f not in columns]
    if missing:
        raise DriftError(f"Dataset {query.reference_dataset} has no column(s) {', '.join(missing)}.",
                         "Choose features the dataset has (--features), or a reference window instead.")
    return replace(query, reference_dataset=path, reference_columns=columns)


Window = tuple[date, date]


def default_windows(first: date, last: date) -> tuple[Window, Window]:
    """Reference = the first 12 weeks, current = the last 6 (days, end exclusive); a log too short for both is
    split in two halves, so the windows never overlap."""
    end = last + timedelta(days=1)
    reference, current = (first, first + timedelta(weeks=12)), (last - timedelta(weeks=6), end)
    if reference[1] > current[0]:
        middle = first + timedelta(days=max((end - first).days // 2, 1))
        reference, current = (first, middle), (middle, max(end, middle + timedelta(days=1)))
    return reference, current


def _check_windows(query: DriftQuery) -> None:
    (r0, r1), (c0, c1) = query.reference, query.current
    if c1 <= c0 or query.reference_dataset is None and r1 <= r0:
        raise DriftError("A window ends before it starts.", "Give each window as FROM..TO with FROM before TO.")
    if query.reference_dataset is None and r0 < c1 and c0 < r1:
        raise DriftError(f"The reference window ({r0:%Y-%m-%d}..{r1:%Y-%m-%d}) and the current window "
                         f"({c0:%Y-%m-%d}..{c1:%Y-%m-%d}) overlap: rows in both would count as reference.",
                         "Choose windows that do not overlap, e.g. end the reference where the current one starts.")


def compute_drift(project: Project, query: DriftQuery, progress: Progress | None = None) -> DriftTable:
    """Drift and data-quality statistics for every (slice, feature)."""
    progress = progress or NullProgress()
    if query.bins < 2:
        raise DriftError("PSI needs at least 2 bins.", "Use --bins 10 (deciles), the usual choice.")
    if query.mode not in MODES:
        raise DriftError(f"Unknown drift mode {query.mode!r}.", f"Use one of: {', '.join(MODES)}.")
    _check_windows(query)
    if query.log:
        from app.core.analysis.attached import compute_attached_drift
        return compute_attached_drift(project, query, progress)
    with project.reading() as con:
        slice_cols = {r[0] for r in con.execute("SELECT name FROM log_columns WHERE role = 'slice'").fetchall()}
    unknown = [d for d in query.by if d not in slice_cols]
    if unknown:
        raise DriftError(f"Unknown slice dimension(s): {', '.join(unknown)}.",
                         f"This log has: {', '.join(sorted(slice_cols)) or 'no slice columns yet'}.")
    features = _feature_columns(project, query.features)
    query = _resolve_reference(project, query, features)
    parts = []
    with project.reading() as con:
        rows = _window_rows(LocalRows(con), query) if query.mode != "exact" else 0
        bounded = query.mode == "bounded" or query.mode == "auto" and rows > EXACT_MAX_ROWS
        numeric = [f for f, t in features if t == "DOUBLE"] if bounded else []
        every = max(1, rows // GRID_SAMPLE_ROWS)
        if query.mode == "auto" and numeric:  # few distinct values: exact costs what the summary costs, unbounded
            few = drift_summary.few_valued(con, _reference_sql(query, "*", every), numeric, list(query.by),
                                           EXACT_MAX_PAIRS)
            numeric = [f for f in numeric if f not in few]
            bounded = bool(numeric)
        if numeric:
            progress.report(0.0, "Summarising numeric features")
            parts.append(_numeric_bounded(con, query, numeric, every, progress))
        for i, (feature, dtype) in enumerate(features):
            if feature in numeric:
                continue
            check_cancelled(progress)
            progress.report(i / max(len(features), 1), f"Drift of {feature}")
            is_numeric = dtype == "DOUBLE"
            part = _numeric(con, query, feature) if is_numeric else _categorical(con, query, feature)
            parts.append(part.with_columns(pl.lit(feature).alias("feature"),
                                           pl.lit("numeric" if is_numeric else "categorical").alias("kind")))
    return finish_drift(project, query, parts, bounded, progress)


def finish_drift(project: Project, query: DriftQuery, parts: list[pl.DataFrame], bounded: bool,
                 progress: Progress) -> DriftTable:
    """The drift table from its per-feature parts: thresholds from the project, decisions, ordering."""
    thresholds = DriftThresholds.from_manifest(project.manifest.extra)
    rows = pl.concat(parts, how="diagonal_relaxed") if parts else pl.DataFrame()
    if rows.height:
        rows = _decide(rows, query, thresholds).sort([*query.by, "feature"])
    progress.report(1.0, f"{rows.height:,} feature x slice cells")
    return DriftTable(query, thresholds, rows, bounded)


def _reference_sql(query: DriftQuery, columns: str, every: int = 1) -> str:
    """SQL: `columns` over the reference rows (window or dataset), with the query's filters; `every` > 1 keeps about
    one row in `every`, deterministically: 16 short time spans spread over the window (read alone, thanks to the
    timestamps' zone maps), or every n-th row of a dataset."""
    filters = _where_sql(query.where)
    if query.reference_dataset:
        usable = "".join(f" AND {sql_ident(d)} = {sql_literal(v)}" for d, v in query.where
                         if d in query.reference_columns)
        thin = f" AND file_row_number % {every} = 0" if every > 1 else ""
        return (f"SELECT {columns} FROM read_parquet({sql_literal(query.reference_dataset)}, file_row_number = true) "
                f"WHERE true{usable}{thin}")
    (rs, re_) = query.reference
    version = f" AND version_id = {sql_literal(query.version_id)}" if query.version_id else ""

    def span(start: datetime, end: datetime) -> str:
        return (f"(ts >= TIMESTAMP {sql_literal(start.isoformat(sep=' '))} "
                f"AND ts < TIMESTAMP {sql_literal(end.isoformat(sep=' '))})")
    if every > 1:
        step = (re_ - rs) / 16
        spans = " OR ".join(span(rs + k * step, rs + k * step + step / every) for k in range(16))
    else:
        spans = span(rs, re_)
    return f"SELECT {columns} FROM {query.relation} WHERE ({spans}){version}{filters}"


def _window_rows(rows, query: DriftQuery) -> int:
    """Rows in the reference and current windows together (all slices), which decides auto mode."""
    cs, ce = query.current
    version = f" AND version_id = {sql_literal(query.version_id)}" if query.version_id else ""
    current = rows.fetch(f"SELECT count(*) FROM {query.relation} WHERE ts >= TIMESTAMP "
                         f"{sql_literal(cs.isoformat(sep=' '))} AND ts < TIMESTAMP "
                         f"{sql_literal(ce.isoformat(sep=' '))}{version}{_where_sql(query.where)}")[0]
    return int(current) + int(rows.fetch(f"SELECT count(*) FROM ({_reference_sql(query, '1')}) AS r")[0])


FEATURES_PER_PASS = 5


def _numeric_bounded(con, query: DriftQuery, features: list[str], every: int, progress: Progress,
                     rows=None) -> pl.DataFrame:
    """Numeric statistics of all `features` from their bounded summaries (one scan of the windows per feature on
    the engine `rows` runs on, the statistics in one pass over the summaries in `con`), with their error bounds."""
    rows = rows or LocalRows(con)
    grids = drift_summary.grids(rows, _reference_sql(query, "*", every), features)
    try:
        for first in range(0, len(features), FEATURES_PER_PASS):
            check_cancelled(progress)
            batch = features[first:first + FEATURES_PER_PASS]
            progress.report(0.9 * first / len(features), f"Summarising {', '.join(batch)}")
            # A few features per statement: one query plan and one temp table per batch (0.3 s less over 20
            # features at 10M rows), while Cancel and progress still come between batches.
            sql = " UNION ALL ".join(
                f"({drift_summary.summary_sql(_window_sql(query, f), list(query.by), grids[f], tag=first + k)})"
                for k, f in enumerate(batch))
            rows.materialise("_drift_part", sql)  # the row work; the summaries merge below by plain union
            con.execute("CREATE TEMP TABLE _drift_summary AS SELECT * FROM _drift_part" if first == 0
                        else "INSERT INTO _drift_summary SELECT * FROM _drift_part")
            con.execute("DROP TABLE IF EXISTS _drift_part")
        tagged = replace(query, by=("_f", *query.by))
        summary, shares, missing = drift_summary.statistics(con, "_drift_summary", list(tagged.by), query.bins)
    finally:
        con.execute("DROP TABLE IF EXISTS _drift_summary")
    frame = _finish_numeric(summary, shares, missing, tagged)
    names = pl.DataFrame({"_f": list(range(len(features))), "feature": features},
                         schema={"_f": frame.schema["_f"], "feature": pl.String})
    return frame.join(names, on="_f").drop("_f").with_columns(pl.lit("numeric").alias("kind"))


def _keys(query: DriftQuery) -> str:
    return "".join(f"{sql_ident(d)}, " for d in query.by)


def _partition(query: DriftQuery) -> str:
    return f"PARTITION BY {', '.join(sql_ident(d) for d in query.by)} " if query.by else ""


def _join(query: DriftQuery) -> str:
    return f"USING ({', '.join(sql_ident(d) for d in query.by)})" if query.by else "ON true"


def _numeric(con, query: DriftQuery, feature: str) -> pl.DataFrame:
    keys, part, join = _keys(query), _partition(query), _join(query)
    # The one scan of the log for this feature: (slice, value) counts per window; NULL/NaN values
    # are kept as one group so that missingness comes from the same pass.
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _drift_g AS
        SELECT {keys}CASE WHEN isfinite(x) THEN x END AS x,
               count(*) FILTER (WHERE is_ref) AS r, count(*) FILTER (WHERE NOT is_ref) AS c
        FROM ({_window_sql(query, feature)}) GROUP BY ALL""")
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _drift_cdf AS
        WITH g AS (SELECT * FROM _drift_g WHERE x IS NOT NULL),
        t AS (SELECT {keys}sum(r) AS nr, sum(c) AS nc, min(x) FILTER (WHERE r > 0) AS ref_min,
                     max(x) FILTER (WHERE r > 0) AS ref_max, sum(r * x) / nullif(sum(r), 0) AS ref_mean
              FROM g GROUP BY ALL),
        -- the spread from centred values: E[x^2] - mean^2 loses digits to cancellation, and then the last bits
        -- would follow the order the engine happened to sum in
        v AS (SELECT {keys}any_value(t.nr) AS nr, any_value(t.nc) AS nc, any_value(t.ref_min) AS ref_min,
                     any_value(t.ref_max) AS ref_max,
                     sqrt(sum(g.r * (g.x - t.ref_mean) * (g.x - t.ref_mean)) / nullif(any_value(t.nr), 0)) AS ref_std
              FROM g JOIN t {join} GROUP BY ALL)
        SELECT g.*, t.nr, t.nc, t.ref_min, t.ref_max, t.ref_std,
               sum(r) OVER ({part}ORDER BY x ROWS UNBOUNDED PRECEDING) AS cr,
               sum(c) OVER ({part}ORDER BY x ROWS UNBOUNDED PRECEDING) AS cc,
               lead(x) OVER ({part}ORDER BY x) - x AS dx
        FROM g JOIN v AS t {join}""")
    summary = con.sql(f"""
        SELECT {keys}any_value(nr)::BIGINT AS n_ref, any_value(nc)::BIGINT AS n_cur, any_value(ref_std) AS ref_std,
               max(abs(cr / nullif(nr, 0) - cc / nullif(nc, 0))) AS ks_d,
               sum(abs(cr / nullif(nr, 0) - cc / nullif(nc, 0)) * coalesce(dx, 0)) AS wasserstein,
               coalesce(sum(c) FILTER (WHERE x < ref_min OR x > ref_max), 0)::BIGINT AS out_of_range_n
        FROM _drift_cdf GROUP BY ALL""").pl()
    # Quantile bins of the reference: value x falls in bin floor(bins * F_ref(just below x)).
    shares = con.sql(f"""
        SELECT {keys}least({query.bins - 1}, ((cr - r) * {query.bins}) // nullif(nr, 0))::INTEGER AS bin,
               sum(r) / any_value(nullif(nr, 0)) AS p_ref, sum(c) / any_value(nullif(nc, 0)) AS p_cur
        FROM _drift_cdf GROUP BY ALL""").pl()
    missing = con.sql(f"""SELECT {keys}sum(r)::BIGINT AS rows_ref, sum(c)::BIGINT AS rows_cur,
            sum(r) FILTER (WHERE x IS NULL) / nullif(sum(r), 0) AS missing_ref,
            sum(c) FILTER (WHERE x IS NULL) / nullif(sum(c), 0) AS missing_cur
        FROM _drift_g GROUP BY ALL""").pl().with_columns(pl.col("missing_ref", "missing_cur").fill_null(0.0))
    con.execute("DROP TABLE IF EXISTS _drift_cdf")
    con.execute("DROP TABLE IF EXISTS _drift_g")
    return _finish_numeric(summary.with_columns(pl.lit(0.0).alias("ks_d_bound"), pl.lit(0.0).alias(
        "wasserstein_bound")), shares, missing, query)


def _finish_numeric(summary: pl.DataFrame, shares: pl.DataFrame, missing: pl.DataFrame, query: DriftQuery
                    ) -> pl.DataFrame:
    """PSI/JS, missingness, normalised Wasserstein (and its bound) and the KS p-value per slice."""
    frame = _with_bin_scores(summary, shares, query)
    frame = frame.join(missing, on=list(query.by), how="full", coalesce=True) if query.by else pl.concat(
        [frame, missing], how="horizontal")
    if "wasserstein_norm" not in frame.columns:  # exact mode; bounded summaries bring W/std with its bound
        frame = frame.with_columns(pl.when(pl.col("ref_std") > 0).then(pl.col("wasserstein") / pl.col("ref_std"))
                                   .alias("wasserstein_norm"),
                                   pl.when(pl.col("ref_std") > 0).then(pl.col("wasserstein_bound") / pl.col("ref_std"))
                                   .alias("wasserstein_norm_bound"))
    return frame.with_columns(
        pl.when(pl.col("n_cur") > 0).then(pl.col("out_of_range_n").fill_null(0) / pl.col("n_cur"))
        .alias("out_of_range"),
        pl.when(pl.col("ref_std") > 0).then(pl.col("wasserstein_norm"))
        .when(pl.col("wasserstein") == 0).then(0.0).alias("wasserstein_norm"),
        pl.when(pl.col("ref_std") > 0).then(pl.col("wasserstein_norm_bound"))
        .when(pl.col("wasserstein_bound") == 0).then(0.0).alias("wasserstein_norm_bound"),
        pl.Series("ks_p", ks_pvalue(frame["ks_d"].fill_null(np.nan).to_numpy(),
                                    frame["n_ref"].fill_null(0).to_numpy(), frame["n_cur"].fill_null(0).to_numpy())
                  ).fill_nan(None),
    ).drop("out_of_range_n", "wasserstein_bound", "ref_std_bound", strict=False)


def _missing(con, query: DriftQuery, feature: str) -> pl.DataFrame:
    return con.sql(f"""SELECT {_keys(query)}
            count(*) FILTER (WHERE is_ref)::BIGINT AS rows_ref, count(*) FILTER (WHERE NOT is_ref)::BIGINT AS rows_cur,
            (count(*) FILTER (WHERE is_ref) - count(x) FILTER (WHERE is_ref)) / nullif(count(*) FILTER (WHERE is_ref), 0)
                AS missing_ref,
            (count(*) FILTER (WHERE NOT is_ref) - count(x) FILTER (WHERE NOT is_ref))
                / nullif(count(*) FILTER (WHERE NOT is_ref), 0) AS missing_cur
        FROM ({_window_sql(query, feature)}) GROUP BY ALL""").pl()


def _with_bin_scores(frame: pl.DataFrame, shares: pl.DataFrame, query: DriftQuery) -> pl.DataFrame:
    """PSI and Jensen-Shannon distance per slice from (slice, bin, p_ref, p_cur) rows."""
    keys = list(query.by)
    eps = PSI_EPSILON
    s = shares.with_columns(pl.col("p_ref").fill_null(0.0), pl.col("p_cur").fill_null(0.0))
    s = s.with_columns(pl.max_horizontal(pl.col("p_ref"), pl.lit(eps)).alias("r_s"),
                       pl.max_horizontal(pl.col("p_cur"), pl.lit(eps)).alias("c_s"),
                       ((pl.col("p_ref") + pl.col("p_cur")) / 2).alias("m"))

    def kl(p: str) -> pl.Expr:
        return pl.when(pl.col(p) > 0).then(pl.col(p) * (pl.col(p) / pl.col("m")).log()).otherwise(0.0)

    agg = [((pl.col("c_s") - pl.col("r_s")) * (pl.col("c_s") / pl.col("r_s")).log()).sum().alias("psi"),
           ((0.5 * kl("p_ref") + 0.5 * kl("p_cur")).sum().clip(0.0, None).sqrt()).alias("js")]
    scores = s.group_by(keys).agg(agg) if keys else s.select(agg)
    return frame.join(scores, on=keys, how="left") if keys else pl.concat([frame, scores], how="horizontal")


def _categorical(con, query: DriftQuery, feature: str) -> pl.DataFrame:
    keys = list(query.by)
    counts = con.sql(f"""SELECT {_keys(query)}x::VARCHAR AS category,
            count(*) FILTER (WHERE is_ref) AS r, count(*) FILTER (WHERE NOT is_ref) AS c
        FROM ({_window_sql(query, feature)}) WHERE x IS NOT NULL GROUP BY ALL""").pl()
    totals = counts.group_by(keys).agg(pl.col("r").sum().alias("n_ref"), pl.col("c").sum().alias("n_cur")) \
        if keys else counts.select(pl.col("r").sum().alias("n_ref"), pl.col("c").sum().alias("n_cur"))
    shares = (counts.join(totals, on=keys) if keys else counts.join(totals, how="cross")).with_columns(
        (pl.col("r") / pl.col("n_ref")).alias("p_ref"), (pl.col("c") / pl.col("n_cur")).alias("p_cur"))
    chi = shares.with_columns((pl.col("r") + pl.col("c")).alias("k_tot"),
                              (pl.col("n_ref") + pl.col("n_cur")).alias("n_tot"))
    chi = chi.with_columns((pl.col("k_tot") * pl.col("n_ref") / pl.col("n_tot")).alias("e_r"),
                           (pl.col("k_tot") * pl.col("n_cur") / pl.col("n_tot")).alias("e_c"))
    stat_exprs = [((pl.col("r") - pl.col("e_r")) ** 2 / pl.col("e_r") +
                   (pl.col("c") - pl.col("e_c")) ** 2 / pl.col("e_c")).sum().alias("chi2"),
                  pl.len().alias("categories"),
                  pl.col("category").filter((pl.col("r") == 0) & (pl.col("c") > 0)).sort().alias("new_list"),
                  pl.col("n_ref").first(), pl.col("n_cur").first()]
    # Unsliced, the whole log is one group: aggregated like the sliced case, so new categories stay a list.
    stats = chi.group_by(keys).agg(stat_exprs) if keys else \
        chi.with_columns(pl.lit(0).alias("_all")).group_by("_all").agg(stat_exprs).drop("_all")
    stats = stats.with_columns(
        pl.struct("chi2", "categories").map_elements(
            lambda s: chi2_sf(s["chi2"], s["categories"] - 1) if s["categories"] > 1 else None,
            return_dtype=pl.Float64).alias("chi2_p"),
        pl.col("new_list").list.join(", ").alias("new_categories")).drop("new_list")
    frame = _with_bin_scores(stats, shares.select(*keys, "p_ref", "p_cur"), query)
    missing = _missing(con, query, feature)
    return frame.join(missing, on=keys, how="full", coalesce=True) if keys else pl.concat(
        [frame, missing], how="horizontal")


def _decide(rows: pl.DataFrame, query: DriftQuery, t: DriftThresholds) -> pl.DataFrame:
    """Blank statistics without enough rows, and decide drift per (slice, feature)."""
    for col in ("ks_d", "ks_p", "wasserstein", "wasserstein_norm", "chi2", "chi2_p", "psi", "js",
                "new_categories", "out_of_range", "ref_std", "ks_d_bound", "wasserstein_norm_bound"):
        if col not in rows.columns:
            rows = rows.with_columns(pl.lit(None).alias(col))
    rows = rows.with_columns(pl.col("n_ref").fill_null(0), pl.col("n_cur").fill_null(0))
    enough = (pl.col("n_ref") >= query.min_rows) & (pl.col("n_cur") >= query.min_rows)
    stat_cols = ["ks_d", "ks_p", "wasserstein", "wasserstein_norm", "chi2", "chi2_p", "psi", "js", "ks_d_bound",
                 "wasserstein_norm_bound"]
    rows = rows.with_columns(*[pl.when(enough).then(pl.col(c)).alias(c) for c in stat_cols])
    large = pl.col("n_ref") > LARGE_SAMPLE
    numeric = pl.col("kind") == "numeric"
    method = (pl.when(numeric & large).then(pl.lit("wasserstein")).when(numeric).then(pl.lit("ks"))
              .when(large).then(pl.lit("jensen_shannon")).otherwise(pl.lit("chi_square")))
    drifted = (pl.when(~enough).then(None)
               .when(numeric & large).then(pl.col("wasserstein_norm") > t.wasserstein)
               .when(numeric).then(pl.col("ks_p") < t.p_value)
               .when(large).then(pl.col("js") > t.jensen_shannon)
               .otherwise(pl.col("chi2_p") < t.p_value))
    status = (pl.when(~enough).then(pl.format("insufficient data ({} reference, {} current rows)",
                                              pl.col("n_ref"), pl.col("n_cur")))
              .when(numeric & (pl.col("ref_std") == 0) & (pl.col("wasserstein") > 0))
              .then(pl.lit("reference is constant: any change is drift"))
              .otherwise(pl.lit("ok")))
    psi_band = (pl.when(pl.col("psi") >= t.psi_significant).then(pl.lit("significant"))
                .when(pl.col("psi") >= t.psi_moderate).then(pl.lit("moderate"))
                .when(pl.col("psi").is_not_null()).then(pl.lit("none")))
    return rows.with_columns(method.alias("method"), drifted.alias("drifted"), status.alias("status"),
                             psi_band.alias("psi_band"))


def _where_sql(where: tuple[tuple[str, str], ...]) -> str:
    return "".join(f" AND {sql_ident(d)} = {sql_literal(v)}" for d, v in where)


def feature_histogram(project: Project, feature: str, where: tuple[tuple[str, str], ...],
                      reference: tuple[datetime, datetime], current: tuple[datetime, datetime],
                      bins: int = 30) -> pl.DataFrame:
    """Shares of reference and current rows in `bins` equal-width bins over both windows' range."""
    query = DriftQuery(reference, current, by=(), features=(feature,), where=where)
    base = f"SELECT x, is_ref FROM ({_window_sql(query, feature)}) w WHERE isfinite(x)"
    with project.reading() as con:
        lo, hi = one(con, f"SELECT min(x), max(x) FROM ({base})")
        if lo is None:
            return pl.DataFrame(schema={"left": pl.Float64, "right": pl.Float64, "ref": pl.Float64, "cur": pl.Float64})
        width = (hi - lo) / bins or 1.0
        frame = con.sql(f"""SELECT least(floor((x - {lo}) / {width}), {bins - 1})::INTEGER AS b,
                                   count(*) FILTER (WHERE is_ref) AS r, count(*) FILTER (WHERE NOT is_ref) AS c
                            FROM ({base}) GROUP BY 1""").pl()
    full = pl.DataFrame({"b": list(range(bins))}, schema={"b": pl.Int32}).join(frame, on="b", how="left").fill_null(0)
    return full.select((lo + pl.col("b") * width).alias("left"), (lo + (pl.col("b") + 1) * width).alias("right"),
                       (pl.col("r") / max(int(full["r"].sum()), 1)).alias("ref"),
                       (pl.col("c") / max(int(full["c"].sum()), 1)).alias("cur"))


def drift_over_time(project: Project, feature: str, where: tuple[tuple[str, str], ...],
                    reference: tuple[datetime, datetime], current: tuple[datetime, datetime],
                    step_days: int = 7) -> pl.DataFrame:
    """PSI and normalised Wasserstein of each week of the current window against the reference."""
    from datetime import timedelta

    rows = []
    start = current[0]
    while start < current[1]:
        end = min(start + timedelta(days=step_days), current[1])
        q = DriftQuery(reference, (max(start, reference[1]), end), by=(), features=(feature,), where=where)
        table = compute_drift(project, q).rows if end > reference[1] else pl.DataFrame()
        if table.height:
            r = table.row(0, named=True)
            rows.append({"period": start, "psi": r["psi"], "wasserstein_norm": r["wasserstein_norm"],
                         "js": r["js"], "n_cur": r["n_cur"], "drifted": r["drifted"]})
        start = end
    return pl.DataFrame(rows, schema={"period": pl.Datetime("us"), "psi": pl.Float64,
                                      "wasserstein_norm": pl.Float64, "js": pl.Float64, "n_cur": pl.Int64,
                                      "drifted": pl.Boolean})
