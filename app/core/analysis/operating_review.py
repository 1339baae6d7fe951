"""Operating reviews: the monthly, quarterly or event checkpoint, built from what the project already holds.

Findings are only what the evidence supports: a metric drop counts when the interval of the difference to the
previous period of equal length excludes zero at a Bonferroni-corrected level (one test per line and metric);
drift that shows on most lines at once is reported once as plant-wide (season, a plant change), not per line.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import polars as pl

from app.core.analysis.estimate import EstimateError, EstimateQuery, binary_reference, compute_estimates
from app.core.analysis.quarterly import quarterly_answers
from app.core.analysis.slices import SliceError, ThresholdUnknown, has_line_dimension
from app.core.errors import LineproofError
from app.core.governance.delivery import delivery_metrics
from app.core.progress import NullProgress, Progress, check_cancelled
from app.core.stats.intervals import wilson, z_value
from app.core.store.db import one
from app.core.store.project import Project

DROP_METRICS = {"recall": "higher", "fpr": "lower"}
MIN_SUPPORT = 30
MIN_EFFECT = 0.03  # a drop smaller than 3 points is not worth a review's time, even if it is real
FAMILY_ALPHA = 0.05
PLANT_WIDE_SHARE = 0.5
SILENCE_FACTOR = 15  # a gap counts when it is 15x longer than the asset's usual interval


class ReviewError(LineproofError):
    """A review cannot be built or saved as asked."""


@dataclass(frozen=True)
class Period:
    """A review period [start, end) and the previous period of the same length."""

    label: str
    start: datetime
    end: datetime
    previous_start: datetime | None = None  # default: the same length right before

    @property
    def previous(self) -> tuple[datetime, datetime]:
        """The comparison period right before (the previous calendar month or quarter for those)."""
        return self.previous_start or self.start - (self.end - self.start), self.start


def month(text: str) -> Period:
    """'2026-09' -> September 2026."""
    try:
        first = datetime.strptime(text, "%Y-%m")
    except ValueError as exc:
        raise ReviewError(f"{text!r} is not a month.", "Write it as YYYY-MM, e.g. 2026-09.") from exc
    nxt = datetime(first.year + (first.month == 12), first.month % 12 + 1, 1)
    before = datetime(first.year - (first.month == 1), (first.month - 2) % 12 + 1, 1)
    return Period(text, first, nxt, before)


def quarter(text: str) -> Period:
    """'2026Q3' -> July to September 2026."""
    try:
        year, q = int(text[:4]), int(text.upper().split("Q")[1])
        assert 1 <= q <= 4
    except (ValueError, IndexError, AssertionError) as exc:
        raise ReviewError(f"{text!r} is not a quarter.", "Write it as YYYYQn, e.g. 2026Q3.") from exc
    start = datetime(year, 3 * q - 2, 1)
    end = datetime(year + (q == 4), (3 * q) % 12 + 1, 1)
    before = datetime(year - (q == 1), 3 * (q - 1 or 4) - 2, 1)
    return Period(f"{year}Q{q}", start, end, before)


def around(day: date, days: int = 14) -> Period:
    """An event review: `days` after the event day, compared with the `days` before."""
    start = datetime(day.year, day.month, day.day)
    return Period(f"event {day.isoformat()} +{days}d", start, start + timedelta(days=days))


def _inventory(con, period: Period) -> dict[str, Any]:
    def stages_at(ts: datetime) -> list[dict[str, Any]]:
        return con.sql("""SELECT h.version_id, h.site, arg_max(h.stage, h.change_id) AS stage
                          FROM stage_history h WHERE h.changed_at < $ts GROUP BY 1, 2 ORDER BY 1, 2""",
                       params={"ts": ts}).pl().to_dicts()

    changes = con.sql("""SELECT strftime(changed_at, '%Y-%m-%d %H:%M') AS changed_at, version_id, site, stage,
                                changed_by, reason FROM stage_history
                         WHERE changed_at >= $s AND changed_at < $e ORDER BY change_id""",
                      params={"s": period.start, "e": period.end}).pl().to_dicts()
    approvals = con.sql("""SELECT d.request_id, r.version_id, r.target_stage, d.meaning, d.user_id, d.decided_at
                           FROM approval_decisions d JOIN approval_requests r USING (request_id)
                           WHERE d.decided_at >= $s AND d.decided_at < $e ORDER BY d.decided_at""",
                        params={"s": period.start.isoformat(), "e": period.end.isoformat()}).pl().to_dicts()
    return {"at_start": stages_at(period.start), "at_end": stages_at(period.end), "changes": changes,
            "approvals": approvals}


def _drops(project: Project, period: Period, progress: Progress) -> dict[str, Any]:
    """Per line and metric, a worsening the evidence supports (Bonferroni over every line x metric tested)."""
    from app.core.analysis.slices import SliceQuery, ThresholdUnknown, compute_slices, logged_versions

    findings, tested = [], 0
    rows: list[pl.DataFrame] = []
    by = ("line",) if has_line_dimension(project) else ()  # without lines, the whole log is one unit called "all"
    for version, _ in logged_versions(project):
        check_cancelled(progress)
        frames = []
        for tag, (start, end) in (("now", (period.start, period.end)), ("before", period.previous)):
            try:
                table = compute_slices(project, SliceQuery(version, by=by, start=start, end=end,
                                                           min_support=0, auc=False, latency=False))
            except ThresholdUnknown:  # a log-only version nobody gave a threshold: no decisions to judge
                frames = []
                break
            units = table.slices if by else table.overall.with_columns(pl.lit("all").alias("line"))
            frames.append(units.select("line", pl.col("positives").alias(f"pos_{tag}"),
                                              pl.col("negatives").alias(f"neg_{tag}"),
                                              pl.col("tp").alias(f"tp_{tag}"), pl.col("fp").alias(f"fp_{tag}")))
        if len(frames) == 2:
            rows.append(frames[0].join(frames[1], on="line", how="inner").with_columns(
                pl.lit(version).alias("version")))
    if not rows:
        return {"findings": [], "tested": 0, "method": "no prediction log"}
    frame = pl.concat(rows)
    parts = []
    for metric, (k, n) in {"recall": ("tp", "pos"), "fpr": ("fp", "neg")}.items():
        part = frame.select("version", "line", pl.lit(metric).alias("metric"),
                            pl.col(f"{k}_now").alias("k1"), pl.col(f"{n}_now").alias("n1"),
                            pl.col(f"{k}_before").alias("k0"), pl.col(f"{n}_before").alias("n0"))
        parts.append(part)
    tests = pl.concat(parts).filter((pl.col("n1") >= MIN_SUPPORT) & (pl.col("n0") >= MIN_SUPPORT))
    tested = tests.height
    if not tested:
        return {"findings": [], "tested": 0, "method": f"no line with {MIN_SUPPORT}+ labelled cases in both periods"}
    z = z_value(1 - FAMILY_ALPHA / tested)  # two-sided, Bonferroni
    l1, u1 = wilson(pl.col("k1"), pl.col("n1"), z)
    l0, u0 = wilson(pl.col("k0"), pl.col("n0"), z)
    p1, p0 = pl.col("k1") / pl.col("n1"), pl.col("k0") / pl.col("n0")
    # Newcombe's hybrid score interval for the difference of two independent proportions (method 10).
    tests = tests.with_columns(p1.alias("now"), p0.alias("before"), (p1 - p0).alias("diff"),
                               (p1 - p0 - ((p1 - l1) ** 2 + (u0 - p0) ** 2).sqrt()).alias("low"),
                               (p1 - p0 + ((u1 - p1) ** 2 + (p0 - l0) ** 2).sqrt()).alias("high"),
                               l1.alias("now_low"), u1.alias("now_high"))
    worse = ((pl.col("metric") == "recall") & (pl.col("high") < 0) & (pl.col("diff") <= -MIN_EFFECT)) | \
        ((pl.col("metric") == "fpr") & (pl.col("low") > 0) & (pl.col("diff") >= MIN_EFFECT))
    for r in tests.filter(worse).sort("version", "line", "metric").iter_rows(named=True):
        name = "recall" if r["metric"] == "recall" else "false-alarm rate"
        findings.append({**{k: r[k] for k in ("version", "line", "metric", "now", "before", "diff", "low", "high")},
                         "evidence": f"{r['version']} on {r['line']}: {name} {r['now']:.3f} vs {r['before']:.3f} in "
                                     f"the previous period ({r['diff']:+.3f}, interval {r['low']:+.3f} to "
                                     f"{r['high']:+.3f}; {int(r['n1'])} vs {int(r['n0'])} cases)"})
    per_line = tests.filter(pl.col("metric") == "recall").select(
        "line", pl.col("now").alias("recall_now"), pl.col("before").alias("recall_before")).to_dicts()
    return {"findings": findings, "tested": tested, "per_line": per_line,
            "method": f"Newcombe interval of the difference, Bonferroni over {tested} line x metric tests "
                      f"(z = {z:.2f}); drops under {MIN_EFFECT} ignored"}


def _outcomes(project: Project, period: Period, per_line: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Business KPIs per line (imported from CSV) next to the model's recall on that line."""
    from app.core.analysis.kpis import kpi_changes

    recall = {(r["line"]): r for r in per_line}
    out = []
    for r in kpi_changes(project, period.start.date(), period.end.date(), period.previous[0].date()):
        model = recall.get(r["line"], {})
        out.append({**r, "recall_now": model.get("recall_now"), "recall_before": model.get("recall_before")})
    return out


