"""Drift statistics against scipy and a hand-worked PSI, edge cases, and the sample's firmware sensor."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from app.core.analysis.drift import DriftError, DriftQuery, compute_drift, default_windows
from app.core.store.ingest import PredictionMapping, import_predictions
from app.core.store.project import Project
from app.sample.plant import FIRMWARE_LINE, FIRMWARE_WEEK, START

# The documented floor for an empty bin's share (README, drift): written out here, not imported, so that a
# changed constant in the code is caught rather than followed.
PSI_EPSILON = 1e-4
REF = (datetime(2026, 1, 1), datetime(2026, 2, 1))
CUR = (datetime(2026, 2, 1), datetime(2026, 3, 1))


def _log(tmp_path: Path, ref: dict, cur: dict, lines: tuple[str, str] = ("L1", "L1")) -> Project:
    """A project whose log holds `ref` rows in January and `cur` rows in February (features as columns)."""
    def frame(values: dict, start: datetime, prefix: str, line: str) -> pl.DataFrame:
        n = len(next(iter(values.values())))
        return pl.DataFrame({"record_id": [f"{prefix}{i}" for i in range(n)],
                             "ts": [start + timedelta(minutes=i) for i in range(n)],
                             "model_version": ["m:v1"] * n, "score": [0.5] * n, "line": [line] * n, **values})
    log = pl.concat([frame(ref, REF[0], "r", lines[0]), frame(cur, CUR[0], "c", lines[1])], how="vertical_relaxed")
    log.write_parquet(tmp_path / "log.parquet")
    project = Project.create(tmp_path / "p", "drift", slice_dimensions=("line",))
    import_predictions(project, tmp_path / "log.parquet", PredictionMapping(slices={"line": "line"}))
    return project


def _hand_psi(ref: np.ndarray, cur: np.ndarray, bins: int = 10) -> float:
    edges = np.quantile(ref, np.arange(1, bins) / bins, method="inverted_cdf")
    r = np.bincount(np.searchsorted(edges, ref, side="left"), minlength=bins) / len(ref)
    c = np.bincount(np.searchsorted(edges, cur, side="left"), minlength=bins) / len(cur)
    r, c = np.maximum(r, PSI_EPSILON), np.maximum(c, PSI_EPSILON)
    return float(np.sum((c - r) * np.log(c / r)))


def _hand_bins(ref: np.ndarray, cur: np.ndarray, bins: int = 10) -> tuple[np.ndarray, np.ndarray]:
    edges = np.quantile(ref, np.arange(1, bins) / bins, method="inverted_cdf")
    return (np.bincount(np.searchsorted(edges, ref, side="left"), minlength=bins) / len(ref),
            np.bincount(np.searchsorted(edges, cur, side="left"), minlength=bins) / len(cur))


def test_numeric_statistics_match_scipy_and_a_hand_worked_psi(tmp_path: Path):
    rng = np.random.default_rng(11)
    ref = rng.normal(100, 10, 1500).round(2)
    cur = rng.normal(103, 12, 1200).round(2)
    project = _log(tmp_path, {"temp": ref}, {"temp": cur})
    try:
        row = compute_drift(project, DriftQuery(REF, CUR)).rows.row(0, named=True)
    finally:
        project.close()
    ks = stats.ks_2samp(ref, cur, method="asymp")
    assert row["ks_d"] == pytest.approx(ks.statistic, abs=1e-12)
    assert row["ks_p"] == pytest.approx(ks.pvalue, rel=0.05, abs=1e-12)
    assert row["wasserstein"] == pytest.approx(stats.wasserstein_distance(ref, cur), rel=1e-9)
    assert row["wasserstein_norm"] == pytest.approx(stats.wasserstein_distance(ref, cur) / np.std(ref), rel=1e-9)
    assert row["psi"] == pytest.approx(_hand_psi(ref, cur), rel=1e-9)
    r, c = _hand_bins(ref, cur)
    assert row["js"] == pytest.approx(jensenshannon(r, c), rel=1e-9)
    assert (row["n_ref"], row["n_cur"], row["method"], row["drifted"]) == (1500, 1200, "wasserstein", True)


@pytest.mark.parametrize("shift", [-4.0, 4.0])
def test_ks_is_two_sided_in_both_directions(tmp_path: Path, shift: float):
    """The current window shifted down and up: D is the largest gap whichever CDF lies above."""
    rng = np.random.default_rng(5)
    ref = rng.normal(50, 5, 800).round(3)
    cur = (rng.normal(50, 5, 600) + shift).round(3)
    project = _log(tmp_path, {"x": ref}, {"x": cur})
    try:
        row = compute_drift(project, DriftQuery(REF, CUR)).rows.row(0, named=True)
    finally:
        project.close()
    expected = stats.ks_2samp(ref, cur).statistic
    assert expected > 0.2
    assert row["ks_d"] == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(("d", "n_ref", "n_cur"), [(0.05, 1500, 1200), (0.2, 40, 35), (0.31, 12, 9),
                                                    (0.01, 20000, 30000), (0.5, 30, 300)])
def test_ks_pvalue_is_the_kolmogorov_tail_with_stephens_correction(d: float, n_ref: int, n_cur: int):
    """Oracle: scipy.special.kolmogorov (the complementary Kolmogorov CDF) at Stephens' lambda."""
    from scipy.special import kolmogorov

    from app.core.stats.tails import ks_pvalue

    ne = n_ref * n_cur / (n_ref + n_cur)
    expected = kolmogorov((np.sqrt(ne) + 0.12 + 0.11 / np.sqrt(ne)) * d)
    got = ks_pvalue(np.array([d]), np.array([n_ref]), np.array([n_cur]))[0]
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-15)


