"""The quarterly checkpoint's questions, answered with numbers from what the project holds.

- Is the toolchain reducing time to deployment? Median days from import to production for the releases of the
  period against the previous period.
- Did monitoring catch meaningful failures early enough? Per line whose estimate (from the model's confidence, no
  labels needed) said recall had fallen below its reference in the period: that week, the moment the arriving
  labels proved it, and the lead time between them.
- Are governance controls proportionate to risk? Approval wait per risk tier.
- Do the operators still trust the models? Override rate per line, this period against the previous one.
- Have model classes outgrown the stack? Rows per version against the exact-analysis limits, benchmark runs over
  the release plan's latency budget.
"""

from __future__ import annotations

import json
import statistics
from datetime import date, datetime
from typing import Any

import polars as pl

from app.core.analysis.estimate import (
    EXACT_MAX_ROWS,
    EstimateError,
    EstimateQuery,
    binary_reference,
    compute_estimates,
)
from app.core.analysis.overrides import OverrideError, OverrideQuery, has_operator_decisions, override_table
from app.core.analysis.slices import (
    SliceError,
    SliceQuery,
    ThresholdUnknown,
    compute_slices,
    has_line_dimension,
    model_info,
)
from app.core.governance.approvals import model_tier
from app.core.stats.intervals import z_value
from app.core.store.db import one
from app.core.store.project import Project

CONFIRM_POSITIVES = 30  # labelled defects a confirmation needs at least
SIGNAL_ROWS = 2000  # rows per line and week below which the estimate's weekly band is too wide: months instead


def quarterly_answers(project: Project, start: datetime, end: datetime, previous: tuple[datetime, datetime],
                      delivery: dict[str, Any]) -> dict[str, Any]:
    """Each of the checkpoint's questions as numbers with their evidence."""
    return {"time_to_production": _time_to_production(delivery, start, end, previous),
            "lead_time": _lead_times(project, start, end),
            "approval_wait_by_tier": _approval_wait(project, delivery, start, end),
            "overrides": _overrides(project, (start, end), previous),
            "outgrown": _outgrown(project)}


def _time_to_production(delivery: dict[str, Any], start: datetime, end: datetime,
                        previous: tuple[datetime, datetime]) -> dict[str, Any]:
    def released(lo: datetime, hi: datetime) -> list[dict[str, Any]]:
        return [{"version": r["version_id"], "site": r["site"], "days": r["days_to"]["production"],
                 "released": r["stages"]["production"][:10],
                 "source": "history" if "production" in r.get("from_history", ()) else "lineproof"}
                for r in delivery["versions"] if "production" in r["days_to"] and r["days_to"]["production"] is not None
                and lo <= datetime.fromisoformat(r["stages"]["production"]) < hi]
    now, before = released(start, end), released(*previous)
    return {"median_days": statistics.median(r["days"] for r in now) if now else None, "releases": len(now),
            "median_days_before": statistics.median(r["days"] for r in before) if before else None,
            "releases_before": len(before), "evidence": now, "evidence_before": before}