def _drift(project: Project, period: Period) -> dict[str, Any]:
    from app.core.analysis.drift import DriftQuery, compute_drift

    by = ("line",) if has_line_dimension(project) else ()
    try:
        table = compute_drift(project, DriftQuery(reference=period.previous, current=(period.start, period.end),
                                                  by=by))
    except LineproofError as exc:
        return {"line_specific": [], "plant_wide": [], "note": exc.what}
    rows = table.rows if by else table.rows.with_columns(pl.lit("all").alias("line"))
    if not rows.height:
        return {"line_specific": [], "plant_wide": [], "note": "no feature columns in the log"}
    lines = rows["line"].n_unique()
    drifted = rows.filter(pl.col("drifted").fill_null(False) & (pl.col("psi_band") == "significant"))
    spread = drifted.group_by("feature").agg(pl.len().alias("lines"), pl.col("psi").median().alias("psi"))
    wide = spread.filter(pl.col("lines") >= PLANT_WIDE_SHARE * lines) if by else spread.clear()
    specific = drifted.join(wide.select("feature"), on="feature", how="anti").sort("psi", descending=True)
    return {"line_specific": [{"line": r["line"], "feature": r["feature"], "psi": r["psi"],
                               "evidence": f"{r['feature']} on {r['line']}: PSI {r['psi']:.2f} against the previous "
                                           f"period ({r['method']} test)"} for r in specific.iter_rows(named=True)],
            "plant_wide": [{"feature": r["feature"], "lines": r["lines"], "psi": r["psi"],
                            "evidence": f"{r['feature']} shifted on {r['lines']} of {lines} lines at once (median PSI "
                                        f"{r['psi']:.2f}): a plant-wide change (season, supply), not a line problem"}
                           for r in wide.sort("feature").iter_rows(named=True)],
            "note": f"{rows.height} line x feature cells compared"}