def test_psi_by_hand_on_a_tiny_example(tmp_path: Path):
    # Reference 1..40 -> decile edges 4, 8, ..., 36; current 21..60 puts 1/8 of its rows in each of the
    # five upper bins... worked out below with the 1e-4 floor for the empty lower bins.
    ref = np.arange(1, 41, dtype=float)
    cur = np.arange(21, 61, dtype=float)
    project = _log(tmp_path, {"x": ref}, {"x": cur})
    try:
        row = compute_drift(project, DriftQuery(REF, CUR)).rows.row(0, named=True)
    finally:
        project.close()
    r = np.full(10, 0.1)
    c = np.array([PSI_EPSILON] * 5 + [0.1, 0.1, 0.1, 0.1, 0.6])
    assert row["psi"] == pytest.approx(float(np.sum((c - r) * np.log(c / r))), rel=1e-9)
    assert row["out_of_range"] == pytest.approx(20 / 40)


def test_categorical_statistics_match_scipy(tmp_path: Path):
    rng = np.random.default_rng(3)
    ref = rng.choice(["steel", "alu", "zinc"], 900, p=[0.6, 0.3, 0.1])
    cur = np.concatenate([rng.choice(["steel", "alu", "zinc"], 700, p=[0.4, 0.4, 0.2]), ["copper"] * 30])
    project = _log(tmp_path, {"wire": ref}, {"wire": cur})
    try:
        row = compute_drift(project, DriftQuery(REF, CUR)).rows.row(0, named=True)
    finally:
        project.close()
    cats = ["alu", "copper", "steel", "zinc"]
    table = np.array([[np.sum(ref == k) for k in cats], [np.sum(cur == k) for k in cats]])
    chi2, p, dof, _ = stats.chi2_contingency(table, correction=False)
    assert row["chi2"] == pytest.approx(chi2, rel=1e-9) and row["chi2_p"] == pytest.approx(p, rel=1e-6, abs=1e-300)
    r, c = table[0] / table[0].sum(), table[1] / table[1].sum()
    assert row["js"] == pytest.approx(jensenshannon(r, c), rel=1e-9)
    rs, cs = np.maximum(r, PSI_EPSILON), np.maximum(c, PSI_EPSILON)
    assert row["psi"] == pytest.approx(float(np.sum((cs - rs) * np.log(cs / rs))), rel=1e-9)
    assert row["new_categories"] == "copper" and row["kind"] == "categorical" and row["method"] == "chi_square"


