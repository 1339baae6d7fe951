"""The overview's attention line: open alerts, the worst line of the last 28 days, assets silent now."""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path

import duckdb

from app.core.analysis.attention import build_attention
from app.core.store.project import Project


def _wilson_high(k: int, n: int, z: float = 1.959963984540054) -> float:
    p = k / n
    return (p + z * z / (2 * n) + z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))) / (1 + z * z / n)


def test_the_worst_line_and_the_silent_assets_match_an_independent_count(sample_copy: Path):
    with Project.open(sample_copy) as project:
        attention = build_attention(project)
    con = duckdb.connect(str(sample_copy / "project.duckdb"), read_only=True)
    newest = con.execute("SELECT max(ts) FROM predictions").fetchall()[0][0]
    since = newest - timedelta(days=28)
    version = attention.worst["version"]
    # Recall per line from the logged decisions, counted here with plain SQL (not through Lineproof's slices).
    rows = con.execute("""SELECT p.line, count(*) FILTER (WHERE l.label = 1 AND p.predicted_label = 1),
                                 count(*) FILTER (WHERE l.label = 1), count(l.label)
                          FROM predictions p JOIN labels l USING (record_id)
                          WHERE p.version_id = ? AND p.ts >= ? GROUP BY 1""", [version, since]).fetchall()
    eligible = [(line, tp, pos) for line, tp, pos, labelled in rows if labelled >= 30 and pos]
    worst_line, tp, pos = min(eligible, key=lambda r: _wilson_high(r[1], r[2]))
    assert attention.worst["line"] == worst_line
    assert attention.worst["recall"] == tp / pos
    assert abs(attention.worst["high"] - _wilson_high(tp, pos)) < 1e-9
    # Assets silent now: more than 24 whole hours between the end of their last active hour and the newest record
    # (freshness works on hourly counts).
    silent = {r[0] for r in con.execute("""SELECT asset FROM predictions GROUP BY 1
                                           HAVING epoch(? - date_trunc('hour', max(ts))) / 3600 - 1 > 24""",
                                        [newest]).fetchall()}
    con.close()
    assert {s["asset"] for s in attention.silent} == silent
    assert attention.open_alerts == 0


def test_the_newest_estimated_week_and_the_top_alert(sample_copy: Path):
    """The attention line's estimate is for the newest week (labels mostly not in), its labelled share counted
    independently; the top alert is the first open one."""
    from datetime import datetime

    from app.core.analysis.alerts import AlertRules, evaluate_alerts

    with Project.open(sample_copy) as project:
        evaluate_alerts(project, (datetime(2026, 5, 4), datetime(2026, 7, 27)),
                        (datetime(2026, 9, 7), datetime(2026, 10, 5)), AlertRules(stale_hours=150))
        attention = build_attention(project)
    e = attention.estimated
    con = duckdb.connect(str(sample_copy / "project.duckdb"), read_only=True)
    week, rows, labelled = con.execute("""SELECT date_trunc('week', max(ts))::DATE FROM predictions""").fetchall()[0][0], *(
        con.execute("""SELECT count(*), count(l.label) FROM predictions p LEFT JOIN labels l USING (record_id)
                       WHERE p.line = ? AND date_trunc('week', p.ts) = (SELECT date_trunc('week', max(ts))
                       FROM predictions)""", [e["line"]]).fetchall()[0])
    con.close()
    assert e["period"] == week and abs(e["labelled_share"] - labelled / rows) < 1e-12
    assert e["low"] <= e["recall"] <= e["high"]
    assert attention.top_alert and "P2-L02" in attention.top_alert
