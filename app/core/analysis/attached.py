"""Slices over an attached log: the same summary step as the project's own log, on DuckDB or Spark.

The log's files are checked against the attachment's record first (a changed source is refused, never silently
read). The relation `_slice_base` is defined on the chosen engine from the attached files; the summary query
(one row per slice and score bin) runs there; only its rows come back into the project's DuckDB cursor, where
the metrics, intervals and ROC AUC are computed exactly as for an imported log.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import duckdb
import polars as pl

from app.core.analysis.drift import (
    EXACT_MAX_ROWS,
    GRID_SAMPLE_ROWS,
    DriftError,
    DriftQuery,
    DriftTable,
    _numeric,
    _numeric_bounded,
    _window_rows,
    finish_drift,
)
from app.core.analysis.slices import (
    ATTACHED_ROWS,
    WINDOWS,
    SliceError,
    SliceQuery,
    SliceTable,
    _base_sql,
    _check_threshold,
    summarise,
)
from app.core.engine.attach import AttachedLog, duckdb_views, load_log
from app.core.engine.rows import EngineError, EngineSettings, LocalRows, SparkRows
from app.core.errors import Cancelled
from app.core.progress import NullProgress, Progress, check_cancelled, interrupt_on_cancel
from app.core.store.db import one
from app.core.store.project import Project


@contextmanager
def _engine(project: Project, settings: EngineSettings, log: AttachedLog, progress: Progress,
            project_labels: bool) -> Iterator[tuple[duckdb.DuckDBPyConnection, LocalRows | SparkRows]]:
    """A cursor of the project and the engine's rows over the log; Cancel interrupts both, and both are released."""
    con = project.cursor()
    rows: LocalRows | SparkRows | None = None
    try:
        with interrupt_on_cancel(progress, con):
            progress.report(0.05, f"Reading {log.name} on {settings.name}")
            if settings.name == "duckdb":
                duckdb_views(con, log, project_labels)
                rows = LocalRows(con)
            else:
                rows = SparkRows(con, settings, log, progress)
            yield con, rows
    except duckdb.InterruptException as exc:
        raise Cancelled() from exc
    finally:
        if rows is not None:
            rows.close()
        con.close()


def _open_log(project: Project, name: str, engine: str | None, dims: list[str], error: type, progress: Progress
              ) -> tuple[EngineSettings, AttachedLog]:
    """The engine settings and the attached log (its files checked), refusing slice dimensions it lacks."""
    settings = EngineSettings.from_manifest(project.manifest.extra, engine)
    progress.report(0.02, f"Checking the files of {name}")
    log = load_log(project, name)
    unknown = [d for d in dims if d not in log.slices]
    if unknown:
        raise error(f"Unknown slice dimension(s) in {log.name}: {', '.join(unknown)}.",
                    f"This log has: {', '.join(log.slices) or 'no slice columns'}.")
    return settings, log


