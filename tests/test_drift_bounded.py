"""Bounded drift summaries (issue #23): the reported KS and Wasserstein error bounds hold against scipy's exact
statistics on data of every shape hypothesis can draw, quantised data comes out exact, and auto mode switches."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from app.core.analysis import drift, drift_summary
from app.core.analysis.drift import DriftQuery, compute_drift
from app.core.store.ingest import PredictionMapping, import_predictions
from app.core.store.project import Project

REF = (datetime(2026, 1, 1), datetime(2026, 2, 1))
CUR = (datetime(2026, 2, 1), datetime(2026, 3, 1))


def _draw(rng: np.random.Generator, shape: str, n: int, shift: float, scale: float) -> np.ndarray:
    """Sensor-like values: continuous, quantised, skewed, with wild outliers, or nearly constant."""
    if shape == "normal":
        x = rng.normal(300, 5, n)
    elif shape == "quantised":  # whole units, coarser than a fine bin (6 std / 512): one value per bin
        x = rng.integers(0, 40, n).astype(float)
    elif shape == "lognormal":
        x = rng.lognormal(0, 1, n)
    elif shape == "outliers":
        x = rng.normal(20, 2, n)
        x[rng.random(n) < 0.002] = 1e9
    elif shape == "bimodal":
        x = np.where(rng.random(n) < 0.3, rng.normal(-50, 1, n), rng.normal(80, 10, n))
    else:  # "nearly constant": a stuck sensor that sometimes wakes up
        x = np.where(rng.random(n) < 0.95, 3.0, rng.normal(3, 1, n))
    x = x * scale + shift
    return np.round(x) if shape == "quantised" else x  # a quantised sensor stays on its steps


def _project(tmp_path: Path, frame: pl.DataFrame) -> Project:
    frame.write_parquet(tmp_path / "log.parquet")
    project = Project.create(tmp_path / "p", "bounded", slice_dimensions=("cell",))
    import_predictions(project, tmp_path / "log.parquet", PredictionMapping(slices={"cell": "cell"}))
    return project


def _frame(ref: dict[str, np.ndarray], cur: dict[str, np.ndarray], cells: np.ndarray) -> pl.DataFrame:
    n_ref, n_cur = len(next(iter(ref.values()))), len(next(iter(cur.values())))
    ts = [REF[0] + timedelta(seconds=30 * i) for i in range(n_ref)] + \
         [CUR[0] + timedelta(seconds=30 * i) for i in range(n_cur)]
    n = n_ref + n_cur
    return pl.DataFrame({"record_id": [f"r{i}" for i in range(n)], "ts": ts, "model_version": ["m:v1"] * n,
                         "score": [0.5] * n, "cell": cells[:n],
                         **{k: np.r_[ref[k], cur[k]] for k in ref}})


def _exact_shares(r: np.ndarray, c: np.ndarray, bins: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Exact mode's decile bins, by hand: a value's bin is floor(bins x share of reference values below it)."""
    rs = np.sort(r)

    def of(v: np.ndarray) -> np.ndarray:
        return np.minimum(bins - 1, (np.searchsorted(rs, v, side="left") * bins) // len(r))
    return np.bincount(of(r), minlength=bins) / len(r), np.bincount(of(c), minlength=bins) / len(c)


@settings(max_examples=40, deadline=None)
@given(shape=st.sampled_from(["normal", "quantised", "lognormal", "outliers", "bimodal", "nearly constant"]),
       shift=st.floats(-30, 30), scale=st.floats(0.5, 3), seed=st.integers(0, 2**32 - 1),
       n_ref=st.integers(50, 4000), n_cur=st.integers(50, 4000), missing=st.floats(0, 0.2))
def test_reported_bounds_hold_against_exact_scipy(shape, shift, scale, seed, n_ref, n_cur, missing):
    rng = np.random.default_rng(seed)
    ref, cur = _draw(rng, shape, n_ref, 0.0, 1.0), _draw(rng, shape, n_cur, shift, scale)
    cur[rng.random(n_cur) < missing] = np.nan
    cells = rng.choice(["C1", "C2"], n_ref + n_cur)
    con = duckdb.connect()
    con.register("t", pl.DataFrame({"cell": cells, "x": np.r_[ref, cur], "is_ref": np.arange(n_ref + n_cur) < n_ref}))
    grid = drift_summary.grids(con, "SELECT * FROM t WHERE is_ref", ["x"])["x"]
    con.execute("CREATE TEMP TABLE s AS " + drift_summary.summary_sql("SELECT cell, x, is_ref FROM t", ["cell"], grid))
    assert con.execute("SELECT count(*) FROM s").fetchall()[0][0] <= 2 * 2 * (drift_summary.CORE_BINS + 2000)
    rows, shares, lost = drift_summary.statistics(con, "s", ["cell"], 10)
    for row in rows.iter_rows(named=True):
        r = ref[cells[:n_ref] == row["cell"]]
        c_all = cur[cells[n_ref:] == row["cell"]]
        c = c_all[np.isfinite(c_all)]
        if not len(r) or not len(c):
            continue
        ks = stats.ks_2samp(r, c).statistic
        w = stats.wasserstein_distance(r, c)
        assert abs(row["ks_d"] - ks) <= row["ks_d_bound"] + 1e-12, (row, ks)
        assert abs(row["wasserstein"] - w) <= row["wasserstein_bound"] + 1e-9 * max(1.0, w), (row, w)
        assert row["n_ref"] == len(r) and row["n_cur"] == len(c)
        # the reference's std comes from the bins with its own bound, and W/std's bound covers both
        assert abs(row["ref_std"] - r.std()) <= row["ref_std_bound"] + 1e-9 * r.std() + 1e-12, (row, r.std())
        if r.std() > 1e-9 * max(1.0, abs(r.mean())):
            assert abs(row["wasserstein_norm"] - w / r.std()) <= row["wasserstein_norm_bound"] + 1e-9 * (
                1 + w / r.std()), (row, w / r.std())
        gone = lost.filter(pl.col("cell") == row["cell"]).row(0, named=True)
        assert gone["missing_cur"] == pytest.approx(1 - len(c) / len(c_all), abs=1e-15)
        if shape == "quantised":  # every fine bin holds one distinct value: exact, nothing to bound
            assert row["ks_d_bound"] == 0 and row["ks_d"] == pytest.approx(ks, abs=1e-12)
            assert row["ref_std_bound"] == 0 and row["ref_std"] == pytest.approx(r.std(), rel=1e-9, abs=1e-12)
            mine = shares.filter(pl.col("cell") == row["cell"]).sort("bin")
            p_ref, p_cur = _exact_shares(r, c)
            got_ref = np.zeros(10)
            got_cur = np.zeros(10)
            got_ref[mine["bin"].to_numpy()] = mine["p_ref"].to_numpy()
            got_cur[mine["bin"].to_numpy()] = mine["p_cur"].to_numpy()
            assert np.allclose(got_ref, p_ref, atol=1e-12) and np.allclose(got_cur, p_cur, atol=1e-12)
        # Tight on one-mode data; a stuck sensor's wake-ups or a narrow second mode fall in few, wide bins (the grid
        # follows the reference's spread): still bounded, loosely, and the bound says so.
        if shape not in ("nearly constant", "bimodal"):
            assert row["ks_d_bound"] <= max(0.02, 3 / min(len(r), len(c))), row  # a few values' steps at most


def test_continuous_sensor_data_is_bounded_tightly_and_decides_as_exact_mode(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    n = 40_000
    ref = {"temp": rng.normal(300, 5, n), "current": rng.normal(200, 15, n), "gap": rng.lognormal(0, 0.5, n)}
    cur = {"temp": rng.normal(275, 5, n), "current": rng.normal(201, 15, n), "gap": rng.lognormal(0.05, 0.5, n)}
    project = _project(tmp_path, _frame(ref, cur, rng.choice(["C1", "C2", "C3"], 2 * n)))
    try:
        bounded = compute_drift(project, DriftQuery(REF, CUR, by=("cell",), mode="bounded")).rows.sort("cell", "feature")
        exact = compute_drift(project, DriftQuery(REF, CUR, by=("cell",), mode="exact")).rows.sort("cell", "feature")
    finally:
        project.close()
    assert bounded["drifted"].to_list() == exact["drifted"].to_list()
    assert bounded.filter(pl.col("feature") == "temp")["drifted"].all()
    assert bounded["ks_d_bound"].max() < 0.005 and bounded["wasserstein_norm_bound"].max() < 0.005
    assert exact["ks_d_bound"].max() == 0
    diff = (bounded["ks_d"] - exact["ks_d"]).abs()
    assert (diff <= bounded["ks_d_bound"] + 1e-12).all()


def test_auto_mode_is_exact_below_the_threshold_and_bounded_above(tmp_path: Path, monkeypatch) -> None:
    rng = np.random.default_rng(2)
    project = _project(tmp_path, _frame({"x": rng.normal(0, 1, 500)}, {"x": rng.normal(0, 1, 500)},
                                        np.array(["C1"] * 1000)))
    try:
        assert not compute_drift(project, DriftQuery(REF, CUR, by=("cell",))).bounded
        monkeypatch.setattr(drift, "EXACT_MAX_ROWS", 999)
        monkeypatch.setattr(drift, "EXACT_MAX_PAIRS", 100)  # 500 continuous values are "many" here
        table = compute_drift(project, DriftQuery(REF, CUR, by=("cell",)))
        assert table.bounded and table.rows["ks_d_bound"].is_not_null().all()
        with pytest.raises(drift.DriftError, match="Unknown drift mode"):
            compute_drift(project, DriftQuery(REF, CUR, mode="fast"))
    finally:
        project.close()


def test_summaries_built_per_partition_merge_to_the_same_statistics() -> None:
    """What a Spark engine relies on: summaries of row partitions, stacked, give the whole log's statistics."""
    rng = np.random.default_rng(4)
    n = 6000
    frame = pl.DataFrame({"cell": rng.choice(["C1", "C2", "C3"], n), "x": rng.gamma(2.0, 3.0, n),
                          "is_ref": rng.random(n) < 0.5, "part": rng.integers(0, 3, n)})
    con = duckdb.connect()
    con.register("t", frame)
    grid = drift_summary.grids(con, "SELECT * FROM t WHERE is_ref", ["x"])["x"]
    con.execute("CREATE TABLE whole AS " + drift_summary.summary_sql("SELECT cell, x, is_ref FROM t", ["cell"], grid))
    parts = " UNION ALL ".join(drift_summary.summary_sql(f"SELECT cell, x, is_ref FROM t WHERE part = {p}", ["cell"],
                                                         grid) for p in range(3))
    con.execute(f"CREATE TABLE merged AS {parts}")
    assert con.execute("SELECT count(*) FROM merged").fetchall()[0][0] > con.execute(
        "SELECT count(*) FROM whole").fetchall()[0][0]  # really stacked, not already merged
    for got, want in zip(drift_summary.statistics(con, "merged", ["cell"], 10),
                         drift_summary.statistics(con, "whole", ["cell"], 10), strict=True):
        keys = [c for c in ("cell", "bin") if c in want.columns]
        got, want = got.sort(keys), want.sort(keys)
        assert got.columns == want.columns
        for column in want.columns:
            if want[column].dtype.is_float():
                assert np.allclose(got[column].to_numpy(), want[column].to_numpy(), rtol=1e-12, atol=1e-12), column
            else:
                assert got[column].to_list() == want[column].to_list(), column


def test_bounded_mode_against_a_registered_dataset_reference(sample_folder: Path, monkeypatch) -> None:
    """A dataset as reference (its rows thinned by file row number to place the grid) keeps the bound honest."""
    from app.sample.plant import START

    monkeypatch.setattr(drift, "GRID_SAMPLE_ROWS", 500)  # thin the grid's rows, as a large dataset would be
    current = (START + timedelta(weeks=20), START + timedelta(weeks=26))
    query = DriftQuery(reference=(START, START), current=current, by=(), features=("current_a",),
                       reference_dataset="train-v1", mode="bounded")
    with Project.open(sample_folder, read_only=True) as project:
        table = compute_drift(project, query)
        with project.reading() as con:
            path = con.execute("SELECT artifact_path FROM datasets WHERE dataset_id = 'train-v1'").fetchall()[0][0]
            cur = con.execute("SELECT current_a FROM predictions WHERE ts >= ? AND ts < ?",
                              list(current)).fetchnumpy()["current_a"]
    row = table.rows.row(0, named=True)
    ref = pl.read_parquet(sample_folder / path)["current_a"].to_numpy()
    assert table.bounded and row["n_ref"] == len(ref) and row["n_cur"] == len(cur)
    assert abs(row["ks_d"] - stats.ks_2samp(ref, cur).statistic) <= row["ks_d_bound"] + 1e-12
    w = stats.wasserstein_distance(ref, cur) / ref.std()
    assert abs(row["wasserstein_norm"] - w) <= row["wasserstein_norm_bound"] + 1e-9


def test_rows_without_a_slice_value_form_the_missing_slice_in_both_modes(tmp_path: Path) -> None:
    """The bounded summary groups by the raw key and names a NULL '(missing)' after grouping: the same slice, with
    the same counts, as exact mode (which names it row by row)."""
    rng = np.random.default_rng(12)
    n = 3000
    cells = rng.choice(["C1", "C2", None], 2 * n).astype(object)
    project = _project(tmp_path, _frame({"x": rng.normal(0, 1, n)}, {"x": rng.normal(0.3, 1, n)}, cells))
    try:
        bounded = compute_drift(project, DriftQuery(REF, CUR, by=("cell",), mode="bounded")).rows.sort("cell")
        exact = compute_drift(project, DriftQuery(REF, CUR, by=("cell",), mode="exact")).rows.sort("cell")
    finally:
        project.close()
    assert bounded["cell"].to_list() == exact["cell"].to_list() == ["(missing)", "C1", "C2"]
    in_ref = list(cells[:n])
    assert bounded["n_ref"].to_list() == exact["n_ref"].to_list() == [in_ref.count(c) for c in (None, "C1", "C2")]
    assert ((bounded["ks_d"] - exact["ks_d"]).abs() <= bounded["ks_d_bound"] + 1e-12).all()


def test_auto_mode_keeps_few_valued_features_exact_above_the_row_threshold(tmp_path: Path, monkeypatch) -> None:
    """Above EXACT_MAX_ROWS a continuous sensor goes to the bounded summary, while a quantised one (~1,500
    distinct readings) stays exact: its statistics equal exact mode's and carry no bound."""
    rng = np.random.default_rng(21)
    n = 6000
    # "steps" reads in tenths: ~1,500 values, several to a fine bin (8 std / 512 = 0.31), so bounded mode would
    # have to bound it; "temp" is continuous (6,000 distinct values in 6,000 rows)
    ref = {"temp": rng.normal(300, 5, n), "steps": np.round(rng.normal(50, 20, n), 1)}
    cur = {"temp": rng.normal(301, 5, n), "steps": np.round(rng.normal(52, 20, n), 1)}
    project = _project(tmp_path, _frame(ref, cur, rng.choice(["C1", "C2"], 2 * n)))
    monkeypatch.setattr(drift, "EXACT_MAX_ROWS", 1000)
    monkeypatch.setattr(drift, "EXACT_MAX_PAIRS", 4000)  # (cell, value) pairs: ~2,400 and ~6,000
    try:
        auto = compute_drift(project, DriftQuery(REF, CUR, by=("cell",))).rows.sort("feature", "cell")
        exact = compute_drift(project, DriftQuery(REF, CUR, by=("cell",), mode="exact")).rows.sort("feature", "cell")
        bounded = compute_drift(project, DriftQuery(REF, CUR, by=("cell",), mode="bounded")).rows.sort("feature",
                                                                                                      "cell")
    finally:
        project.close()
    steps, temp = (pl.col("feature") == "steps"), (pl.col("feature") == "temp")
    for column in ("ks_d", "ks_p", "wasserstein_norm", "psi", "js"):  # equal but for DuckDB's parallel sum order
        assert auto.filter(steps)[column].to_list() == pytest.approx(exact.filter(steps)[column].to_list(),
                                                                     rel=1e-12), column
        assert auto.filter(temp)[column].to_list() == pytest.approx(bounded.filter(temp)[column].to_list(),
                                                                    rel=1e-12), column
    assert auto["drifted"].to_list() == exact.filter(steps)["drifted"].to_list() + bounded.filter(temp)["drifted"].to_list()
    assert (auto.filter(steps)["ks_d_bound"] == 0).all() and (auto.filter(temp)["ks_d_bound"] > 0).any()
    assert (bounded.filter(steps)["ks_d_bound"] > 0).any()  # what auto mode saves the quantised sensor


def test_exact_pays_only_while_slices_times_values_stay_few() -> None:
    """Exact mode's cost follows the (slice, value) pairs: 50 set points are few over the whole plant but not over
    100 assets (at 10M rows, 212 assets x 4,400 values took 3.5 s exact against 2.3 s bounded)."""
    rng = np.random.default_rng(5)
    con = duckdb.connect()
    con.register("t", pl.DataFrame({"asset": rng.integers(0, 100, 20_000).astype(str),
                                    "x": rng.integers(0, 50, 20_000).astype(float)}))
    assert drift_summary.few_valued(con, "SELECT * FROM t", ["x"], [], 1000) == {"x"}
    assert drift_summary.few_valued(con, "SELECT * FROM t", ["x"], ["asset"], 1000) == set()
