"""What needs a look first, for the overview: open alerts, the worst line of late, assets silent right now.

Kept apart from the overview (which reads only the coverage summary and shows at once) because the worst line
and the silent assets scan the log: the overview shows first, these follow from the worker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import polars as pl

from app.core.analysis.alerts import list_alerts
from app.core.analysis.estimate import EstimateError, EstimateQuery, compute_estimates, default_reference
from app.core.analysis.freshness import silent_gaps
from app.core.analysis.records import RecordFilter
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
    newest: datetime | None = None  # the newest logged record: "last 28 days" ends here


@dataclass(frozen=True)
class AttentionItem:
    """One thing the overview points at, and where it leads: the log's rows behind it, or a screen."""

    text: str
    rows: RecordFilter | None = None
    screen: str | None = None  # "alerts"
    joiner: str = " · "  # what goes before it: items of one list (gap lines, silent assets) take ", "


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
                     top["message"][0] if top.height else None, newest)


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


def attention_items(a: Attention) -> list[AttentionItem]:
    """The overview's attention line, item by item, each with the rows (or the screen) behind it."""
    items = [AttentionItem(f"Open alerts: {a.open_alerts}" + (f" ({a.high_alerts} high)" if a.high_alerts else ""),
                           screen="alerts")]
    if a.worst:
        w = a.worst
        start = a.newest - timedelta(days=w["days"]) if a.newest else None
        items.append(AttentionItem(
            f"Worst line, last {w['days']} days: {w['line']} recall {w['recall']:.3f} ({w['low']:.3f}-"
            f"{w['high']:.3f}, {w['labelled']:,} labelled, {w['version']})",
            RecordFilter((("line", w["line"]),), start, None, w["version"])))
    if a.estimated:
        e = a.estimated
        week = datetime.combine(e["period"], datetime.min.time()) if not isinstance(e["period"], datetime) \
            else e["period"]
        items.append(AttentionItem(
            f"Estimated, week of {e['period']:%d %b} ({e['labelled_share']:.0%} labelled): lowest recall "
            f"{e['line']} {e['recall']:.3f} ({e['low']:.3f}-{e['high']:.3f})",
            RecordFilter((("line", e["line"]),), week, week + timedelta(days=7), e["version"])))
    for i, line in enumerate(a.confidence_gaps):
        since = a.newest - timedelta(days=7 * GAP_WEEKS) if a.newest else None
        items.append(AttentionItem(("Confidence gap (measured recall left the estimate's band): " if i == 0 else "")
                                   + line, RecordFilter((("line", line),), since), joiner=", " if i else " · "))
    if a.top_alert:
        items.append(AttentionItem(f"Top alert: {a.top_alert}", screen="alerts"))
    for i, s in enumerate(a.silent[:3]):
        # The rows before it went silent: what it logged last.
        items.append(AttentionItem(("Silent now: " if i == 0 else "") + f"{s['asset']} ({s['hours']:.0f} h)",
                                   RecordFilter((("asset", s["asset"]),)), joiner=", " if i else " · "))
    if len(a.silent) > 3:
        items.append(AttentionItem(f"and {len(a.silent) - 3} more", joiner=" "))
    if not a.silent:
        items.append(AttentionItem("Silent now: none"))
    return items


def attention_text(a: Attention) -> str:
    """One line of plain text for the overview and `lineproof info`."""
    items = attention_items(a)
    return items[0].text + "".join(item.joiner + item.text for item in items[1:])
