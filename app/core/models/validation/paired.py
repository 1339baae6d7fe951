"""Metrics of two binary models scored on the same rows, per slice, with intervals and paired differences.

Both models see exactly the same records, so differences are judged with paired methods, which are far
tighter than comparing two independent intervals:
- recall, false-alarm rate, accuracy: Newcombe's hybrid score interval for a difference of paired
  proportions (Newcombe 1998, method 10), from Wilson intervals and the phi correlation of the decisions;
- ROC AUC: DeLong's method (DeLong, DeLong & Clarke-Pearson 1988) with the covariance of the two AUCs,
  placement values taken from average ranks (ties count one half), so AUC is exact, not binned;
- Brier score: normal interval of the mean per-row difference of squared errors.
Single-model intervals: Wilson for proportions, DeLong for AUC, normal for the Brier score.
Everything is a polars expression over groups; no Python loop touches a row.
"""

from __future__ import annotations

import polars as pl

from app.core.stats.intervals import wilson

MODELS = ("cand", "champ")
_KEY = "_group"


def newcombe_paired(both: pl.Expr, only_a: pl.Expr, only_b: pl.Expr, n: pl.Expr, z: float
                    ) -> tuple[pl.Expr, pl.Expr, pl.Expr]:
    """(difference, low, high) of p_a - p_b for paired binary outcomes, Newcombe's method 10."""
    a, b, c = (e.cast(pl.Float64) for e in (both, only_a, only_b))
    n = n.cast(pl.Float64)
    d = n - a - b - c
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = wilson(a + b, n, z)
    l2, u2 = wilson(a + c, n, z)
    den = (a + b) * (c + d) * (a + c) * (b + d)
    phi = pl.when(den > 0).then((a * d - b * c) / den.sqrt()).otherwise(0.0)
    below = ((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2).clip(0.0, None).sqrt()
    above = ((u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2).clip(0.0, None).sqrt()
    valid = n > 0
    diff = p1 - p2
    return (pl.when(valid).then(diff), pl.when(valid).then(diff - below), pl.when(valid).then(diff + above))


def slice_metrics(frame: pl.DataFrame, by: tuple[str, ...], thresholds: tuple[float, float], z: float
                  ) -> pl.DataFrame:
    """One row per slice of `by` (one row overall for ()): both models' metrics, intervals and differences.

    `frame` holds `label` (0/1, null when unlabelled), `s_cand`, `s_champ` (champion may be all null) and the
    `by` columns. Metric columns are `cand_<m>`, `champ_<m>` with `_low`/`_high`, and `diff_<m>` (cand - champ).
    """
    keys = list(by) or [_KEY]
    frame = frame if by else frame.with_columns(pl.lit(0).alias(_KEY))
    coverage = frame.group_by(keys).agg(pl.len().alias("rows"))
    labelled = frame.filter(pl.col("label").is_not_null()).with_columns(
        (pl.col("label") == 1).alias("y"),
        (pl.col("s_cand") >= thresholds[0]).alias("f_cand"),
        (pl.col("s_champ") >= thresholds[1]).alias("f_champ"))
    counts = _counts(labelled, keys)
    auc = _delong(labelled, keys)
    out = coverage.join(counts, on=keys, how="left", nulls_equal=True).join(auc, on=keys, how="left",
                                                                             nulls_equal=True)
    out = _finish(out.with_columns(pl.col(c).fill_null(0) for c in ("labelled", "positives", "negatives")), z)
    out = out.sort(keys, nulls_last=True) if by else out.drop(_KEY)
    return out


def _counts(lab: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    y, fa, fb = pl.col("y"), pl.col("f_cand"), pl.col("f_champ")
    correct_a, correct_b = fa == y, fb == y
    se_a = (pl.col("s_cand") - pl.col("label")) ** 2
    se_b = (pl.col("s_champ") - pl.col("label")) ** 2
    return lab.group_by(keys).agg(
        pl.len().alias("labelled"), y.sum().alias("positives"), (~y).sum().alias("negatives"),
        *[(f & y).sum().alias(f"{m}_tp") for m, f in (("cand", fa), ("champ", fb))],
        *[(f & ~y).sum().alias(f"{m}_fp") for m, f in (("cand", fa), ("champ", fb))],
        *[c.sum().alias(f"{m}_correct") for m, c in (("cand", correct_a), ("champ", correct_b))],
        # Discordant pairs for the paired intervals: among defects, good parts and all labelled rows.
        (fa & fb & y).sum().alias("rec_both"), (fa & ~fb & y).sum().alias("rec_a"), (~fa & fb & y).sum().alias("rec_b"),
        (fa & fb & ~y).sum().alias("fpr_both"), (fa & ~fb & ~y).sum().alias("fpr_a"),
        (~fa & fb & ~y).sum().alias("fpr_b"),
        (correct_a & correct_b).sum().alias("acc_both"), (correct_a & ~correct_b).sum().alias("acc_a"),
        (~correct_a & correct_b).sum().alias("acc_b"),
        se_a.mean().alias("cand_brier"), se_a.std().alias("cand_brier_sd"),
        se_b.mean().alias("champ_brier"), se_b.std().alias("champ_brier_sd"),
        (se_a - se_b).mean().alias("diff_brier"), (se_a - se_b).std().alias("diff_brier_sd"),
        (se_a.is_not_null() & se_b.is_not_null()).sum().alias("paired_rows"))


def _delong(lab: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """ROC AUC of each model and of their difference, with DeLong variances, per group."""
    y = pl.col("y")
    n1 = y.sum().over(keys).cast(pl.Float64)
    n0 = (~y).sum().over(keys).cast(pl.Float64)

    def placement(score: str) -> pl.Expr:
        # Average rank among all minus average rank in the own class = opposite-class rows below (+ half ties).
        below = pl.col(score).rank("average").over(keys) - pl.col(score).rank("average").over([*keys, "y"])
        return pl.when(y).then(below / n0).otherwise(1.0 - below / n1)

    with_v = lab.select(*keys, "y", placement("s_cand").alias("v_a"), placement("s_champ").alias("v_b"))
    per_class = with_v.group_by([*keys, "y"]).agg(
        pl.len().alias("k"), pl.col("v_a").mean().alias("m_a"), pl.col("v_b").mean().alias("m_b"),
        pl.col("v_a").var().alias("var_a"), pl.col("v_b").var().alias("var_b"),
        pl.cov("v_a", "v_b").alias("cov_ab"))
    pos = per_class.filter(pl.col("y")).drop("y")
    neg = per_class.filter(~pl.col("y")).drop("y")
    both = pos.join(neg, on=keys, how="inner", suffix="_0", nulls_equal=True)
    c = pl.col
    var_a = c("var_a") / c("k") + c("var_a_0") / c("k_0")
    var_b = c("var_b") / c("k") + c("var_b_0") / c("k_0")
    var_d = var_a + var_b - 2 * (c("cov_ab") / c("k") + c("cov_ab_0") / c("k_0"))
    return both.select(*keys, c("m_a").alias("cand_auc"), c("m_b").alias("champ_auc"),
                       var_a.fill_null(0.0).alias("cand_auc_var"), var_b.fill_null(0.0).alias("champ_auc_var"),
                       var_d.fill_null(0.0).alias("diff_auc_var"))


def _finish(frame: pl.DataFrame, z: float) -> pl.DataFrame:
    c = pl.col

    def ratio(num: pl.Expr, den: pl.Expr) -> pl.Expr:
        return pl.when(den > 0).then(num.cast(pl.Float64) / den)

    cols: list[pl.Expr] = [ratio(c("labelled"), c("rows")).alias("label_coverage")]
    for m in MODELS:
        tp, fp = c(f"{m}_tp"), c(f"{m}_fp")
        fn, tn = c("positives") - tp, c("negatives") - fp
        parts = {"recall": (tp, c("positives")), "fpr": (fp, c("negatives")), "precision": (tp, tp + fp),
                 "accuracy": (c(f"{m}_correct"), c("labelled"))}
        for metric, (k, n) in parts.items():
            low, high = wilson(k, n, z)
            cols += [ratio(k, n).alias(f"{m}_{metric}"), low.alias(f"{m}_{metric}_low"),
                     high.alias(f"{m}_{metric}_high")]
        cols += [ratio(2 * tp, 2 * tp + fp + fn).alias(f"{m}_f1"), (tp + fp).alias(f"{m}_flagged"),
                 tn.alias(f"{m}_tn"), fn.alias(f"{m}_fn")]
        se = c(f"{m}_auc_var").sqrt()
        cols += [(c(f"{m}_auc") - z * se).clip(0.0, 1.0).alias(f"{m}_auc_low"),
                 (c(f"{m}_auc") + z * se).clip(0.0, 1.0).alias(f"{m}_auc_high")]
        half = z * c(f"{m}_brier_sd") / c("labelled").cast(pl.Float64).sqrt()
        cols += [(c(f"{m}_brier") - half).clip(0.0, None).alias(f"{m}_brier_low"),
                 (c(f"{m}_brier") + half).alias(f"{m}_brier_high")]
    for metric, prefix, n in (("recall", "rec", c("positives")), ("fpr", "fpr", c("negatives")),
                              ("accuracy", "acc", c("labelled"))):
        diff, low, high = newcombe_paired(c(f"{prefix}_both"), c(f"{prefix}_a"), c(f"{prefix}_b"), n, z)
        cols += [diff.alias(f"diff_{metric}"), low.alias(f"diff_{metric}_low"), high.alias(f"diff_{metric}_high")]
    se_d = c("diff_auc_var").sqrt()
    cols += [(c("cand_auc") - c("champ_auc")).alias("diff_auc"),
             (c("cand_auc") - c("champ_auc") - z * se_d).alias("diff_auc_low"),
             (c("cand_auc") - c("champ_auc") + z * se_d).alias("diff_auc_high")]
    half = z * c("diff_brier_sd") / c("paired_rows").cast(pl.Float64).sqrt()
    cols += [(c("diff_brier") - half).alias("diff_brier_low"), (c("diff_brier") + half).alias("diff_brier_high")]
    out = frame.with_columns(cols)
    drop = [x for x in out.columns if x.endswith(("_both", "_a", "_b", "_var", "_sd", "_correct"))
            or x in ("paired_rows",)]
    return out.drop(drop)