def _freshness(project: Project, period: Period) -> list[dict[str, Any]]:
    """Assets silent far longer than their own cadence (at least a day, and 15x their mean interval)."""
    from app.core.analysis.freshness import silent_gaps

    gaps = silent_gaps(project, per="asset", expected_hours=24)
    if not gaps.height:
        return []
    with project.reading() as con:
        cadence = con.sql("""SELECT asset, epoch(max(ts) - min(ts)) / 3600.0 / greatest(count(*) - 1, 1) AS mean_gap
                             FROM predictions GROUP BY asset""").pl()
    inside = gaps.filter((pl.col("gap_start") < period.end) & (pl.col("gap_end") > period.start) & ~pl.col("open"))
    inside = inside.join(cadence, on="asset", how="left").filter(
        pl.col("gap_hours") >= pl.max_horizontal(pl.lit(24.0), SILENCE_FACTOR * pl.col("mean_gap").fill_null(0.0)))
    return [{"asset": r["asset"], "line": r["line"], "from": f"{r['gap_start']:%Y-%m-%d %H:%M}",
             "to": f"{r['gap_end']:%Y-%m-%d %H:%M}", "hours": r["gap_hours"],
             "evidence": f"{r['asset']} ({r['line']}) sent nothing for {r['gap_hours'] / 24:.1f} days "
                         f"({r['gap_start']:%Y-%m-%d} to {r['gap_end']:%Y-%m-%d}); it usually sends every "
                         f"{r['mean_gap']:.1f} h"}
            for r in inside.iter_rows(named=True)]