def _lead_times(project: Project, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Per line whose estimate said recall had fallen in the period: that week, the moment the arriving labels
    proved it (or not yet), and the days of warning between them."""
    if not has_line_dimension(project):
        return []
    with project.reading() as con:
        versions = [r[0] for r in con.execute("SELECT version_id FROM coverage_summary WHERE version_id IS NOT NULL "
                                              "GROUP BY 1 ORDER BY 1").fetchall()]
    out = []
    for version in versions:
        reference = binary_reference(project, version)
        if reference is None:
            continue
        try:
            base = compute_slices(project, SliceQuery(version, by=("line",), start=reference[0], end=reference[1],
                                                      auc=False, latency=False)).slices
            weekly = compute_estimates(project, EstimateQuery(version, reference, by=("line",),
                                                              window=_signal_window(project, version), end=end)).rows
        except (EstimateError, SliceError, ThresholdUnknown):
            continue
        flagged = weekly.join(base.select("line", pl.col("recall_low").alias("base_low")), on="line").filter(
            (pl.col("period") >= max(start, reference[1]).date()) & (pl.col("period") < end.date())
            & (pl.col("recall_upper") < pl.col("base_low")))
        for line, first in flagged.group_by("line").agg(pl.col("period").min(), pl.col("base_low").first()) \
                .sort("line").select("line", pl.struct("period", "base_low")).iter_rows():
            signal = datetime.combine(first["period"], datetime.min.time())
            confirmed = _confirmed(project, version, line, first["period"], first["base_low"])
            out.append({"version": version, "line": line, "signal": signal.isoformat(),
                        "confirmed": confirmed.isoformat() if confirmed else None,
                        "lead_days": (confirmed - signal).total_seconds() / 86400 if confirmed else None,
                        "reference_recall_low": first["base_low"],
                        "note": "" if confirmed else "the labels have not confirmed it (yet)"})
    return out


def _signal_window(project: Project, version: str) -> str:
    """Weeks where a line logs enough rows a week for a narrow band (SIGNAL_ROWS), else months."""
    with project.reading() as con:
        typical = one(con, "SELECT median(n) FROM (SELECT sum(rows) AS n FROM coverage_summary WHERE version_id = ? "
                           "GROUP BY line, week)", [version])[0]
    return "week" if (typical or 0) >= SIGNAL_ROWS else "month"


def _confirmed(project: Project, version: str, line: str, since: date, baseline_low: float) -> datetime | None:
    """The first moment the labels arrived so far prove recall below the reference: over the defects welded from
    `since` on, in the order their labels arrived, the 95% Wilson upper bound of recall drops below
    `baseline_low` with at least CONFIRM_POSITIVES defects labelled."""
    task, threshold, has_pred = model_info(project, version)
    decided = "p.predicted_label = 1" if has_pred else f"p.score >= {threshold or 0.5}"
    z = z_value(0.95)
    with project.reading() as con:
        return one(con, f"""
            WITH pos AS (SELECT l.labelled_at, ({decided})::INTEGER AS hit FROM predictions p
                         JOIN labels l USING (record_id)
                         WHERE p.version_id = $v AND p.line = $line AND p.ts >= $since AND l.label = 1),
                 c AS (SELECT labelled_at, sum(hit) OVER w AS k, count(*) OVER w AS n FROM pos
                       WINDOW w AS (ORDER BY labelled_at, hit ROWS UNBOUNDED PRECEDING)),
                 u AS (SELECT labelled_at, n, (k / n + $z2 / (2 * n) + $z * sqrt(k / n * (1 - k / n) / n
                              + $z2 / (4 * n * n))) / (1 + $z2 / n) AS upper FROM c)
            SELECT min(labelled_at) FROM u WHERE n >= {CONFIRM_POSITIVES} AND upper < $low""",
                   {"v": version, "line": line, "since": since, "z": z, "z2": z * z, "low": baseline_low})[0]


def _approval_wait(project: Project, delivery: dict[str, Any], start: datetime, end: datetime
                   ) -> list[dict[str, Any]]:
    """Per risk tier, the approvals decided in the period: how many, mean and longest wait, from which record."""
    tiers: dict[str, list[dict[str, Any]]] = {}
    for r in delivery["versions"]:
        for a in r.get("approvals", ()):
            if r["model_id"] and start <= datetime.fromisoformat(a["decided"]) < end:
                tiers.setdefault(model_tier(project, r["model_id"]), []).append({**a, "version": r["version_id"],
                                                                                  "site": r["site"]})
    return [{"tier": t, "requests": len(v), "mean_days": sum(a["days"] for a in v) / len(v),
             "max_days": max(a["days"] for a in v), "sources": sorted({a["source"] for a in v}),
             "evidence": [f"{a['version']} on {a['site']}: asked {a['requested'][:10]}, approved {a['decided'][:10]}"
                          for a in v]}
            for t, v in sorted(tiers.items())]


def _overrides(project: Project, period: tuple[datetime, datetime], previous: tuple[datetime, datetime]
               ) -> list[dict[str, Any]]:
    if not has_operator_decisions(project):
        return []
    with project.reading() as con:
        versions = [r[0] for r in con.execute("SELECT DISTINCT version_id FROM predictions WHERE operator_decision "
                                              "IS NOT NULL AND version_id IS NOT NULL ORDER BY 1").fetchall()]
    out = []
    for version in versions:
        try:
            now, before = (override_table(project, OverrideQuery(version, ("line",), "all", start=w[0], end=w[1]))
                           for w in (period, previous))
        except (OverrideError, SliceError, ThresholdUnknown):
            continue
        joined = now.join(before.select("line", pl.col("override_rate").alias("before")), on="line", how="left")
        out += [{"version": version, "line": r["line"], "rate": r["override_rate"], "low": r["override_rate_low"],
                 "high": r["override_rate_high"], "before": r["before"], "operator_right": r["override_precision"],
                 "model_precision": r["model_precision"]} for r in joined.iter_rows(named=True)]
    return out


def _outgrown(project: Project) -> list[dict[str, Any]]:
    """Per logged version: rows against the exact-analysis limit, validation runs that failed a latency budget."""
    with project.reading() as con:
        rows = con.execute("SELECT version_id, sum(rows) FROM coverage_summary WHERE version_id IS NOT NULL "
                           "GROUP BY 1 ORDER BY 1").fetchall()
        runs = con.execute("SELECT candidate_version, result_json FROM validation_runs").fetchall()
    misses: dict[str, int] = {}
    for version, result in runs:
        failed = [c for c in json.loads(result or "{}").get("criteria", [])
                  if c.get("kind") == "latency" and c.get("status") == "FAIL"]
        misses[version] = misses.get(version, 0) + len(failed)
    return [{"version": v, "rows": int(n), "bounded_analysis": n > EXACT_MAX_ROWS,
             "latency_budget_misses": misses.get(v, 0),
             "note": (f"{n:,} rows: drift and estimation use bounded summaries by default (exact above "
                      f"{EXACT_MAX_ROWS:,} rows costs a sort of every distinct value)") if n > EXACT_MAX_ROWS else ""}
            for v, n in rows]


def lead_days_text(item: dict[str, Any]) -> str:
    """One line for a lead-time answer."""
    if item["lead_days"] is None:
        return f"{item['version']} on {item['line']}: {item.get('note') or 'no early signal'}"
    return (f"{item['version']} on {item['line']}: estimate flagged the week of {item['signal'][:10]}, labels confirmed "
            f"on {item['confirmed'][:10]}: {item['lead_days']:.0f} days of warning")




def delivery_texts(answers: dict[str, Any]) -> list[tuple[str, str]]:
    """(scope, sentence) for time to production and approval wait per tier, each with its evidence."""
    out = []
    t = answers.get("time_to_production")
    if t and (t["releases"] or t["releases_before"]):
        def days(v: float | None) -> str:
            return "-" if v is None else f"{v:.0f} days"
        out.append(("all sites", f"time to production: median {days(t['median_days'])} over {t['releases']} "
                                 f"release(s), previous period {days(t['median_days_before'])} over "
                                 f"{t['releases_before']}"))
        out += [(r["site"], f"{r['version']} released {r['released']}, {r['days']:.0f} days after it was built"
                            f"{' (imported release history)' if r['source'] == 'history' else ''}")
                for r in t.get("evidence", ())]
    out += [(f"tier {w['tier']}", f"approval wait: {w['requests']} decided, mean {w['mean_days']:.1f} days, longest "
                                  f"{w['max_days']:.1f} ({'; '.join(w.get('evidence', ()))})")
            for w in answers.get("approval_wait_by_tier", ())]
    return out
