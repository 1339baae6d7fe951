"""Alerts: rules evaluated over the log (metric below threshold, drift, silence, missingness), each stored
with its evidence; users acknowledge them as real or false alarms (audited), and the false-alert burden is
measured as alert precision per line."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import polars as pl

from app.core.analysis.attached import summary_frame
from app.core.analysis.drift import DriftQuery, compute_drift
from app.core.analysis.events import version_like_columns
from app.core.analysis.freshness import silent_gaps
from app.core.analysis.overrides import OverrideError, OverrideQuery, has_operator_decisions, override_table
from app.core.analysis.slices import SliceError, SliceQuery, ThresholdUnknown, compute_slices, logged_versions
from app.core.analysis.triage import events_between, triage_drift
from app.core.engine.attach import load_log
from app.core.errors import LineproofError
from app.core.progress import NullProgress, PartProgress, Progress, check_cancelled
from app.core.store.audit import current_actor
from app.core.store.db import one
from app.core.store.manifest import settings_table
from app.core.store.project import Project
from app.core.store.sources import sql_ident

VERDICTS = ("real", "false")
TRUST_RISE = 1.5  # an override rate 1.5x the reference's (and beyond both intervals) is trust erosion
TRUST_MIN_OVERRIDES = 10
HIGH_IMPACT = 0.05  # a local drift that flips this share of decisions is a high-severity alert
SOME_IMPACT = 0.005  # below this share of flipped decisions a drift is a notice, not an alert
ImpactProbe = Callable[[Project, dict, str, tuple, tuple], Any]  # (project, where, feature, ref, cur) -> Impact


class AlertError(LineproofError):
    """An alert cannot be handled as asked."""


@dataclass(frozen=True)
class AlertRules:
    """Thresholds of the alert rules; override in lineproof.toml under [alerts]."""

    recall_min: float = 0.5
    min_support: int = 30
    stale_hours: float = 24.0
    missing_increase: float = 0.05

    @classmethod
    def from_manifest(cls, extra: dict) -> AlertRules:
        """Rules from the manifest's [alerts] table; a bad key or value is a SettingsError naming it."""
        return settings_table(cls, extra, "alerts", {"recall_min": (0.0, 1.0), "missing_increase": (0.0, 1.0)})


def alert_dimension(project: Project, log: str | None = None) -> str | None:
    """The slice dimension alerts are raised per: `line` when the log has it, else the first of the project's
    dimensions the log carries (airline, cell, asset...), the plant only when nothing finer is logged."""
    if log:
        logged = set(load_log(project, log, check=False).slices)
        dims = [d for d in project.manifest.slice_dimensions if d in logged] + sorted(
            logged - set(project.manifest.slice_dimensions))
    else:
        with project.reading() as con:
            logged = {r[0] for r in con.execute("SELECT name FROM log_columns WHERE role = 'slice'").fetchall()}
        dims = [d for d in project.manifest.slice_dimensions if d in logged]
    if "line" in dims:
        return "line"
    finer = [d for d in dims if d != "plant"]
    return (finer or dims or [None])[0]


def _versions(project: Project, log: str | None, engine: str | None) -> list[str]:
    if not log:
        return [v for v, _ in logged_versions(project)]
    frame = summary_frame(project, log, engine, "SELECT version_id, count(*) AS n FROM _log "
                                                "WHERE version_id IS NOT NULL GROUP BY 1")
    return sorted(frame["version_id"].to_list())