def test_edge_cases_give_defined_results(tmp_path: Path):
    n = 50
    ref = {"const": np.full(n, 5.0), "empty": [None] * n, "one": np.arange(n, dtype=float)}
    cur = {"const": np.full(n, 5.0), "empty": [None] * n, "one": np.arange(n, dtype=float) + 0.5}
    project = _log(tmp_path, ref, cur)
    try:
        rows = compute_drift(project, DriftQuery(REF, CUR)).rows
        small = compute_drift(project, DriftQuery(REF, (CUR[0], CUR[0] + timedelta(minutes=1)))).rows
        with pytest.raises(DriftError, match="Unknown feature"):
            compute_drift(project, DriftQuery(REF, CUR, features=("nope",)))
    finally:
        project.close()
    const = rows.filter(pl.col("feature") == "const").row(0, named=True)
    assert (const["psi"], const["ks_d"], const["wasserstein_norm"], const["drifted"]) == (0.0, 0.0, 0.0, False)
    empty = rows.filter(pl.col("feature") == "empty").row(0, named=True)
    assert empty["missing_cur"] == 1.0 and empty["drifted"] is None and empty["status"].startswith("insufficient")
    one_row = small.filter(pl.col("feature") == "one").row(0, named=True)
    assert one_row["n_cur"] == 1 and one_row["psi"] is None and one_row["status"].startswith("insufficient data")
    for frame in (rows, small):  # null ("no value") is fine, NaN never reaches the UI
        assert not frame.select(pl.col(pl.Float64).is_nan().any()).row(0).__contains__(True)


def test_firmware_sensor_drifts_on_its_line_only(sample_folder: Path):
    rollout = START + timedelta(weeks=FIRMWARE_WEEK - 1)
    query = DriftQuery(reference=(START, rollout - timedelta(weeks=1)),
                       current=(rollout + timedelta(weeks=1), rollout + timedelta(weeks=7)),
                       features=("contact_tip_temp_c", "current_a"))
    with Project.open(sample_folder, read_only=True) as project:
        rows = compute_drift(project, query).rows
    sensor = rows.filter(pl.col("feature") == "contact_tip_temp_c")
    assert sensor.filter(pl.col("drifted"))["line"].to_list() == [FIRMWARE_LINE]
    assert sensor.sort("psi", descending=True)["line"][0] == FIRMWARE_LINE
    assert not rows.filter(pl.col("feature") == "current_a")["drifted"].any()


