"""The paired statistics behind validation, checked against independent computations: scikit-learn for AUC,
a brute-force pairwise DeLong, scipy's Wilson interval with numpy's phi for Newcombe, numpy for the Brier
difference, and coverage of the true difference in repeated simulations."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy.stats import binomtest
from sklearn.metrics import roc_auc_score

from app.core.models.validation.criteria import FAIL, INCONCLUSIVE, NOT_JUDGED, PASS, judge
from app.core.models.validation.paired import newcombe_paired, slice_metrics
from app.core.stats.intervals import z_value

Z = z_value(0.95)


def _frame(seed: int = 3, n: int = 2500) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.25).astype(np.int64)
    a = np.round(np.clip(0.3 * y + rng.normal(0.35, 0.2, n), 0, 1), 2)  # rounded: many ties
    b = np.round(np.clip(0.2 * y + rng.normal(0.35, 0.2, n) + 0.3 * (a - 0.35), 0, 1), 2)
    return pl.DataFrame({"label": y, "s_cand": a, "s_champ": b, "line": rng.choice(["L1", "L2", "L3"], n)})


def _delong_bruteforce(y: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """DeLong from the full pairwise kernel matrix (O(n1 n0)), the textbook way."""
    v10, v01 = [], []
    for s in (a, b):
        p, q = s[y == 1], s[y == 0]
        k = (p[:, None] > q[None, :]) + 0.5 * (p[:, None] == q[None, :])
        v10.append(k.mean(axis=1))
        v01.append(k.mean(axis=0))
    s10, s01 = np.cov(np.vstack(v10)), np.cov(np.vstack(v01))
    contrast = np.array([1.0, -1.0])
    var_diff = contrast @ s10 @ contrast / len(v10[0]) + contrast @ s01 @ contrast / len(v01[0])
    return v10[0].mean() - v10[1].mean(), float(np.sqrt(var_diff)), float(np.sqrt(s10[0, 0] / len(v10[0]) +
                                                                                s01[0, 0] / len(v01[0])))


def test_auc_and_delong_intervals_match_independent_computations() -> None:
    frame = _frame()
    table = slice_metrics(frame, ("line",), (0.5, 0.5), Z)
    for row in table.iter_rows(named=True):
        part = frame.filter(pl.col("line") == row["line"])
        y, a, b = (part[c].to_numpy() for c in ("label", "s_cand", "s_champ"))
        assert row["cand_auc"] == pytest.approx(roc_auc_score(y, a), abs=1e-12)
        assert row["champ_auc"] == pytest.approx(roc_auc_score(y, b), abs=1e-12)
        diff, se_diff, se_a = _delong_bruteforce(y, a, b)
        assert row["diff_auc"] == pytest.approx(diff, abs=1e-12)
        assert row["diff_auc_low"] == pytest.approx(diff - Z * se_diff, abs=1e-9)
        assert row["diff_auc_high"] == pytest.approx(diff + Z * se_diff, abs=1e-9)
        assert row["cand_auc_low"] == pytest.approx(max(0.0, row["cand_auc"] - Z * se_a), abs=1e-9)


def _newcombe_reference(x: np.ndarray, w: np.ndarray) -> tuple[float, float, float]:
    """Newcombe 1998 method 10 from scipy's Wilson limits and numpy's phi coefficient."""
    n = len(x)
    p1, p2 = x.mean(), w.mean()
    ci1 = binomtest(int(x.sum()), n).proportion_ci(0.95, method="wilson")
    ci2 = binomtest(int(w.sum()), n).proportion_ci(0.95, method="wilson")
    phi = np.corrcoef(x, w)[0, 1] if x.std() > 0 and w.std() > 0 else 0.0
    below = np.sqrt((p1 - ci1.low) ** 2 - 2 * phi * (p1 - ci1.low) * (ci2.high - p2) + (ci2.high - p2) ** 2)
    above = np.sqrt((ci1.high - p1) ** 2 - 2 * phi * (ci1.high - p1) * (p2 - ci2.low) + (p2 - ci2.low) ** 2)
    return p1 - p2, p1 - p2 - below, p1 - p2 + above


def test_paired_recall_interval_matches_newcombe_from_scipy_parts() -> None:
    frame = _frame(seed=8)
    table = slice_metrics(frame, (), (0.5, 0.45), Z).row(0, named=True)
    pos = frame.filter(pl.col("label") == 1)
    detected_a = (pos["s_cand"] >= 0.5).to_numpy().astype(float)
    detected_b = (pos["s_champ"] >= 0.45).to_numpy().astype(float)
    diff, low, high = _newcombe_reference(detected_a, detected_b)
    assert table["diff_recall"] == pytest.approx(diff, abs=1e-12)
    assert table["diff_recall_low"] == pytest.approx(low, abs=1e-9)
    assert table["diff_recall_high"] == pytest.approx(high, abs=1e-9)
    neg = frame.filter(pl.col("label") == 0)
    diff, low, high = _newcombe_reference((neg["s_cand"] >= 0.5).to_numpy().astype(float),
                                          (neg["s_champ"] >= 0.45).to_numpy().astype(float))
    assert (table["diff_fpr"], table["diff_fpr_low"], table["diff_fpr_high"]) == pytest.approx((diff, low, high))
    # Recall itself agrees with counting by hand, and its Wilson interval with scipy's.
    assert table["cand_recall"] == pytest.approx(detected_a.mean())
    ci = binomtest(int(detected_a.sum()), len(detected_a)).proportion_ci(0.95, method="wilson")
    assert (table["cand_recall_low"], table["cand_recall_high"]) == pytest.approx((ci.low, ci.high))


def test_newcombe_interval_covers_the_true_difference_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(42)
    sims, n = 3000, 120
    # Correlated decisions of two detectors with true rates 0.70 and 0.62: true difference 0.08.
    u = rng.random((sims, n))
    a = u < 0.70
    b = np.where(rng.random((sims, n)) < 0.6, u < 0.62, rng.random((sims, n)) < 0.62)
    frame = pl.DataFrame({"both": (a & b).sum(1), "only_a": (a & ~b).sum(1), "only_b": (~a & b).sum(1), "n": n})
    d, low, high = newcombe_paired(pl.col("both"), pl.col("only_a"), pl.col("only_b"), pl.col("n"), Z)
    out = frame.select(low.alias("low"), high.alias("high"))
    coverage = ((out["low"] <= 0.08) & (out["high"] >= 0.08)).mean()
    assert 0.93 <= coverage <= 0.97


def test_brier_difference_is_the_mean_paired_difference_of_squared_errors() -> None:
    frame = _frame(seed=5)
    row = slice_metrics(frame, (), (0.5, 0.5), Z).row(0, named=True)
    y, a, b = (frame[c].to_numpy().astype(float) for c in ("label", "s_cand", "s_champ"))
    d = (a - y) ** 2 - (b - y) ** 2
    half = Z * d.std(ddof=1) / np.sqrt(len(d))
    assert row["cand_brier"] == pytest.approx(((a - y) ** 2).mean())
    assert (row["diff_brier"], row["diff_brier_low"], row["diff_brier_high"]) == pytest.approx(
        (d.mean(), d.mean() - half, d.mean() + half))


def test_unlabelled_rows_count_for_coverage_only() -> None:
    frame = _frame(seed=9, n=400).with_columns(
        pl.when(pl.int_range(pl.len()) % 4 == 0).then(None).otherwise(pl.col("label")).alias("label"))
    row = slice_metrics(frame, (), (0.5, 0.5), Z).row(0, named=True)
    labelled = frame.filter(pl.col("label").is_not_null())
    assert (row["rows"], row["labelled"]) == (400, 300)
    assert row["cand_auc"] == pytest.approx(roc_auc_score(labelled["label"], labelled["s_cand"]))


@pytest.mark.parametrize(("value", "low", "high", "minimum", "maximum", "decision", "expected"), [
    (0.95, 0.93, 0.97, 0.92, None, "fail_on_evidence", PASS),  # whole interval above
    (0.93, 0.91, 0.95, 0.92, None, "fail_on_evidence", PASS),  # estimate meets, interval reaches below
    (0.93, 0.91, 0.95, 0.92, None, "pass_on_evidence", INCONCLUSIVE),  # ... not proven
    (0.91, 0.89, 0.93, 0.92, None, "fail_on_evidence", INCONCLUSIVE),  # estimate misses, interval reaches
    (0.88, 0.86, 0.90, 0.92, None, "fail_on_evidence", FAIL),  # whole interval below
    (0.88, 0.86, 0.90, 0.92, None, "pass_on_evidence", FAIL),
    (0.04, 0.03, 0.05, None, 0.05, "pass_on_evidence", PASS),  # max: whole interval at or under
    (0.07, 0.06, 0.08, None, 0.05, "fail_on_evidence", FAIL),
    (None, None, None, 0.92, None, "fail_on_evidence", NOT_JUDGED),
])
def test_judge_reads_estimate_and_interval_as_documented(value, low, high, minimum, maximum, decision,
                                                         expected) -> None:
    assert judge(value, low, high, minimum, maximum, decision) == expected