def _candidates(project: Project, reference: tuple[datetime, datetime], current: tuple[datetime, datetime],
                rules: AlertRules, progress: Progress, impact: ImpactProbe | None = None, log: str | None = None,
                engine: str | None = None) -> list[dict]:
    found: list[dict] = []
    start, end = current
    dim = alert_dimension(project, log)
    has_line = dim is not None  # the slice alerts are raised per (line, or the log's own first dimension)
    by = (dim,) if dim else ()  # a log without slice dimensions is judged as a whole

    def where(r: dict) -> tuple[str, str | None, str]:
        """(scope, slice value, words) of a result row."""
        return (f"{dim}={r[dim]}", r[dim], f"on {r[dim]}") if dim else ("all", None, "overall")

    progress.report(0.05, f"Checking metrics per {dim}" if dim else "Checking metrics")
    for version in _versions(project, log, engine):
        check_cancelled(progress)  # each step below also stops its own queries on Cancel (closing the project)
        try:
            table = compute_slices(project, SliceQuery(version, by=by, start=start, end=end,
                                                       min_support=rules.min_support, latency=False, log=log,
                                                       engine=engine), PartProgress(progress, 0.05, 0.2))
        except ThresholdUnknown:  # a log-only version nobody gave a threshold: no decisions to judge
            continue
        if "recall" not in table.metrics:
            continue
        results = table.slices if has_line else table.overall.filter(pl.col("labelled") >= rules.min_support)
        low = results.filter(pl.col("recall_high") < rules.recall_min)
        for r in low.iter_rows(named=True):
            scope, line, words = where(r)
            found.append({"rule": "metric_low", "scope": scope, "line": line,
                          "subject": f"{version} recall", "severity": "high",
                          "message": f"{version} recall {r['recall']:.3f} {words} (95% interval "
                                     f"{r['recall_low']:.3f}-{r['recall_high']:.3f}) is below {rules.recall_min}",
                          "evidence": {k: r[k] for k in ("n", "labelled", "tp", "fn", "recall", "recall_low",
                                                         "recall_high")}})
    progress.report(0.2, "Checking drift and missingness")
    drift_table = compute_drift(project, DriftQuery(reference, current, by=by, log=log, engine=engine),
                                PartProgress(progress, 0.2, 0.4))
    drift = drift_table.rows
    if drift.height:
        found += _drift_alerts(project, drift_table, dim, reference, current, impact, progress)
        up = drift.filter((pl.col("missing_cur") - pl.col("missing_ref")) >= rules.missing_increase)
        for r in up.iter_rows(named=True):
            scope, line, words = where(r)
            found.append({"rule": "missingness", "scope": scope, "line": line,
                          "subject": r["feature"], "severity": "medium",
                          "message": f"{r['feature']} missing in {r['missing_cur']:.1%} of rows {words} "
                                     f"(reference {r['missing_ref']:.1%})",
                          "evidence": {"missing_ref": r["missing_ref"], "missing_cur": r["missing_cur"]}})
    if dim is not None and not log and has_operator_decisions(project):
        check_cancelled(progress)
        progress.report(0.72, f"Checking operator overrides per {dim}")
        found += _trust_alerts(project, dim, reference, current)
    for extra, parents, values in ([] if log else _other_dimensions(project, dim)):
        check_cancelled(progress)
        progress.report(0.75, f"Checking metrics and drift per {extra}")
        found += _dimension_alerts(project, extra, parents, values, dim, found, reference, current, rules, impact,
                                   PartProgress(progress, 0.75, 0.8))
    check_cancelled(progress)
    progress.report(0.8, "Checking for silent assets")
    gaps = silent_gaps(project, per="asset", expected_hours=rules.stale_hours, log=log, engine=engine)
    if gaps.height:
        in_window = gaps.filter((pl.col("gap_end") > start) & (pl.col("gap_start") < end))
        for r in in_window.iter_rows(named=True):
            found.append({"rule": "stale", "scope": f"asset={r['asset']}", "line": r.get("line"),
                          "subject": f"silent from {r['gap_start']:%Y-%m-%d %H:%M}",
                          "severity": "high" if r["open"] else "medium",
                          "message": f"{r['asset']} sent nothing for {r['gap_hours']:.0f} h from "
                                     f"{r['gap_start']:%Y-%m-%d %H:%M}" + (" (still silent)" if r["open"] else ""),
                          "evidence": {"gap_start": r["gap_start"], "gap_end": r["gap_end"],
                                       "gap_hours": r["gap_hours"], "expected_hours": rules.stale_hours}})
    return found


