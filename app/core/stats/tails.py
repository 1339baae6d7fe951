"""Tail probabilities the drift tests need, without scipy at run time (vectorised with numpy)."""

from __future__ import annotations

import math

import numpy as np


def ks_pvalue(d: np.ndarray, n_ref: np.ndarray, n_cur: np.ndarray) -> np.ndarray:
    """Asymptotic two-sample Kolmogorov-Smirnov p-value (Stephens' small-sample correction).

    Q_KS(lambda) = 2 * sum_k (-1)^(k-1) exp(-2 k^2 lambda^2), lambda = (sqrt(ne) + 0.12 + 0.11 / sqrt(ne)) * D,
    ne = n1 n2 / (n1 + n2). Close to scipy's asymptotic method for the sample sizes drift works with.
    """
    d, n1, n2 = (np.asarray(a, dtype=float) for a in (d, n_ref, n_cur))
    with np.errstate(divide="ignore", invalid="ignore"):
        ne = n1 * n2 / (n1 + n2)
        lam = (np.sqrt(ne) + 0.12 + 0.11 / np.sqrt(ne)) * d
        k = np.arange(1, 101)[:, None]
        terms = 2 * (-1.0) ** (k - 1) * np.exp(-2 * k**2 * lam[None, :] ** 2)
        p = terms.sum(axis=0)
    p = np.where(lam < 0.3, 1.0, p)  # the series converges slowly near 0, where p is 1 to many digits
    return np.clip(np.where(np.isfinite(p), p, np.nan), 0.0, 1.0)


def _gammaincc(a: float, x: float) -> float:
    """Regularised upper incomplete gamma Q(a, x) (series below a + 1, continued fraction above)."""
    if x <= 0:
        return 1.0
    gln = math.lgamma(a)
    if x < a + 1:
        term = total = 1.0 / a
        ap = a
        for _ in range(1000):
            ap += 1
            term *= x / ap
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return max(0.0, 1.0 - total * math.exp(-x + a * math.log(x) - gln))
    tiny = 1e-300
    b = x + 1 - a
    c = 1 / tiny
    dd = 1 / b
    h = dd
    for i in range(1, 1000):
        an = -i * (i - a)
        b += 2
        dd = an * dd + b
        dd = tiny if abs(dd) < tiny else dd
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        dd = 1 / dd
        delta = dd * c
        h *= delta
        if abs(delta - 1) < 1e-15:
            break
    return min(1.0, math.exp(-x + a * math.log(x) - gln) * h)


def chi2_sf(statistic: float, dof: int) -> float:
    """P(X > statistic) for a chi-square distribution with `dof` degrees of freedom."""
    if dof <= 0 or not math.isfinite(statistic):
        return float("nan")
    return _gammaincc(dof / 2, statistic / 2)
