"""What needs a look first, for the overview: open alerts, the worst line of late, assets silent right now.

Kept apart from the overview (which reads only the coverage summary and shows at once) because the worst line
and the silent assets scan the log: the overview shows first, these follow from the worker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import polars as pl

from app.core.analysis.alerts import list_alerts
from app.core.analysis.estimate import EstimateError, EstimateQuery, compute_estimates, default_reference
from app.core.analysis.freshness import silent_gaps
from app.core.analysis.slices import SliceError, SliceQuery, compute_slices
from app.core.store.db import one
from app.core.store.project import Project

RECENT_DAYS = 28
SILENT_HOURS = 24.0
GAP_WEEKS = 6  # a confidence gap in the last six weeks is still news


@dataclass(frozen=True)
class Attention:
    """The three things the overview points at."""

    open_alerts: int = 0
    high_alerts: int = 0
    worst: dict | None = None  # version, line, recall with its interval, labelled, days
    silent: list[dict] = field(default_factory=list)  # asset, line, hours, since
    estimated: dict | None = None  # the newest week: line with the lowest estimated recall, its band, labelled share
    confidence_gaps: list[str] = field(default_factory=list)  # lines whose measured recall left the estimate's band
    top_alert: str | None = None  # the first open alert by severity and impact


def build_attention(project: Project) -> Attention:
    """Open alerts, the line with the lowest plausible recall over the last 28 days, and assets silent now."""
    with project.reading() as con:
        open_alerts, high = one(con, "SELECT count(*), count(*) FILTER (WHERE severity = 'high') FROM alerts "
                                     "WHERE state = 'open'")
        newest = one(con, "SELECT max(ts) FROM predictions")[0]
        has_line = bool(con.execute("SELECT 1 FROM log_columns WHERE name = 'line'").fetchall())
        busiest = one(con, "SELECT version_id FROM predictions WHERE ts >= ? AND version_id IS NOT NULL GROUP BY 1 "
                           "ORDER BY count(*) DESC "
                           "LIMIT 1", [newest - timedelta(days=RECENT_DAYS)]) if newest else None
    worst = None
    if busiest and has_line:
        try:
            table = compute_slices(project, SliceQuery(busiest[0], by=("line",), start=newest - timedelta(
                days=RECENT_DAYS), min_support=30, auc=False, latency=False))
            if "recall" in table.metrics and table.slices.height:
                r = table.worst("recall").row(0, named=True)
                if r["recall"] is not None:
                    worst = {"version": busiest[0], "line": r["line"], "recall": r["recall"],
                             "low": r["recall_low"], "high": r["recall_high"], "labelled": r["labelled"],
                             "days": RECENT_DAYS}
        except SliceError:  # no threshold for a log-only version, or too little data: nothing to point at
            worst = None
    gaps = silent_gaps(project, per="asset", expected_hours=SILENT_HOURS)
    silent = []
    if gaps.height:
        now = gaps.filter(gaps["open"]).sort("gap_hours", descending=True)
        silent = [{"asset": r["asset"], "line": r.get("line"), "hours": r["gap_hours"], "since": r["gap_start"]}
                  for r in now.iter_rows(named=True)]
    estimated, gaps = _estimated(project, busiest[0] if busiest else None, has_line)
    top = list_alerts(project, "open")
    return Attention(int(open_alerts), int(high), worst, silent, estimated, gaps,
                     top["message"][0] if top.height else None)


def _estimated(project: Project, version: str | None, has_line: bool) -> tuple[dict | None, list[str]]:
    """The newest estimated week per line (labels mostly not in yet) and the lines with a confidence gap lately."""
    if version is None or not has_line:
        return None, []
    reference = default_reference(project, version)
    if reference is None:
        return None, []
    try:
        table = compute_estimates(project, EstimateQuery(version, reference, by=("line",)))
    except (EstimateError, SliceError):
        return None, []
    rows = table.rows.filter(pl.col("status") == "estimated")
    if not rows.height:
        return None, []
    newest = rows["period"].max()
    week = rows.filter(pl.col("period") == newest).sort("recall_upper", nulls_last=True)
    r = week.row(0, named=True)
    estimated = {"version": version, "line": r["line"], "period": newest, "recall": r["recall"],
                 "low": r["recall_lower"], "high": r["recall_upper"], "labelled_share": r["labelled"] / r["n"]}
    recent = rows.filter(pl.col("period") >= newest - timedelta(days=7 * GAP_WEEKS))
    gaps = sorted(recent.filter(pl.col("gap_flagged"))["line"].unique().to_list())
    return estimated, gaps


def attention_text(a: Attention) -> str:
    """One line of plain text for the overview and `lineproof info`."""
    parts = [f"Open alerts: {a.open_alerts}" + (f" ({a.high_alerts} high)" if a.high_alerts else "")]
    if a.worst:
        w = a.worst
        parts.append(f"Worst line, last {w['days']} days: {w['line']} recall {w['recall']:.3f} "
                     f"({w['low']:.3f}-{w['high']:.3f}, {w['labelled']:,} labelled, {w['version']})")
    if a.estimated:
        e = a.estimated
        parts.append(f"Estimated, week of {e['period']:%d %b} ({e['labelled_share']:.0%} labelled): lowest recall "
                     f"{e['line']} {e['recall']:.3f} ({e['low']:.3f}-{e['high']:.3f})")
    if a.confidence_gaps:
        parts.append("Confidence gap (measured recall left the estimate's band): " + ", ".join(a.confidence_gaps))
    if a.top_alert:
        parts.append(f"Top alert: {a.top_alert}")
    parts.append("Silent now: " + (", ".join(f"{s['asset']} ({s['hours']:.0f} h)" for s in a.silent[:3])
                                   + (f" and {len(a.silent) - 3} more" if len(a.silent) > 3 else "")
                                   if a.silent else "none"))
    return " · ".join(parts)