def _trust_alerts(project: Project, dim: str, reference: tuple[datetime, datetime],
                  current: tuple[datetime, datetime]) -> list[dict]:
    """Override rates that rose on a slice: trust erosion, triaged like drift (most slices at once: one notice;
    one slice: an alert naming the event since the reference, and who was right)."""
    found: list[dict] = []
    for version, _ in logged_versions(project):
        try:
            ref, cur = (override_table(project, OverrideQuery(version, (dim,), "all", start=w[0], end=w[1]))
                        for w in (reference, current))
        except (OverrideError, ThresholdUnknown, SliceError):
            continue
        both = cur.join(ref.select(dim, *[pl.col(c).alias(f"ref_{c}") for c in ("override_rate", "override_rate_high",
                                                                                 "decided")]), on=dim)
        risen = both.filter((pl.col("override_rate_low") > pl.col("ref_override_rate_high"))
                            & (pl.col("override_rate") >= TRUST_RISE * pl.col("ref_override_rate"))
                            & (pl.col("overrides") >= TRUST_MIN_OVERRIDES))
        if not risen.height:
            continue
        if risen.height >= max(2, both.height * 0.5):
            found.append({"rule": "trust", "scope": "plant-wide", "line": None, "subject": f"{version} overrides",
                          "severity": "notice", "message": f"operators override {version} more on {risen.height} of "
                          f"{both.height} {dim}s at once (plant-wide: a procedure or a shift pattern, not one line)",
                          "evidence": {"triage": "plant-wide", "slices": risen.height, "of_slices": both.height}})
            continue
        events = events_between(project, [dim], (reference[1], current[1]))
        for r in risen.iter_rows(named=True):
            event = events.get((r[dim],))
            right = r["override_precision"]
            model = r["model_precision"]
            who = "" if right is None else (
                f"; operators right in {right:.0%} of {r['labelled_overrides']:,} labelled overrides (model precision "
                f"{'-' if model is None else format(model, '.0%')})")
            found.append({"rule": "trust", "scope": f"{dim}={r[dim]}", "line": r[dim] if dim == "line" else None,
                          "subject": f"{version} overrides",
                          "severity": "high" if right is not None and model is not None and right > model else "medium",
                          "message": f"trust erosion on {r[dim]}: overrides {r['ref_override_rate']:.1%} -> "
                                     f"{r['override_rate']:.1%}" + (f"; event {event}" if event else "") + who,
                          "evidence": {"triage": "local", "cause": f"event {event}" if event else None,
                                       **{k: r[k] for k in ("decided", "overrides", "override_rate",
                                                            "override_rate_low", "override_rate_high",
                                                            "ref_override_rate", "labelled_overrides",
                                                            "operator_right", "override_precision",
                                                            "model_precision", "confident_overrides",
                                                            "to_defect", "to_pass")}}})
    return found


def _other_dimensions(project: Project, primary: str | None) -> list[tuple[str, dict[str, str] | None, int]]:
    """The other slice dimensions alerts follow, each with its values' parent in the primary dimension when it is
    nested in it (an asset on one line), so that an alert its parent already raised is not raised again.

    Left out: dimensions the primary is nested in (a plant: its lines already speak for it) and version-like
    columns (firmware), whose changes are events that triage names as causes."""
    if primary is None:
        return []
    with project.reading() as con:
        logged = [r[0] for r in con.execute("SELECT name FROM log_columns WHERE role = 'slice' ORDER BY name")
                  .fetchall()]
    skip = set(version_like_columns(project)) | {primary}
    out = []
    for d in (d for d in logged if d not in skip):
        col, top = sql_ident(d), sql_ident(primary)
        with project.reading() as con:  # one query: is it coarser, which values nest in one primary slice
            coarser, children, owners, values = one(con, f"""
                WITH per_value AS (SELECT {col}::VARCHAR AS v, count(DISTINCT {top}) AS owners,
                                          any_value({top})::VARCHAR AS owner
                                   FROM predictions WHERE {col} IS NOT NULL GROUP BY 1),
                     per_primary AS (SELECT count(DISTINCT {col}) AS n FROM predictions GROUP BY {top})
                SELECT (SELECT coalesce(max(n), 0) <= 1 FROM per_primary), list(v) FILTER (WHERE owners = 1),
                       list(owner) FILTER (WHERE owners = 1), count(*) FROM per_value""")
        if coarser:
            continue
        parents = dict(zip(children or [], owners or [], strict=True))
        out.append((d, parents if values and len(parents) == values else None, int(values)))
    return out


