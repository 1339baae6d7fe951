"""Operator overrides as a trust signal: how often the floor overrides the model per slice and window, whether it
overrides confident decisions or borderline ones, and once labels arrive, who was right.

A row counts when the log carries the operator's final decision (`operator_decision`); an override is a final
decision other than the model's (its logged predicted label, else score >= the version's threshold). The model's
confidence in a decision is how far its score lies from the threshold, as a share of the way to 0 or 1:
borderline below 1/3, confident above 2/3 (a log-only version's threshold is its lowest score decided 'defect'). Rates and precisions carry Wilson intervals. Row work is one SQL
aggregate per slice and window.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

import polars as pl

from app.core.analysis.slices import SliceQuery, ThresholdUnknown, check_dimensions, model_info
from app.core.errors import LineproofError
from app.core.stats.intervals import wilson, z_value
from app.core.store.db import one
from app.core.store.project import Project
from app.core.store.sources import sql_ident, sql_literal

WINDOWS = ("day", "week", "month", "all")
BANDS = ("borderline", "moderate", "confident")


class OverrideError(LineproofError):
    """Overrides cannot be read as asked."""


@dataclass(frozen=True)
class OverrideQuery:
    """One model version's overrides per slice dimensions and time window."""

    version_id: str
    by: tuple[str, ...] = ("line",)
    window: str = "week"  # or "all": the span as one window
    start: datetime | None = None
    end: datetime | None = None
    confidence: float = 0.95
    threshold: float | None = None  # default: the registered version's; for a log-only one, inferred from the log
    where: tuple[tuple[str, str], ...] = ()  # (dimension, value) filters: one slice's trend


def has_operator_decisions(project: Project) -> bool:
    """Whether any import mapped an operator decision column."""
    with project.reading() as con:
        return bool(one(con, "SELECT count(*) FROM log_columns WHERE name = 'operator_decision'")[0])