def _latency(con, period: Period) -> list[dict[str, Any]]:
    runs = con.sql("""SELECT version_id, runtime, device, batch, fingerprint_id, started_at, p99_ms FROM bench_runs
                      WHERE status = 'ok' AND NOT coalesce(noisy, false) AND started_at < $e""",
                   params={"e": period.end}).pl()
    if not runs.height:
        return []
    key = ["version_id", "runtime", "device", "batch", "fingerprint_id"]
    now = runs.filter(pl.col("started_at") >= period.start).group_by(key).agg(pl.col("p99_ms").median().alias("now"))
    before = runs.filter(pl.col("started_at") < period.start).group_by(key).agg(
        pl.col("p99_ms").median().alias("before"))
    both = now.join(before, on=key).filter(pl.col("now") > 1.2 * pl.col("before"))
    return [{**r, "evidence": f"{r['version_id']} p99 on {r['runtime']} {r['device']} (batch {r['batch']}, same "
                              f"hardware): {r['now']:.2f} ms vs {r['before']:.2f} ms before"}
            for r in both.iter_rows(named=True)]


def _alerts(con, period: Period) -> dict[str, Any]:
    """Alerts raised, acknowledged real or false, still open; alert precision per line against the period before."""
    frame = con.sql("""SELECT coalesce(line, '(plant)') AS line, state, raised_at >= $s AS now FROM alerts
                       WHERE raised_at >= $p AND raised_at < $e""",
                    params={"s": period.start, "p": period.previous[0], "e": period.end}).pl()
    current = frame.filter(pl.col("now")) if frame.height else frame
    counts = {s: int((current["state"] == s).sum()) for s in ("open", "real", "false")} if current.height else \
        {"open": 0, "real": 0, "false": 0}
    precision = []
    if frame.height:
        judged = frame.filter(pl.col("state").is_in(["real", "false"])).group_by("line", "now").agg(
            (pl.col("state") == "real").mean().alias("precision"), pl.len().alias("judged"))
        now = judged.filter(pl.col("now")).drop("now")
        before = judged.filter(~pl.col("now")).select("line", pl.col("precision").alias("precision_before"),
                                                      pl.col("judged").alias("judged_before"))
        precision = now.join(before, on="line", how="left").sort("line").to_dicts()
    return {"raised": current.height, **counts, "precision_by_line": precision}


def _triggers(project: Project, con, period: Period) -> list[dict[str, Any]]:
    """Firmware or hardware changes in the period on a line whose production model was not validated since."""
    from app.core.analysis.events import detect_version_changes

    changes = detect_version_changes(project)
    if not changes.height:
        return []
    inside = changes.filter((pl.col("ts") >= period.start) & (pl.col("ts") < period.end))
    per_line = inside.group_by("line", "new_value").agg(pl.col("ts").min().alias("first"),
                                                        pl.len().alias("assets")).sort("first")
    out = []
    for r in per_line.iter_rows(named=True):  # a handful of (line, firmware) pairs
        plant = r["line"].split("-")[0] if r["line"] else ""
        prod = [v for (v,) in con.execute("SELECT version_id FROM current_stages WHERE stage = 'production' "
                                          "AND site = ?", [plant]).fetchall()]
        # Only a run that re-validated the production version itself counts (a run that used it as champion
        # judged a candidate, not the production model on the new firmware).
        validated = one(con, "SELECT count(*) FROM validation_runs WHERE finished_at > ? AND "
                             "list_contains(?, candidate_version)", [r["first"], prod])[0] if prod else 0
        if validated:
            continue
        out.append({"line": r["line"], "change": f"firmware {r['new_value']}", "first_seen":
                    f"{r['first']:%Y-%m-%d %H:%M}", "assets": r["assets"], "models": prod,
                    "action": f"Event review and re-validation of {', '.join(prod) or 'the line model'} on "
                              f"{r['line']}: firmware {r['new_value']} on {r['assets']} asset(s) since "
                              f"{r['first']:%Y-%m-%d}, no validation run since"})
    return out


