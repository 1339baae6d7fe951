"""Drift triage (plant-wide or local, likely cause), decision impact, and alerts ranked by impact."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import onnx
import polars as pl
import pytest
from onnx import TensorProto, helper

from app.core.analysis.alerts import AlertRules, alerts_json, evaluate_alerts, list_alerts
from app.core.analysis.drift import DriftQuery, compute_drift
from app.core.analysis.events import add_event
from app.core.analysis.triage import triage_drift, unit_of
from app.core.models.impact import measure_impact
from app.core.models.model_import import import_model
from app.core.store.ingest import PredictionMapping, import_predictions
from app.core.store.project import Project
from app.sample.plant import FIRMWARE_LINE

REFERENCE = (datetime(2026, 3, 2), datetime(2026, 3, 16))
CURRENT = (datetime(2026, 3, 16), datetime(2026, 3, 30))
CELLS = [f"C{i}" for i in range(1, 7)]


def _cells_log(path: Path, rng: np.random.Generator, n_per: int = 1500) -> None:
    """Six cells, two fortnights. Every cell warms by 5 K (season); C3's pressure is read x1.8 (a new
    transmitter's gain), C4's vibration sensor freezes at 0.5, C5's flow meter reads 3 l/min low and misses 30% of readings, C6 gets parts
    from a new supplier; a is what the model decides on, b it ignores."""
    frames = []
    for cell in CELLS:
        for current in (False, True):
            ts = (CURRENT if current else REFERENCE)[0] + pd_seconds(rng, n_per)
            temp = rng.normal(40 + (5 if current else 0), 2.0, n_per)
            pressure = rng.gamma(20, 0.5, n_per) * (1.8 if current and cell == "C3" else 1.0)
            vibration = np.full(n_per, 0.5) if current and cell == "C4" else rng.normal(0.5, 0.1, n_per)
            flow = rng.normal(12, 1, n_per)
            if current and cell == "C5":  # a failing flow meter: reads low, and 30% of the time nothing
                flow = flow - 3.0
                flow[rng.random(n_per) < 0.3] = np.nan
            supplier = rng.choice(["S1", "S2"], n_per) if not (current and cell == "C6") else \
                rng.choice(["S1", "S2", "S9"], n_per, p=[0.3, 0.3, 0.4])
            a = rng.normal(0.0 if not (current and cell == "C2") else 1.5, 1.0, n_per)
            b = rng.normal(0.0 if not (current and cell == "C1") else 2.0, 1.0, n_per)
            frames.append(pl.DataFrame({"ts": ts, "cell": cell, "temp_c": temp, "pressure_bar": pressure,
                                        "vibration_mm_s": vibration, "flow_l_min": flow, "supplier": supplier,
                                        "a": a, "b": b}))
    log = pl.concat(frames).with_columns(pl.col("flow_l_min").fill_nan(None))
    score = 1 / (1 + np.exp(-(2.0 * log["a"].to_numpy() - 1.0)))
    log = log.with_columns(pl.Series("score", score), model_version=pl.lit("m:v1"),
                           record_id=pl.format("r{}", pl.int_range(0, log.height)))
    log.write_parquet(path)


def pd_seconds(rng: np.random.Generator, n: int) -> pl.Series:
    return pl.Series((rng.integers(0, 14 * 86400, n) * 1_000_000).astype("timedelta64[us]"))


def _logistic_onnx(path: Path) -> Path:
    """P(defect) = sigmoid(2 a - 1) over inputs [a, b]: b has no weight."""
    w = helper.make_tensor("w", TensorProto.FLOAT, [2, 1], [2.0, 0.0])
    bias = helper.make_tensor("c", TensorProto.FLOAT, [1], [-1.0])
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["z0"]), helper.make_node("Add", ["z0", "c"], ["z"]),
                               helper.make_node("Sigmoid", ["z"], ["probability"])], "logit",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])],
                              [helper.make_tensor_value_info("probability", TensorProto.FLOAT, [None, 1])],
                              [w, bias])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


@pytest.fixture(scope="module")
def cells(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cells")
    _cells_log(folder / "log.parquet", np.random.default_rng(20261207))
    project = Project.create(folder / "p", "cells", slice_dimensions=("cell",))
    import_model(project, _logistic_onnx(folder / "m.onnx"), "m", "v1", 0.5, card={"features": ["a", "b"]},
                 new_model={"name": "m", "task": "binary"})
    import_predictions(project, folder / "log.parquet", PredictionMapping(slices={"cell": "cell"}))
    add_event(project, datetime(2026, 3, 15, 8), "new pressure transmitter", dimension="cell", scope="C3")
    yield project
    project.close()


def test_triage_on_a_dimension_other_than_line_names_each_cause(cells):
    drift = compute_drift(cells, DriftQuery(REFERENCE, CURRENT, by=("cell",)))
    triage = triage_drift(cells, drift)
    local = {(r["cell"], r["feature"]): r for r in triage.local().iter_rows(named=True)}
    assert set(local) == {("C1", "b"), ("C2", "a"), ("C3", "pressure_bar"), ("C4", "vibration_mm_s"),
                          ("C5", "flow_l_min"), ("C6", "supplier")}
    assert local[("C3", "pressure_bar")]["cause"].startswith("event new pressure transmitter (2026-03-15); "
                                                             "scale factor x1.8")
    assert local[("C4", "vibration_mm_s")]["cause"] == "frozen at 0.5 mm/s"
    assert re.fullmatch(r"offset -3\.\d l/min, same shape; missing values (29|30|31)% \(was 0%\)",
                        local[("C5", "flow_l_min")]["cause"])
    assert local[("C6", "supplier")]["cause"] == "new categories: S9"
    assert local[("C2", "a")]["cause"].startswith("offset +1.5, same shape")
    assert local[("C2", "a")]["offset"] == pytest.approx(1.5, abs=0.1)
    # the season: every cell warmed alike, one notice for all six, no local cell
    assert triage.notices.select("feature", "slices", "of_slices").rows() == [("temp_c", 6, 6)]
    assert triage.cells.filter(pl.col("feature") == "temp_c")["triage"].unique().to_list() == ["plant-wide"]


def test_impact_counts_flipped_decisions_and_ignores_an_input_the_model_does_not_use(cells):
    used = measure_impact(cells, {"cell": "C2"}, "a", REFERENCE, CURRENT)
    unused = measure_impact(cells, {"cell": "C1"}, "b", REFERENCE, CURRENT)
    assert unused.flip_share == 0.0 and unused.rows == 1500
    # independent check: C2's a moved by +1.5 with the same shape, so restoring it is a = a - 1.5 up to sampling
    with cells.reading() as con:
        a = con.execute("SELECT a FROM predictions WHERE cell = 'C2' AND ts >= ? AND ts < ?", list(CURRENT)).fetchnumpy()["a"]
    expected = np.mean((2 * a - 1 >= 0) != (2 * (a - 1.5) - 1 >= 0))
    assert used.flip_share == pytest.approx(expected, abs=0.02)
    assert used.to_good > 0 and used.to_defect == 0
    assert used.recall_change is not None
    missing = measure_impact(cells, {"cell": "C3"}, "pressure_bar", REFERENCE, CURRENT)
    assert missing.flip_share is None and "no registered binary ONNX model with input pressure_bar" in missing.note


def test_alerts_rank_local_drift_by_impact_and_group_the_season(cells, tmp_path: Path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(cells.folder, copy, ignore=shutil.ignore_patterns("*.wal"))
    with Project.open(copy) as project:
        evaluate_alerts(project, REFERENCE, CURRENT, AlertRules(stale_hours=24 * 30), impact=measure_impact)
        alerts = alerts_json(list_alerts(project))
    drift = [a for a in alerts if a["rule"] == "drift"]
    assert drift[0]["scope"] == "cell=C2" and drift[0]["severity"] == "high"
    assert drift[0]["impact"]["flip_share"] > 0.2 and drift[0]["triage"] == "local"
    notices = [a for a in drift if a["severity"] == "notice"]
    assert [a["subject"] for a in notices if a["scope"] == "plant-wide"] == ["temp_c"]
    # b moved on C1 but the model ignores it: a notice, not an alert
    assert next(a for a in drift if a["scope"] == "cell=C1")["severity"] == "notice"
    ranks = [a["impact"]["flip_share"] for a in drift if a["impact"] and a["impact"]["flip_share"] is not None]
    assert ranks == sorted(ranks, reverse=True)


def test_units_from_feature_names():
    assert unit_of("contact_tip_temp_c") == "K"
    assert unit_of("travel_speed_mm_s") == "mm/s"
    assert unit_of("seam_length_mm") == "mm"
    assert unit_of("arc_stability") == ""


def test_the_sample_story(sample_copy: Path):
    """After P2-L02's firmware update: one local alert with the event and the -25 K offset, ranked first with
    the largest decision-flip share; the season as plant-wide notices; the silent robot still an alert."""
    reference, current = (datetime(2026, 5, 4), datetime(2026, 7, 27)), (datetime(2026, 9, 7), datetime(2026, 10, 5))
    with Project.open(sample_copy) as project:
        evaluate_alerts(project, reference, current, AlertRules(stale_hours=150), impact=measure_impact)
        alerts = alerts_json(list_alerts(project))
    top = alerts[0]
    assert (top["rule"], top["scope"], top["subject"]) == ("drift", f"line={FIRMWARE_LINE}", "contact_tip_temp_c")
    assert top["triage"] == "local" and "event firmware 4.2.1 -> 5.0.0" in top["cause"]
    assert -28 < top["evidence"]["offset"] < -22 and "same shape" in top["cause"]
    flips = [a["impact"]["flip_share"] for a in alerts if a["rule"] == "drift" and a["impact"]]
    assert top["impact"]["flip_share"] == max(flips) > 0.05
    notices = [a for a in alerts if a["rule"] == "drift" and a["scope"] == "plant-wide"]
    assert len(notices) == 2 and {a["severity"] for a in notices} == {"notice"}
    assert "ambient_temp_c" in {a["subject"] for a in notices}
    assert not [a for a in alerts if a["rule"] == "drift" and a["subject"] == "ambient_temp_c" and a["line"]]
    stale = [a for a in alerts if a["rule"] == "stale"]
    assert [a["scope"] for a in stale] == ["asset=P3-L02-R05"] and stale[0]["severity"] != "notice"
    assert json.dumps(alerts, default=str)  # the CLI's --format json prints exactly this
    assert timedelta(0) < current[1] - current[0]


def test_alerts_follow_every_slice_dimension_not_only_line(tmp_path: Path):
    """The night shift's sensor reads 8 K high on every line: per line every slice moved alike (a notice), per
    shift the night is local (an alert on shift=night); assets nested in lines add no duplicate."""
    rng = np.random.default_rng(11)
    frames = []
    for current in (False, True):
        n = 6000
        line = rng.choice(["L1", "L2", "L3"], n)
        shift = rng.choice(["early", "late", "night"], n)
        asset = np.char.add(line, np.char.add("-R", rng.choice(["1", "2"], n)))
        temp = rng.normal(60, 3, n) + np.where(current & (shift == "night"), 8.0, 0.0)
        ts = (CURRENT if current else REFERENCE)[0] + pd_seconds(rng, n)
        frames.append(pl.DataFrame({"ts": ts, "line": line, "shift": shift, "asset": asset, "tip_temp_c": temp}))
    log = pl.concat(frames)
    log = log.with_columns(pl.lit(0.3).alias("score"), model_version=pl.lit("m:v1"),
                           record_id=pl.format("r{}", pl.int_range(0, log.height)))
    log.write_parquet(tmp_path / "log.parquet")
    with Project.create(tmp_path / "p", "shifts", slice_dimensions=("line", "shift", "asset")) as project:
        import_predictions(project, tmp_path / "log.parquet", PredictionMapping(
            slices={"line": "line", "shift": "shift", "asset": "asset"}))
        evaluate_alerts(project, REFERENCE, CURRENT, AlertRules(stale_hours=24 * 30))
        alerts = alerts_json(list_alerts(project))
    drift = {(a["scope"], a["subject"]): a for a in alerts if a["rule"] == "drift"}
    assert ("shift=night", "tip_temp_c") in drift and drift[("shift=night", "tip_temp_c")]["triage"] == "local"
    assert drift[("shift=night", "tip_temp_c")]["evidence"]["offset"] == pytest.approx(8.0, abs=0.6)
    assert drift[("plant-wide", "tip_temp_c")]["severity"] == "notice"  # per line: all three moved alike
    assert not [k for k in drift if k[0].startswith(("line=", "asset="))]
