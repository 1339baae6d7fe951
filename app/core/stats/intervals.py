"""Confidence intervals as vectorised polars expressions (one slice per row, no Python loop)."""

from __future__ import annotations

from statistics import NormalDist

import polars as pl


def z_value(confidence: float) -> float:
    """Two-sided standard-normal quantile, e.g. 1.96 for 0.95."""
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson(successes: pl.Expr, trials: pl.Expr, z: float) -> tuple[pl.Expr, pl.Expr]:
    """Wilson score interval (low, high) for successes / trials; null where trials == 0."""
    n = trials.cast(pl.Float64)
    p = successes.cast(pl.Float64) / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * (p * (1 - p) / n + z * z / (4 * n * n)).sqrt()
    valid = trials > 0
    return (pl.when(valid).then((centre - half).clip(0.0, 1.0)),
            pl.when(valid).then((centre + half).clip(0.0, 1.0)))


def hanley_mcneil(auc: pl.Expr, positives: pl.Expr, negatives: pl.Expr, z: float) -> tuple[pl.Expr, pl.Expr]:
    """Analytic ROC AUC interval (Hanley & McNeil 1982, exponential approximation)."""
    a, n1, n0 = auc, positives.cast(pl.Float64), negatives.cast(pl.Float64)
    q1 = a / (2 - a)
    q2 = 2 * a * a / (1 + a)
    var = (a * (1 - a) + (n1 - 1) * (q1 - a * a) + (n0 - 1) * (q2 - a * a)) / (n1 * n0)
    se = var.clip(0.0, None).sqrt()
    return (a - z * se).clip(0.0, 1.0), (a + z * se).clip(0.0, 1.0)


def normal_mean(mean: pl.Expr, sd: pl.Expr, n: pl.Expr, z: float) -> tuple[pl.Expr, pl.Expr]:
    """Normal-approximation interval for a mean (used for MAE and bias)."""
    half = z * sd / n.cast(pl.Float64).sqrt()
    return mean - half, mean + half