def _persisting(project: Project, period: Period) -> list[dict[str, Any]]:
    """Problems that outlive the month they started in: per line, recall in the period below its reference (the
    first labelled weeks) beyond both intervals, with the month the run of low months began and whether the
    version was validated since. A drop is a finding once (the month it happens); this keeps it on the record."""
    from app.core.analysis.slices import SliceQuery, compute_slices, logged_versions

    if not has_line_dimension(project):
        return []
    out = []
    for version, _ in logged_versions(project):
        reference = binary_reference(project, version)
        if reference is None or reference[1] >= period.end:
            continue
        try:
            base = compute_slices(project, SliceQuery(version, by=("line",), start=reference[0], end=reference[1],
                                                      auc=False, latency=False)).slices
            lines = base.height or 1
            confidence = 1 - FAMILY_ALPHA / lines  # one test per line
            now = compute_slices(project, SliceQuery(version, by=("line",), start=period.start, end=period.end,
                                                     auc=False, latency=False, confidence=confidence)).slices
            months = compute_slices(project, SliceQuery(version, by=("line",), window="month", start=reference[1],
                                                        end=period.end, auc=False, latency=False,
                                                        confidence=confidence)).slices
        except (SliceError, ThresholdUnknown):
            continue
        base = base.select("line", pl.col("recall").alias("ref"), pl.col("recall_low").alias("ref_low"))
        low_now = now.join(base, on="line").filter((pl.col("recall_high") < pl.col("ref_low"))
                                                   & (pl.col("recall") <= pl.col("ref") - MIN_EFFECT))
        history = months.join(base, on="line").with_columns(
            ((pl.col("recall_high") < pl.col("ref_low")) & (pl.col("recall") <= pl.col("ref") - MIN_EFFECT))
            .alias("low")).sort("line", "period")
        for r in low_now.iter_rows(named=True):
            runs = history.filter(pl.col("line") == r["line"])["low"].to_list()
            periods = history.filter(pl.col("line") == r["line"])["period"].to_list()
            since = None
            for month, low in zip(reversed(periods), reversed(runs), strict=True):
                if not low:
                    break
                since = month
            if since is None:
                continue
            with project.reading() as con:
                validated = one(con, "SELECT count(*) FROM validation_runs WHERE (candidate_version = ? OR "
                                     "champion_version = ?) AND finished_at >= ?", [version, version, since])[0]
            out.append({"version": version, "line": r["line"], "since": f"{since:%Y-%m}", "recall": r["recall"],
                        "reference": r["ref"], "validated_since": int(validated),
                        "evidence": f"{version} on {r['line']}: recall {r['recall']:.3f} in the period, below its "
                                    f"reference {r['ref']:.3f}; still open since {since:%Y-%m}"
                                    + ("" if validated else "; no validation run since")})
    return out


def _estimates(project: Project, period: Period) -> dict[str, Any]:
    """Per line, for each binary version logged in the period: recall and ROC AUC estimated from the model's
    confidence (whole period as one window, default reference) beside the measured values, gaps flagged."""
    with project.reading() as con:
        versions = [r[0] for r in con.execute(
            "SELECT version_id FROM predictions WHERE ts >= ? AND ts < ? AND version_id IS NOT NULL GROUP BY 1 "
            "ORDER BY count(*) DESC", [period.start, period.end]).fetchall()]
    by = ("line",) if has_line_dimension(project) else ()
    out = []
    for version in versions:
        reference = binary_reference(project, version)
        if reference is None:
            continue
        try:
            table = compute_estimates(project, EstimateQuery(version, reference, by=by, window="all",
                                                             start=period.start, end=period.end))
        except (EstimateError, ThresholdUnknown):
            continue
        for r in table.rows.iter_rows(named=True):
            out.append({"version": version, "line": r.get("line", "all"), "rows": r["n"],
                        "labelled_share": r["labelled"] / r["n"] if r["n"] else 0.0, "status": r["status"],
                        **{k: r[k] for k in ("recall", "recall_lower", "recall_upper", "recall_realized", "auc",
                                             "auc_realized", "gap_flagged", "gap_metrics")},
                        "reference": [t.isoformat() for t in reference]})
    return {"per_line": out, "gaps": [r for r in out if r["gap_flagged"]],
            "method": "Estimated from each model's confidence (CBPE, calibrated on its first labelled weeks), the "
                      "whole period as one window; a gap is a measured value more than 3.5 standard errors from the "
                      "estimate."}