def compute_attached_drift(project: Project, query: DriftQuery, progress: Progress) -> DriftTable:
    """Drift per feature and slice of an attached log: bounded summaries built on the engine (mergeable, so Spark
    builds them per partition), statistics from them on this PC. On DuckDB small windows may be exact."""
    settings, log = _open_log(project, query.log, query.engine, [*query.by, *(d for d, _ in query.where)],
                              DriftError, progress)
    features = list(query.features) if query.features else list(log.features)
    missing = [f for f in features if f not in log.features]
    if missing:
        raise DriftError(f"Unknown feature(s) in {log.name}: {', '.join(missing)}.",
                         f"Features: {', '.join(log.features) or 'none'}.")
    if settings.name == "spark" and query.reference_dataset:
        raise EngineError("A registered dataset lives in this project, where Spark cannot read it.",
                          "Use a reference window of the attached log, or --engine duckdb; nothing was computed.")
    if settings.name == "spark" and query.mode == "exact":
        raise EngineError("Exact drift needs every distinct value's count on this PC; Spark builds bounded "
                          "summaries.", "Use --bounded (the default on Spark) or --engine duckdb.")
    if query.reference_dataset:
        from app.core.analysis.drift import _resolve_reference
        query = _resolve_reference(project, query, [(f, "DOUBLE") for f in features])
    with _engine(project, settings, log, progress, project_labels=False) as (con, rows):
        n = _window_rows(rows, query) if query.mode != "exact" else 0
        bounded = query.mode == "bounded" or settings.name == "spark" or \
            query.mode == "auto" and n > EXACT_MAX_ROWS
        if bounded:
            parts = [_numeric_bounded(con, query, features, max(1, n // GRID_SAMPLE_ROWS), progress, rows)]
        else:
            parts = []
            for i, feature in enumerate(features):
                check_cancelled(progress)
                progress.report(i / max(len(features), 1), f"Drift of {feature}")
                parts.append(_numeric(con, query, feature).with_columns(
                    pl.lit(feature).alias("feature"), pl.lit("numeric").alias("kind")))
        return finish_drift(project, query, parts, bounded, progress)


def compute_attached(project: Project, query: SliceQuery, progress: Progress) -> SliceTable:
    """Metrics per slice for one version of the attached log `query.log`, summarised on `query.engine`."""
    settings, log = _open_log(project, query.log, query.engine, [*query.by, *(d for d, _ in query.where)],
                              SliceError, progress)
    if query.window and query.window not in WINDOWS:
        raise SliceError(f"Unknown time window {query.window!r}.", f"Use one of {', '.join(WINDOWS)}.")
    with project.reading() as con:
        registered = one(con, "SELECT m.task, v.threshold FROM model_versions v JOIN models m USING (model_id) "
                              "WHERE v.version_id = ?", [query.version_id])
        project_labels = one(con, "SELECT count(*) FROM labels")[0] > 0
    if settings.name == "spark" and not log.label_files and project_labels:
        raise EngineError(f"{log.name} has no attached labels, and Spark cannot read the labels stored in this "
                          "project.", "Attach the labels where they live (attach-log ... --labels LABELS_FOLDER), "
                                      "or use --engine duckdb; nothing was computed.")
    with _engine(project, settings, log, progress, project_labels) as (con, rows):
        n, decided, latest = rows.fetch("SELECT count(*), count(predicted_label), max(ts) FROM _log "
                                        "WHERE version_id = $v", {"v": query.version_id})
        if not n:
            raise SliceError(f"{log.name} holds no predictions of {query.version_id}.",
                             "Choose a version the log holds (lineproof attach-log PROJECT --list).")
        task, threshold = (registered[0], float(registered[1] if registered[1] is not None else 0.5)) \
            if registered else ("binary", None)
        use_pred = decided > 0 and query.threshold is None
        threshold = query.threshold if query.threshold is not None else threshold
        _check_threshold(query, task, threshold, use_pred)
        check_cancelled(progress)
        rows.define("_slice_base", _base_sql(query, whole_log=False, rows=ATTACHED_ROWS))
        table = summarise(con, query, task, threshold if threshold is not None else 0.5, progress, use_pred,
                          latest, rows)
        return SliceTable(table.query, table.task, table.threshold, table.metrics, table.overall, table.slices,
                          (*table.notes, f"Rows read in place from the attached log {log.name} on "
                                         f"{settings.name} ({len(log.files)} files)."), table.logged_decisions)


def summary_frame(project: Project, name: str, engine: str | None, sql: str,
                  progress: Progress | None = None) -> pl.DataFrame:
    """A small summary query over the attached log `name` (relation _log), run on its engine, as a frame."""
    settings = EngineSettings.from_manifest(project.manifest.extra, engine)
    log = load_log(project, name)
    with _engine(project, settings, log, progress or NullProgress(), project_labels=False) as (con, rows):
        rows.materialise("_summary", sql)
        return con.sql("SELECT * FROM _summary").pl()