def _dimension_alerts(project: Project, dim: str, parents: dict[str, str] | None, values: int, primary: str,
                      found: list[dict],
                      reference: tuple[datetime, datetime], current: tuple[datetime, datetime], rules: AlertRules,
                      impact: ImpactProbe | None, progress: Progress) -> list[dict]:
    """Low recall and local drift per value of another dimension; a value nested in a primary slice that already
    has the same alert adds nothing."""
    raised = {(a["rule"], a["scope"], a["subject"]) for a in found}

    def known(rule: str, value: str, subject: str) -> bool:
        return parents is not None and (rule, f"{primary}={parents.get(value)}", subject) in raised

    out = []
    # One test per value (200 robots are 200 tests): the intervals are Bonferroni-corrected over the values, so
    # that a dimension with many values raises no more chance alerts than the primary one.
    confidence = 1 - 0.05 / max(values, 1)
    for version, _ in logged_versions(project):
        check_cancelled(progress)
        try:
            table = compute_slices(project, SliceQuery(version, by=(dim,), start=current[0], end=current[1],
                                                       min_support=rules.min_support, latency=False,
                                                       confidence=confidence), progress)
        except ThresholdUnknown:
            continue
        if "recall" not in table.metrics:
            continue
        for r in table.slices.filter(pl.col("recall_high") < rules.recall_min).iter_rows(named=True):
            value = str(r[dim])
            if known("metric_low", value, f"{version} recall"):
                continue
            out.append({"rule": "metric_low", "scope": f"{dim}={value}", "line": (parents or {}).get(value),
                        "subject": f"{version} recall", "severity": "high",
                        "message": f"{version} recall {r['recall']:.3f} on {dim} {value} ({confidence:.2%} interval, "
                                   f"Bonferroni over {values} values: {r['recall_low']:.3f}-{r['recall_high']:.3f}) "
                                   f"is below {rules.recall_min}",
                        "evidence": {k: r[k] for k in ("n", "labelled", "tp", "fn", "recall", "recall_low",
                                                       "recall_high")}})
    drift = compute_drift(project, DriftQuery(reference, current, by=(dim,)), progress)
    if drift.rows.height:
        for a in _drift_alerts(project, drift, dim, reference, current, impact, progress):
            value = a["scope"].partition("=")[2]
            if a["scope"] == "plant-wide" or known("drift", value, a["subject"]):
                continue  # the primary dimension's notices already speak for the plant
            out.append({**a, "line": (parents or {}).get(value)})
    return out