def build_review(project: Project, period: Period, progress: Progress | None = None) -> dict[str, Any]:
    """Every section of the review for a period, as plain data."""
    progress = progress or NullProgress()
    progress.report(0.05, "Inventory of versions and stages")
    with project.reading() as con:
        inventory = _inventory(con, period)
        latency = _latency(con, period)
        alerts = _alerts(con, period)
        triggers = _triggers(project, con, period)
    progress.report(0.2, "Metrics per line against the previous period")
    drops = _drops(project, period, progress)
    check_cancelled(progress)
    progress.report(0.6, "Input drift against the previous period")
    started = time.perf_counter()
    drift = _drift(project, period)
    drift_seconds = time.perf_counter() - started
    progress.report(0.9, "Silent assets and business outcomes")
    fresh = _freshness(project, period)
    outcomes = _outcomes(project, period, drops.get("per_line", []))
    progress.report(0.95, "Estimated against measured performance, delivery")
    estimates = _estimates(project, period)
    persisting = _persisting(project, period)
    delivery = delivery_metrics(project, period.start, period.end)
    answers = quarterly_answers(project, period.start, period.end, period.previous, delivery)
    answers["drift_seconds"] = drift_seconds  # what the drift matrix costs on this PC, for "outgrown the stack"
    progress.report(1.0, "Review ready")
    return {"period": {"label": period.label, "start": period.start.isoformat(), "end": period.end.isoformat(),
                       "previous": [t.isoformat() for t in period.previous]},
            "inventory": inventory, "health": {"drops": drops, "drift": drift, "silent": fresh, "latency": latency,
                                               "estimates": estimates, "persisting": persisting},
            "alerts": alerts, "triggers": triggers, "outcomes": outcomes, "delivery": delivery, "answers": answers}


def findings_count(review: dict[str, Any]) -> int:
    """How many things the review asks someone to look at."""
    h = review["health"]
    return (len(h["drops"]["findings"]) + len(h["drift"]["line_specific"]) + len(h["silent"]) + len(h["latency"])
            + len(review["triggers"]) + review["alerts"]["open"] + len(h.get("estimates", {}).get("gaps", []))
            + len(review.get("delivery", {}).get("unverified_releases", []))
            + len([p for p in h.get("persisting", []) if p["since"] < review["period"]["start"][:7]]))


def save_review(project: Project, review: dict[str, Any], decision: str, actions: list[str], reviewer: str) -> str:
    """Store the review with the reviewer's decision and actions (audited); returns its id."""
    if not decision.strip():
        raise ReviewError("A review record needs the reviewer's decision.",
                          "Write what was decided (e.g. 're-validate v1 on P2-L02'); nothing was saved.")
    body = json.dumps(review, sort_keys=True, default=str)
    sha = hashlib.sha256(body.encode()).hexdigest()
    review_id = f"REV-{review['period']['label'].replace(' ', '_')}-{uuid.uuid4().hex[:6]}"
    with project.change("review.save", review_id, {"period": review["period"]["label"], "findings_sha256": sha,
                                                    "decision": decision, "actions": actions}) as con:
        con.execute("INSERT INTO operating_reviews VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, now()::TIMESTAMP)",
                    [review_id, review["period"]["label"], review["period"]["start"], review["period"]["end"], body,
                     sha, decision, json.dumps(actions), reviewer])
    return review_id


def load_review(project: Project, review_id: str) -> dict[str, Any]:
    """A saved review with its decision, actions and hash."""
    with project.reading() as con:
        row = one(con, "SELECT findings_json, findings_sha256, decision, actions_json, reviewer, created_at::VARCHAR "
                       "FROM operating_reviews WHERE review_id = ?", [review_id])
    if row is None:
        raise ReviewError(f"No saved review {review_id!r}.", "List them with lineproof review PROJECT --list.")
    return {"review_id": review_id, "review": json.loads(row[0]), "findings_sha256": row[1], "decision": row[2],
            "actions": json.loads(row[3]), "reviewer": row[4], "saved_at": row[5]}


def open_triggers(project: Project) -> list[dict[str, Any]]:
    """Triggers since the end of the last saved review (or the start of the log)."""
    from app.core.analysis.slices import logged_span

    first, last = logged_span(project)
    if first is None:
        return []
    with project.reading() as con:
        has = one(con, "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'operating_reviews'")[0]
        reviewed = one(con, "SELECT max(period_end) FROM operating_reviews")[0] if has else None
        start = max(first, reviewed) if reviewed else first
        return _triggers(project, con, Period("open", start, last + timedelta(seconds=1)))


def next_review_due(project: Project, today: date | None = None) -> str:
    """The first month after the last saved monthly review (or the current month if none)."""
    with project.reading() as con:
        if not one(con, "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'operating_reviews'")[0]:
            return "no review yet"
        last = one(con, "SELECT max(period_end) FROM operating_reviews")[0]
    if last is None:
        today = today or datetime.now(UTC).date()
        return f"{today:%Y-%m} (no review saved yet)"
    return f"{last:%Y-%m}"
