"""Slices over an attached log: the same summary step as the project's own log, on DuckDB or Spark.

The log's files are checked against the attachment's record first (a changed source is refused, never silently
read). The relation `_slice_base` is defined on the chosen engine from the attached files; the summary query
(one row per slice and score bin) runs there; only its rows come back into the project's DuckDB cursor, where
the metrics, intervals and ROC AUC are computed exactly as for an imported log.
"""

from __future__ import annotations

import duckdb

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
from app.core.engine.attach import duckdb_views, load_log
from app.core.engine.rows import EngineError, EngineSettings, LocalRows, SparkRows
from app.core.errors import Cancelled
from app.core.progress import Progress, check_cancelled, interrupt_on_cancel
from app.core.store.db import one
from app.core.store.project import Project


def compute_attached(project: Project, query: SliceQuery, progress: Progress) -> SliceTable:
    """Metrics per slice for one version of the attached log `query.log`, summarised on `query.engine`."""
    settings = EngineSettings.from_manifest(project.manifest.extra, query.engine)
    progress.report(0.02, f"Checking the files of {query.log}")
    log = load_log(project, query.log)
    unknown = [d for d in (*query.by, *(d for d, _ in query.where)) if d not in log.slices]
    if unknown:
        raise SliceError(f"Unknown slice dimension(s) in {log.name}: {', '.join(unknown)}.",
                         f"This log has: {', '.join(log.slices) or 'no slice columns'}.")
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
    con = project.cursor()
    rows = None
    try:
        with interrupt_on_cancel(progress, con):
            progress.report(0.05, f"Reading {log.name} on {settings.name}")
            if settings.name == "duckdb":
                duckdb_views(con, log, project_labels)
                rows = LocalRows(con)
            else:
                rows = SparkRows(con, settings, log, progress)
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
    except duckdb.InterruptException as exc:
        raise Cancelled() from exc
    finally:
        if rows is not None:
            rows.close()
        con.close()