def _drift_alerts(project: Project, drift_table, dim: str | None, reference: tuple[datetime, datetime],
                  current: tuple[datetime, datetime], impact: ImpactProbe | None, progress: Progress) -> list[dict]:
    """Plant-wide drift as one notice per feature; each local drift an alert with its cause and impact."""
    found: list[dict] = []
    triage = triage_drift(project, drift_table)
    for r in triage.notices.iter_rows(named=True):
        found.append({"rule": "drift", "scope": "plant-wide", "line": None, "subject": r["feature"],
                      "severity": "notice", "message": r["message"],
                      "evidence": {"triage": "plant-wide", "slices": r["slices"], "of_slices": r["of_slices"]}})
    stats = drift_table.rows.select(*drift_table.query.by, "feature", "n_ref", "n_cur", "psi", "ks_d", "ks_p", "js",
                                    "wasserstein_norm", "chi2_p", "method")
    local = triage.local().join(stats, on=[*drift_table.query.by, "feature"], how="left")
    for i, r in enumerate(local.iter_rows(named=True)):
        check_cancelled(progress)
        progress.report(0.4 + 0.35 * i / max(local.height, 1), f"Impact of {r['feature']}")
        where = {dim: r[dim]} if dim else {}
        measured = impact(project, where, r["feature"], reference, current) if impact else None
        flips = measured.flip_share if measured is not None else None
        severity = "medium" if flips is None else ("high" if flips >= HIGH_IMPACT else
                                                   "medium" if flips >= SOME_IMPACT else "notice")
        words = f"on {r[dim]}" if dim else "overall"
        effect = "" if flips is None else f"; {flips:.1%} of decisions flip when restored"
        found.append({"rule": "drift", "scope": f"{dim}={r[dim]}" if dim else "all", "line": r[dim] if dim else None,
                      "subject": r["feature"], "severity": severity,
                      "message": f"{r['feature']} drifted {words}, local: {r['cause'] or r['method']}{effect}",
                      "evidence": {"triage": "local", "cause": r["cause"], "event": r["event"],
                                   "offset": r["offset"], "impact": measured.as_dict() if measured else None,
                                   **{k: r.get(k) for k in ("n_ref", "n_cur", "psi", "ks_d", "ks_p", "js",
                                                            "wasserstein_norm", "chi2_p", "method")}}})
    return found