def override_table(project: Project, query: OverrideQuery) -> pl.DataFrame:
    """Per slice and window: decisions, overrides (rate with interval, by direction and by model confidence), and
    among labelled overrides how often the operator was right, beside the model's own precision."""
    if not has_operator_decisions(project):
        raise OverrideError("This log carries no operator decisions.",
                            "Import a log with the operator's final decision (--map operator_decision=COLUMN, 0 = "
                            "pass, 1 = defect) to see overrides.")
    if query.window not in WINDOWS:
        raise OverrideError(f"Unknown time window {query.window!r}.", f"Use one of {', '.join(WINDOWS)}.")
    check_dimensions(project, SliceQuery(query.version_id, query.by, where=query.where))
    task, threshold, has_pred = model_info(project, query.version_id)
    if task != "binary":
        raise OverrideError(f"Overrides are read for binary decisions; {query.version_id} is a {task} model.",
                            "Choose the binary model whose pass/defect decision the operators confirm or override.")
    if query.threshold is not None:
        threshold = query.threshold
    if threshold is None and not has_pred:
        raise ThresholdUnknown(f"{query.version_id}'s decision threshold is unknown.",
                               "Register the model or import its predicted labels.")
    if threshold is None:  # a log-only version: its lowest score decided 'defect' is where its threshold lies
        with project.reading() as con:
            threshold = one(con, "SELECT min(score) FILTER (WHERE predicted_label = 1) FROM predictions "
                                 "WHERE version_id = ?", [query.version_id])[0]
    t = float(threshold if threshold is not None else 0.5)
    decided = (f"(CASE WHEN p.predicted_label IS NOT NULL THEN p.predicted_label ELSE (p.score >= {t})::INTEGER END)"
               if has_pred else f"(p.score >= {t})::INTEGER")
    keys = [f"coalesce(p.{sql_ident(d)}::VARCHAR, '(missing)') AS {sql_ident(d)}" for d in query.by]
    period = (f"DATE {sql_literal(str((query.start or datetime(1970, 1, 1)).date()))}" if query.window == "all"
              else f"date_trunc('{query.window}', p.ts)::DATE")
    where = [f"p.version_id = {sql_literal(query.version_id)}", "p.operator_decision IS NOT NULL"]
    if query.start:
        where.append(f"p.ts >= TIMESTAMP {sql_literal(query.start.isoformat(sep=' '))}")
    if query.end:
        where.append(f"p.ts < TIMESTAMP {sql_literal(query.end.isoformat(sep=' '))}")
    where += [f"p.{sql_ident(d)}::VARCHAR = {sql_literal(v)}" for d, v in query.where]
    confidence = (f"CASE WHEN md = 1 THEN (score - {t}) / nullif(1 - {t}, 0) ELSE ({t} - score) / nullif({t}, 0) END")
    band = (f"CASE WHEN {confidence} < 1.0 / 3 THEN 'borderline' WHEN {confidence} < 2.0 / 3 THEN 'moderate' "
            "ELSE 'confident' END")
    group = ", ".join([*(sql_ident(d) for d in query.by), "period"])
    with project.reading() as con:
        frame = con.sql(f"""
            WITH r AS (SELECT {''.join(k + ', ' for k in keys)}{period} AS period, p.score, {decided} AS md,
                              p.operator_decision AS op, l.label
                       FROM predictions p LEFT JOIN labels l USING (record_id) WHERE {' AND '.join(where)}),
                 b AS (SELECT *, {band} AS band FROM r)
            SELECT {group}, count(*) AS decided, count(*) FILTER (WHERE op <> md) AS overrides,
                   count(*) FILTER (WHERE op <> md AND op = 1) AS to_defect,
                   count(*) FILTER (WHERE op <> md AND op = 0) AS to_pass,
                   {', '.join(f"count(*) FILTER (WHERE band = '{b}') AS {b}_decided, "
                              f"count(*) FILTER (WHERE band = '{b}' AND op <> md) AS {b}_overrides" for b in BANDS)},
                   count(*) FILTER (WHERE op <> md AND label IS NOT NULL) AS labelled_overrides,
                   count(*) FILTER (WHERE op <> md AND label = op) AS operator_right,
                   count(*) FILTER (WHERE md = 1 AND label IS NOT NULL) AS model_flagged_labelled,
                   count(*) FILTER (WHERE md = 1 AND label = 1) AS model_true_alarms
            FROM b GROUP BY {group} ORDER BY {group}""").pl()
    z = z_value(query.confidence)
    c = pl.col
    rate_low, rate_high = wilson(c("overrides"), c("decided"), z)
    right_low, right_high = wilson(c("operator_right"), c("labelled_overrides"), z)
    return frame.with_columns(
        (c("overrides") / c("decided")).alias("override_rate"), rate_low.alias("override_rate_low"),
        rate_high.alias("override_rate_high"),
        *[pl.when(c(f"{b}_decided") > 0).then(c(f"{b}_overrides") / c(f"{b}_decided")).alias(f"{b}_rate")
          for b in BANDS],
        pl.when(c("labelled_overrides") > 0).then(c("operator_right") / c("labelled_overrides"))
        .alias("override_precision"),
        right_low.alias("override_precision_low"), right_high.alias("override_precision_high"),
        pl.when(c("model_flagged_labelled") > 0).then(c("model_true_alarms") / c("model_flagged_labelled"))
        .alias("model_precision"))


SHOWN = ("decided", "overrides", "override_rate", "override_rate_low", "override_rate_high", "confident_rate",
         "labelled_overrides", "override_precision", "model_precision")


def with_overrides(project: Project, table):
    """A slice table with each slice's override rate and who was right beside its metrics (as it is, where the
    log has no operator decisions or the model is not binary)."""
    if table.task != "binary" or not has_operator_decisions(project):
        return table
    q = table.query
    try:
        frame = override_table(project, OverrideQuery(q.version_id, q.by, q.window or "all", q.start, q.end,
                                                      q.confidence, where=q.where))
    except (OverrideError, ThresholdUnknown):
        return table
    keys = [*q.by, *(["period"] if q.window else [])]
    if not keys:
        return replace(table, overall=pl.concat([table.overall, frame.select(SHOWN)], how="horizontal")
                       if frame.height else table.overall)
    return replace(table, slices=table.slices.join(frame.select(*keys, *SHOWN), on=keys, how="left"))


def override_trend(project: Project, version_id: str, where: tuple[tuple[str, str], ...], window: str = "week"
                   ) -> pl.DataFrame | None:
    """One slice's override rate per window (None where the log has no operator decisions)."""
    if not has_operator_decisions(project):
        return None
    try:
        return override_table(project, OverrideQuery(version_id, (), window, where=where))
    except (OverrideError, ThresholdUnknown):
        return None
