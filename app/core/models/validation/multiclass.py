"""Metrics of two multiclass models scored on the same rows, per slice: accuracy and each class's recall with
Wilson intervals and Newcombe paired differences (as paired.py does for binary models), and macro F1.

Macro F1 averages the F1 of the classes present in the slice (as label or as prediction), as scikit-learn's
f1_score(average="macro") does; it has no closed-form interval, so it is judged on its estimate and says so.
Every count is a polars expression per group; the loop runs over classes (a handful), never over rows.
"""

from __future__ import annotations

import polars as pl

from app.core.models.validation.paired import newcombe_paired
from app.core.stats.intervals import wilson

MODELS = (("cand", "p_cand"), ("champ", "p_champ"))
_KEY = "_group"


def multiclass_metrics(frame: pl.DataFrame, by: tuple[str, ...], classes: list[str], z: float) -> pl.DataFrame:
    """One row per slice of `by` (one row overall for ()). `frame` holds `label` (class index, null when not
    labelled), `p_cand` and `p_champ` (predicted class index; the champion's may be all null) and the `by`
    columns. Columns: rows, labelled, label_coverage, `<model>_accuracy`, `<model>_macro_f1`,
    `<model>_recall:<class>` with `_low`/`_high`, `diff_accuracy`, `diff_recall:<class>` (candidate - champion,
    paired) and `support_recall:<class>` (labelled rows of the class)."""
    keys = list(by) or [_KEY]
    frame = frame if by else frame.with_columns(pl.lit(0).alias(_KEY))
    coverage = frame.group_by(keys).agg(pl.len().alias("rows"))
    y = pl.col("label")
    counts: list[pl.Expr] = [pl.len().alias("labelled")]
    for k in range(len(classes)):
        counts.append((y == k).sum().alias(f"n{k}"))
        for m, p in MODELS:
            counts += [((pl.col(p) == k) & (y == k)).sum().alias(f"{m}_tp{k}"),
                       ((pl.col(p) == k) & (y != k)).sum().alias(f"{m}_fp{k}")]
        a, b = pl.col("p_cand") == k, pl.col("p_champ") == k
        counts += [(a & b & (y == k)).sum().alias(f"r{k}_both"), (a & ~b & (y == k)).sum().alias(f"r{k}_a"),
                   (~a & b & (y == k)).sum().alias(f"r{k}_b")]
    right_a, right_b = pl.col("p_cand") == y, pl.col("p_champ") == y
    counts += [right_a.sum().alias("cand_correct"), right_b.sum().alias("champ_correct"),
               (right_a & right_b).sum().alias("acc_both"), (right_a & ~right_b).sum().alias("acc_a"),
               (~right_a & right_b).sum().alias("acc_b")]
    labelled = frame.filter(y.is_not_null()).group_by(keys).agg(counts)
    out = coverage.join(labelled, on=keys, how="left", nulls_equal=True).with_columns(
        pl.col("labelled").fill_null(0))
    out = _finish(out, classes, z)
    return out.sort(keys, nulls_last=True) if by else out.drop(_KEY)


def _ratio(num: pl.Expr, den: pl.Expr) -> pl.Expr:
    return pl.when(den > 0).then(num.cast(pl.Float64) / den)


def _finish(frame: pl.DataFrame, classes: list[str], z: float) -> pl.DataFrame:
    c = pl.col
    cols: list[pl.Expr] = [_ratio(c("labelled"), c("rows")).alias("label_coverage")]
    for m, _p in MODELS:
        low, high = wilson(c(f"{m}_correct"), c("labelled"), z)
        cols += [_ratio(c(f"{m}_correct"), c("labelled")).alias(f"{m}_accuracy"), low.alias(f"{m}_accuracy_low"),
                 high.alias(f"{m}_accuracy_high")]
        f1s, present = [], []
        for k, name in enumerate(classes):
            tp, fp, n = c(f"{m}_tp{k}"), c(f"{m}_fp{k}"), c(f"n{k}")
            low, high = wilson(tp, n, z)
            cols += [_ratio(tp, n).alias(f"{m}_recall:{name}"), low.alias(f"{m}_recall:{name}_low"),
                     high.alias(f"{m}_recall:{name}_high")]
            denominator = 2 * tp + fp + (n - tp)  # 2tp + fp + fn: zero only for a class absent as label and guess
            f1s.append(pl.when(denominator > 0).then(2 * tp.cast(pl.Float64) / denominator).otherwise(0.0))
            present.append((denominator > 0).cast(pl.Float64))
        cols.append(_ratio(pl.sum_horizontal(f1s), pl.sum_horizontal(present)).alias(f"{m}_macro_f1"))
    diff, low, high = newcombe_paired(c("acc_both"), c("acc_a"), c("acc_b"), c("labelled"), z)
    cols += [diff.alias("diff_accuracy"), low.alias("diff_accuracy_low"), high.alias("diff_accuracy_high")]
    for k, name in enumerate(classes):
        diff, low, high = newcombe_paired(c(f"r{k}_both"), c(f"r{k}_a"), c(f"r{k}_b"), c(f"n{k}"), z)
        cols += [diff.alias(f"diff_recall:{name}"), low.alias(f"diff_recall:{name}_low"),
                 high.alias(f"diff_recall:{name}_high"), c(f"n{k}").fill_null(0).alias(f"support_recall:{name}")]
    out = frame.with_columns(cols)
    out = out.with_columns((c("cand_macro_f1") - c("champ_macro_f1")).alias("diff_macro_f1"))
    scratch = [x for x in out.columns if x.endswith(("_both", "_a", "_b", "_correct"))
               or x.startswith(("n", "cand_tp", "cand_fp", "champ_tp", "champ_fp")) and x[-1].isdigit()]
    return out.drop(scratch)