def evaluate_alerts(project: Project, reference: tuple[datetime, datetime], current: tuple[datetime, datetime],
                    rules: AlertRules | None = None, progress: Progress | None = None,
                    impact: ImpactProbe | None = None, log: str | None = None, engine: str | None = None) -> int:
    """Evaluate every rule over the current window and store new alerts; returns how many were new.

    `impact(project, where, feature, reference, current)` (app.core.models.impact.measure_impact, passed by the
    caller: analysis does not run models) measures how much a local drift moves the model's decisions. Over an
    attached log `log` (summaries built on `engine`), the metric, drift, missingness and silence rules run per
    its alert dimension, and each alert names the log in its scope and message.
    """
    progress = progress or NullProgress()
    project.require_writable()
    rules = rules or AlertRules.from_manifest(project.manifest.extra)
    found = _candidates(project, reference, current, rules, progress, impact if not log else None, log, engine)
    if log:
        found = [{**a, "scope": f"log {log}: {a['scope']}", "message": f"[{log}] {a['message']}"} for a in found]
    with project.reading() as con:
        known = {(r[0], r[1], r[2]) for r in con.execute(
            "SELECT rule, scope, subject FROM alerts WHERE window_start = ? AND window_end = ?",
            list(current)).fetchall()}
    new = []
    for a in found:  # one alert per rule, scope and subject in a window, however often a rule fires
        key = (a["rule"], a["scope"], a["subject"])
        if key not in known:
            known.add(key)
            new.append(a)
    details = {"reference": reference, "current": current, "new": len(new), "rules": rules.__dict__}
    check_cancelled(progress)  # the last moment Cancel keeps everything as it was
    with project.change("alerts.evaluate", f"{current[0]:%Y-%m-%d}..{current[1]:%Y-%m-%d}", details) as con:
        next_id = one(con, "SELECT coalesce(max(alert_id), 0) + 1 FROM alerts")[0]
        rows = [(next_id + i, a["rule"], a["scope"], a["line"], a["subject"], current[0], current[1], a["severity"],
                 a["message"], json.dumps(a["evidence"], default=str, sort_keys=True), datetime.now())
                for i, a in enumerate(new)]
        if rows:
            con.executemany("INSERT INTO alerts (alert_id, rule, scope, line, subject, window_start, window_end, "
                            "severity, message, evidence_json, raised_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            rows)
    progress.report(1.0, f"{len(new)} new alert(s)")
    return len(new)


def alerts_due(project: Project) -> tuple[tuple[datetime, datetime], tuple[datetime, datetime]] | None:
    """The default (reference, current) windows when data arrived since the rules last ran, else None (up to
    date, read-only, or no log): the window evaluates them in the background when a project opens or an import
    lands, so the Overview's open alerts are never "0" only because nobody pressed Evaluate."""
    from app.core.analysis.drift import default_windows
    from app.core.analysis.slices import logged_span

    if project.read_only:
        return None
    with project.reading() as con:
        arrived, evaluated = one(con, "SELECT (SELECT max(imported_at) FROM imports), (SELECT max(ts) FROM audit_log "
                                      "WHERE action = 'alerts.evaluate')")
    if arrived is None or (evaluated is not None and evaluated >= arrived):
        return None
    first, last = logged_span(project)
    if first is None:
        return None
    reference, current = default_windows(first.date(), last.date())
    return ((datetime.combine(reference[0], datetime.min.time()), datetime.combine(reference[1], datetime.min.time())),
            (datetime.combine(current[0], datetime.min.time()), datetime.combine(current[1], datetime.min.time())))


def acknowledge(project: Project, alert_id: int, verdict: str, comment: str = "") -> None:
    """Mark an alert as a real problem or a false alarm (audited)."""
    if verdict not in VERDICTS:
        raise AlertError(f"Unknown verdict {verdict!r}.", "Acknowledge as 'real' or 'false'.")
    with project.reading() as con:
        row = one(con, "SELECT state FROM alerts WHERE alert_id = ?", [alert_id])
    if row is None:
        raise AlertError(f"No alert #{alert_id}.", "List the alerts with `lineproof alerts PROJECT`.")
    with project.change("alert.ack", f"alert {alert_id}", {"verdict": verdict, "comment": comment,
                                                           "was": row[0]}) as con:
        con.execute("UPDATE alerts SET state = ?, acked_by = ?, acked_at = now()::TIMESTAMP, ack_comment = ? "
                    "WHERE alert_id = ?", [verdict, current_actor(), comment, alert_id])


def list_alerts(project: Project, state: str | None = None) -> pl.DataFrame:
    """Alerts: open first, then by severity, then by impact (share of decisions a drift flips), newest first."""
    with project.reading() as con:
        where = "WHERE state = $s" if state else ""
        return con.sql(f"""SELECT *, TRY_CAST(json_extract(evidence_json, '$.impact.flip_share') AS DOUBLE) AS impact
                           FROM alerts {where} ORDER BY state = 'open' DESC,
                           CASE severity WHEN 'high' THEN 0 WHEN 'medium' THEN 1 ELSE 2 END,
                           impact DESC NULLS LAST, window_end DESC, alert_id""",
                       params={"s": state} if state else None).pl()


def alerts_json(alerts: pl.DataFrame) -> list[dict]:
    """Alerts for machines: each with its triage class, likely cause and impact lifted out of its evidence."""
    out = []
    for r in alerts.iter_rows(named=True):
        evidence = json.loads(r["evidence_json"] or "{}")
        out.append({**{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in r.items()
                       if k not in ("evidence_json", "impact")},
                    "triage": evidence.get("triage"), "cause": evidence.get("cause") or evidence.get("event"),
                    "impact": evidence.get("impact"),
                    "evidence": {k: v for k, v in evidence.items() if k not in ("triage", "cause", "impact")}})
    return out


def alert_precision(project: Project) -> pl.DataFrame:
    """Per line: alerts raised, open, acknowledged real / false, and precision (real / acknowledged)."""
    with project.reading() as con:
        return con.sql("""SELECT coalesce(line, '(plant-wide)') AS line, count(*) AS raised,
                                 count(*) FILTER (WHERE state = 'open') AS open,
                                 count(*) FILTER (WHERE state = 'real') AS real,
                                 count(*) FILTER (WHERE state = 'false') AS false_alarms,
                                 count(*) FILTER (WHERE state = 'real')
                                     / nullif(count(*) FILTER (WHERE state <> 'open'), 0) AS precision
                          FROM alerts GROUP BY 1 ORDER BY 1""").pl()
