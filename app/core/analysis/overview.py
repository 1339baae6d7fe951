"""The project overview: models and stages, datasets, data volume, label coverage and freshness per line."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import polars as pl

from app.core.store.db import one
from app.core.store.project import Project
from app.core.store.summary import KEYS


@dataclass(frozen=True)
class Overview:
    """Everything the overview screen and `lineproof info` show."""

    name: str
    site: str
    folder: str
    read_only: bool
    schema_version: int
    prediction_rows: int
    label_rows: int
    first_ts: datetime | None
    last_ts: datetime | None
    models: pl.DataFrame  # one row per model version with its stage per site
    datasets: pl.DataFrame
    lines: pl.DataFrame  # plant, line, rows, labelled, coverage, first/last record, hours behind newest
    weekly: pl.DataFrame  # week, rows, labelled: late labels show as partly labelled recent weeks

    labelled_rows: int = 0  # predictions that have a label (labels are unique per record)
    next_review: str = ""  # the month the next operating review is due
    open_triggers: tuple[str, ...] = ()  # events since the last review that call for an event review
    input_only_rows: int = 0  # log rows without a model version (input-only monitoring), part of prediction_rows

    @property
    def label_coverage(self) -> float:
        """Share of predictions that have a ground-truth label."""
        return self.labelled_rows / self.prediction_rows if self.prediction_rows else 0.0


def build_overview(project: Project) -> Overview:
    """Read the overview from the coverage summary kept by every import (no scan of the log)."""
    con = project.cursor()
    try:
        n_pred, n_labelled, first_ts, last_ts, n_inputs = one(
            con, "SELECT coalesce(sum(rows), 0), coalesce(sum(labelled), 0), min(first_ts), max(last_ts), "
                 "coalesce(sum(rows) FILTER (WHERE version_id IS NULL), 0) FROM coverage_summary")
        n_labels = one(con, "SELECT count(*) FROM labels")[0]
        models = con.sql("""
            SELECT m.name AS model, v.version, v.version_id, m.task, m.risk_tier, v.format,
                   coalesce((SELECT string_agg(stage || ' (' || sites || ')', '; ' ORDER BY stage)
                             FROM (SELECT stage, string_agg(site, ', ' ORDER BY site) AS sites
                                   FROM current_stages c WHERE c.version_id = v.version_id GROUP BY stage)),
                            'not staged') AS stages,
                   substr(v.sha256, 1, 12) AS sha256, v.size_bytes, coalesce(c.n, 0)::BIGINT AS predictions
            FROM model_versions v JOIN models m USING (model_id)
            LEFT JOIN (SELECT version_id, sum(rows) AS n FROM coverage_summary GROUP BY 1) c USING (version_id)
            ORDER BY m.name, v.version""").pl()
        datasets = con.sql("""SELECT dataset_id, name, kind, row_count AS rows, substr(sha256, 1, 12) AS sha256,
                                     created_at FROM datasets ORDER BY created_at""").pl()
        known = {r[0] for r in con.execute("SELECT name FROM log_columns").fetchall()}
        group = [k for k in KEYS if k in known]
        lines = pl.DataFrame()
        if group and n_pred:
            keys = ", ".join(group)
            lines = con.sql(f"""
                SELECT {keys}, sum(rows)::BIGINT AS rows, sum(labelled)::BIGINT AS labelled,
                       sum(labelled) / sum(rows) AS coverage,
                       min(first_ts) AS first_record, max(last_ts) AS last_record,
                       epoch((SELECT max(last_ts) FROM coverage_summary) - max(last_ts)) / 3600.0 AS hours_behind
                FROM coverage_summary GROUP BY ALL ORDER BY ALL""").pl()
        weekly = con.sql("""SELECT week, sum(rows)::BIGINT AS rows, sum(labelled)::BIGINT AS labelled
                            FROM coverage_summary GROUP BY 1 ORDER BY 1""").pl()
    finally:
        con.close()
    m = project.manifest
    from app.core.analysis.operating_review import next_review_due, open_triggers

    return Overview(m.name, m.site, str(project.snapshot_of or project.folder), project.read_only,
                    m.schema_version, int(n_pred), int(n_labels), first_ts, last_ts, models, datasets, lines, weekly,
                    int(n_labelled), next_review_due(project),
                    tuple(t["action"] for t in open_triggers(project)) if n_pred else (), int(n_inputs))


def log_rows_text(ov: Overview) -> str:
    """'1,234 predictions', with '+ 56 input-only records' when the log also holds rows without a model."""
    inputs = f" + {ov.input_only_rows:,} input-only records" if ov.input_only_rows else ""
    return f"{ov.prediction_rows - ov.input_only_rows:,} predictions{inputs}"


def overview_text(ov: Overview) -> str:
    """The overview as plain text for the terminal."""
    span = f"{ov.first_ts:%Y-%m-%d} .. {ov.last_ts:%Y-%m-%d}" if ov.first_ts else "no data yet"
    out = [f"Project   {ov.name}" + (f" ({ov.site})" if ov.site else ""),
           f"Folder    {ov.folder}" + ("  [read-only]" if ov.read_only else ""),
           f"Schema    {ov.schema_version}",
           f"Data      {log_rows_text(ov)}, {ov.label_rows:,} labels ({ov.label_coverage:.1%} labelled), {span}"]
    if ov.input_only_rows:
        out.append("          (input-only records have no model version or score: drift and data quality, no metrics)")
    out.append("")
    out.append("Models")
    if ov.models.height:
        for r in ov.models.iter_rows(named=True):
            out.append(f"  {r['version_id']:<28} {r['format']:<6} {r['risk_tier'] or '':<8} {r['stages']:<28} "
                       f"sha256 {r['sha256']}  {r['predictions']:,} predictions")
    else:
        out.append("  none registered")
    out.append("Datasets")
    for r in ov.datasets.iter_rows(named=True):
        out.append(f"  {r['dataset_id']:<28} {r['kind']:<11} {r['rows']:>10,} rows  sha256 {r['sha256']}")
    if not ov.datasets.height:
        out.append("  none registered")
    if ov.lines.height:
        out.append("Lines")
        keys = [c for c in ("plant", "line") if c in ov.lines.columns]
        for r in ov.lines.iter_rows(named=True):
            label = " / ".join(str(r[k]) for k in keys)
            out.append(f"  {label:<16} {r['rows']:>10,} rows  {r['coverage']:>6.1%} labelled  "
                       f"last {r['last_record']:%Y-%m-%d %H:%M}  behind newest {_age(r['hours_behind'])}")
    return "\n".join(out)


def _age(hours: float | None) -> str:
    """Hours as '5 h' or '3.2 d'."""
    hours = hours or 0.0
    return f"{hours / 24:.1f} d" if hours >= 48 else f"{hours:.0f} h"


def overview_json(ov: Overview) -> dict:
    """The overview as JSON-ready data."""
    def rows(df: pl.DataFrame) -> list[dict]:
        return [{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in r.items()}
                for r in df.iter_rows(named=True)]
    return {"name": ov.name, "site": ov.site, "folder": ov.folder, "read_only": ov.read_only,
            "schema_version": ov.schema_version, "prediction_rows": ov.prediction_rows,
            "input_only_rows": ov.input_only_rows,
            "label_rows": ov.label_rows, "label_coverage": ov.label_coverage,
            "first_ts": ov.first_ts.isoformat() if ov.first_ts else None,
            "last_ts": ov.last_ts.isoformat() if ov.last_ts else None,
            "models": rows(ov.models), "datasets": rows(ov.datasets), "lines": rows(ov.lines)}