def test_firmware_change_is_an_event_and_the_silent_asset_a_gap(sample_copy: Path):
    from app.core.analysis.events import add_event, list_events, record_detected_events
    from app.core.analysis.freshness import silent_gaps
    from app.sample.plant import SILENT_ASSET, SILENT_WEEK

    with Project.open(sample_copy) as project:
        added = record_detected_events(project)
        assert added > 0 and record_detected_events(project) == 0  # detected once, stored once
        add_event(project, START + timedelta(weeks=10), "New wire supplier", dimension="line", scope="P1-L04")
        events = list_events(project)
        gaps = silent_gaps(project, per="asset", expected_hours=120)  # test scale: ~2.6 seams per robot and day
        audit = project.con.execute("SELECT action FROM audit_log WHERE action LIKE 'event%'").fetchall()
    detected = events.filter(pl.col("source") == "detected")
    assert detected["line"].unique().to_list() == [FIRMWARE_LINE]
    assert detected["new_value"].unique().to_list() == ["5.0.0"]
    assert ((detected["ts"].min() - START).days // 7 + 1) == FIRMWARE_WEEK
    # the sample's own tooling change (week 22) is stored when it is built; this one was added here
    assert events.filter(pl.col("source") == "manual")["description"].to_list() == [
        "New wire supplier", "new torch tooling on P1-L03"]
    assert [a[0] for a in audit] == ["event.add", "events.detect", "event.add"]
    assert gaps["asset"].to_list() == [SILENT_ASSET]
    gap = gaps.row(0, named=True)
    silent_from = START + timedelta(weeks=SILENT_WEEK - 1)
    assert gap["gap_start"] <= silent_from and gap["gap_end"] >= silent_from + timedelta(weeks=1)
    assert gap["gap_hours"] >= 7 * 24 and not gap["open"]


@pytest.mark.slow  # ~10 s on the sample; the Alerts screen's test evaluates the sample by default (make test-slow, CI)
def test_alerts_on_the_sample_and_the_false_alert_burden(sample_copy: Path):
    from app.core.analysis.alerts import (
        AlertError,
        AlertRules,
        acknowledge,
        alert_precision,
        evaluate_alerts,
        list_alerts,
    )
    from app.sample.plant import SILENT_ASSET

    rollout = START + timedelta(weeks=FIRMWARE_WEEK - 1)
    reference = (START, rollout - timedelta(weeks=1))
    current = (rollout + timedelta(weeks=1), rollout + timedelta(weeks=7))
    rules = AlertRules(stale_hours=120)  # test scale: ~2.6 seams per robot and day
    with Project.open(sample_copy) as project:
        assert evaluate_alerts(project, reference, current, rules) > 0
        assert evaluate_alerts(project, reference, current, rules) == 0  # same window: nothing new
        alerts = list_alerts(project)
        stale = alerts.filter(pl.col("rule") == "stale")
        assert stale["scope"].to_list() == [f"asset={SILENT_ASSET}"]
        sensor = alerts.filter((pl.col("rule") == "drift") & (pl.col("subject") == "contact_tip_temp_c"))
        assert sensor["line"].to_list() == [FIRMWARE_LINE]
        low = alerts.filter(pl.col("rule") == "metric_low")
        assert low["line"].to_list() in ([], [FIRMWARE_LINE])  # only ever the firmware line
        acknowledge(project, int(sensor["alert_id"][0]), "real", "firmware 5.0 reports tip temperature low")
        seasonal = alerts.filter((pl.col("subject") == "ambient_temp_c") & (pl.col("line") == FIRMWARE_LINE))
        if seasonal.height:
            acknowledge(project, int(seasonal["alert_id"][0]), "false", "summer to autumn")
        with pytest.raises(AlertError, match="real' or 'false"):
            acknowledge(project, 1, "maybe")
        precision = alert_precision(project).filter(pl.col("line") == FIRMWARE_LINE).row(0, named=True)
        audit = [r[0] for r in project.con.execute("SELECT action FROM audit_log ORDER BY seq").fetchall()]
    acked = 1 + seasonal.height
    assert precision["real"] == 1 and precision["precision"] == pytest.approx(1 / acked)
    assert audit.count("alerts.evaluate") == 2 and audit.count("alert.ack") == acked
    evidence = sensor["evidence_json"][0]
    assert '"psi"' in evidence and '"n_ref"' in evidence


def test_reference_can_be_a_registered_dataset(sample_folder: Path):
    import duckdb

    current = (START + timedelta(weeks=20), START + timedelta(weeks=26))
    query = DriftQuery(reference=(START, START), current=current, by=(), features=("current_a",),
                       reference_dataset="train-v1")
    with Project.open(sample_folder, read_only=True) as project:
        row = compute_drift(project, query).rows.row(0, named=True)
        with pytest.raises(DriftError, match="No dataset 'nope'"):
            compute_drift(project, DriftQuery((START, START), current, reference_dataset="nope"))
    con = duckdb.connect(str(sample_folder / "project.duckdb"), read_only=True)
    path = con.execute("SELECT artifact_path FROM datasets WHERE dataset_id = 'train-v1'").fetchall()[0][0]
    cur = con.execute("SELECT current_a FROM predictions WHERE ts >= ? AND ts < ?", list(current)).fetchnumpy()
    con.close()
    ref = pl.read_parquet(sample_folder / path)["current_a"].to_numpy()
    assert row["n_ref"] == len(ref) and row["n_cur"] == len(cur["current_a"])
    assert row["ks_d"] == pytest.approx(stats.ks_2samp(ref, cur["current_a"]).statistic, abs=1e-12)
    assert row["wasserstein"] == pytest.approx(stats.wasserstein_distance(ref, cur["current_a"]), rel=1e-9)


def test_manual_events_appear_on_the_slice_timeline(sample_copy: Path):
    from app.core.analysis.events import add_event
    from app.core.analysis.slices import SliceQuery, slice_trend

    with Project.open(sample_copy) as project:
        add_event(project, START + timedelta(weeks=12), "Tooling change", dimension="line", scope=FIRMWARE_LINE)
        add_event(project, START + timedelta(weeks=13), "Other line's change", dimension="line", scope="P1-L01")
        trend = slice_trend(project, SliceQuery("weld-defect:v1", by=("line",)), (("line", FIRMWARE_LINE),))
    assert trend.events["label"].to_list() == ["Tooling change", "firmware 5.0.0"]


def test_overlapping_windows_are_refused_not_counted_as_reference(tmp_path: Path):
    """Rows in both windows used to count as reference, leaving the current window nearly empty."""
    rng = np.random.default_rng(2)
    project = _log(tmp_path, {"x": rng.normal(0, 1, 200)}, {"x": rng.normal(1, 1, 200)})
    try:
        with pytest.raises(DriftError, match=r"\(2026-01-01..2026-02-15\) and the current window "
                                             r"\(2026-02-01..2026-03-01\) overlap"):
            compute_drift(project, DriftQuery((datetime(2026, 1, 1), datetime(2026, 2, 15)), CUR, by=("line",)))
        with pytest.raises(DriftError, match="ends before it starts"):
            compute_drift(project, DriftQuery((datetime(2026, 2, 1), datetime(2026, 1, 1)), CUR, by=("line",)))
    finally:
        project.close()


@pytest.mark.parametrize("first, last, reference, current", [
    # 26 weeks: the first 12 against the last 6
    (date(2026, 5, 4), date(2026, 11, 1), (date(2026, 5, 4), date(2026, 7, 27)),
     (date(2026, 9, 20), date(2026, 11, 2))),
    # 8 weeks is too short for 12 + 6: two halves of 28 days, end exclusive
    (date(2026, 9, 1), date(2026, 10, 26), (date(2026, 9, 1), date(2026, 9, 29)),
     (date(2026, 9, 29), date(2026, 10, 27))),
    # a single day still gives two windows (the current one empty until tomorrow's data)
    (date(2026, 9, 1), date(2026, 9, 1), (date(2026, 9, 1), date(2026, 9, 2)), (date(2026, 9, 2), date(2026, 9, 3))),
])
def test_default_windows_never_overlap(first, last, reference, current):
    assert default_windows(first, last) == (reference, current)


ALERT_STEPS = ("Checking metrics per", "Checking drift", "Drift of", "Impact of", "Checking operator overrides",
               "Checking metrics and drift per", "Checking for silent assets")


@pytest.mark.parametrize("step", ["Checking metrics per", "Drift of", "Impact of", "Checking metrics and drift per"])
def test_cancel_stops_the_alert_rules_within_the_step_it_arrives_in(sample_copy: Path, step: str):
    """Closing a project cancels its alert run and waits for it on the GUI thread: each step (metrics per version,
    drift, the impact of each drifted feature, the other dimensions) must stop on Cancel, not run to the end."""
    from app.core.analysis.alerts import AlertRules, evaluate_alerts
    from app.core.errors import Cancelled
    from app.core.models.impact import measure_impact
    from app.core.progress import TaskProgress

    rollout = START + timedelta(weeks=FIRMWARE_WEEK - 1)
    reference, current = (START, rollout - timedelta(weeks=1)), (rollout + timedelta(weeks=1), rollout + timedelta(weeks=7))
    seen: list[str] = []

    def report(_fraction: float, message: str) -> None:
        seen.append(message)
        if message.startswith(step):
            progress.cancel()

    progress = TaskProgress(report)
    with Project.open(sample_copy) as project:
        with pytest.raises(Cancelled):
            evaluate_alerts(project, reference, current, AlertRules(stale_hours=120), progress=progress,
                            impact=measure_impact)
        stored = project.con.execute("SELECT count(*) FROM alerts").fetchall()[0][0]
    assert any(m.startswith(step) for m in seen)
    after = seen[next(i for i, m in enumerate(seen) if m.startswith(step)) + 1:]
    begun = [m for m in after if m.startswith(ALERT_STEPS) and not m.startswith(step)]
    assert not begun, f"went on after Cancel: {begun}"
    assert stored == 0
