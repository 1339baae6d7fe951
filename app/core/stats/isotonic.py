"""Isotonic calibration of scores on weighted, grouped points, and the expected calibration error.

Works on summaries (one point per distinct score with its row count and positives), never on rows; the fit is
the one scikit-learn's IsotonicRegression(out_of_bounds="clip") makes from the same rows, because pooling the
rows that share a score first is what it does too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class IsotonicMap:
    """A fitted non-decreasing map from score to probability: linear between knots, flat outside them."""

    knots: np.ndarray  # distinct scores, ascending
    values: np.ndarray  # the fitted probability at each knot

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        """Calibrated probabilities for scores (clipped to the end values outside the fitted range)."""
        return np.interp(scores, self.knots, self.values)


def pool_adjacent_violators(means: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The weighted least-squares non-decreasing fit to `means` (one value per input point).

    Vectorised passes pool every run of adjacent blocks whose means decrease, while a pass still removes a
    good share of the blocks; the few blocks left are finished with the classic stack. Any order of pooling
    adjacent violators ends at the same (unique) solution.
    """
    n = len(means)
    if n == 0:
        return np.asarray(means, dtype=float)
    sums = np.asarray(means, dtype=float) * weights
    totals = np.asarray(weights, dtype=float).copy()
    starts = np.arange(n)
    while True:
        block_means = sums / totals
        violates = block_means[:-1] > block_means[1:]
        merges = int(violates.sum())
        if merges == 0:
            return np.repeat(block_means, np.diff(np.append(starts, n)))
        if merges < len(sums) // 8:
            break
        opens = np.concatenate(([True], ~violates))
        block = np.cumsum(opens) - 1
        sums = np.bincount(block, sums)
        totals = np.bincount(block, totals)
        starts = starts[opens]
    return np.repeat(*_stack_pool(sums.tolist(), totals.tolist(), np.diff(np.append(starts, n)).tolist()))


def _stack_pool(sums: list[float], totals: list[float], lengths: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Classic PAV over already-pooled blocks (their count, not the rows', sets the cost)."""
    s_out: list[float] = []
    t_out: list[float] = []
    l_out: list[int] = []
    for s, t, length in zip(sums, totals, lengths, strict=True):
        while s_out and s_out[-1] * t > s * t_out[-1]:  # previous mean above this one: pool
            s += s_out.pop()
            t += t_out.pop()
            length += l_out.pop()
        s_out.append(s)
        t_out.append(t)
        l_out.append(length)
    return np.asarray(s_out) / np.asarray(t_out), np.asarray(l_out)


def fit_isotonic(scores: np.ndarray, rows: np.ndarray, positives: np.ndarray) -> IsotonicMap:
    """Fit P(label = 1 | score) as a non-decreasing map from (score, rows, positives) points."""
    if len(scores) > 1 and np.any(scores[1:] < scores[:-1]):
        order = np.argsort(scores, kind="stable")
        scores, rows, positives = scores[order], rows[order], positives[order]
    first = np.flatnonzero(np.concatenate(([True], scores[1:] != scores[:-1])))
    n = np.add.reduceat(rows.astype(float), first)
    k = np.add.reduceat(positives.astype(float), first)
    return IsotonicMap(scores[first], pool_adjacent_violators(k / n, n))


def _equal_count_bins(probabilities: np.ndarray, rows: np.ndarray, positives: np.ndarray, bins: int
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows, mean probability and mean label of equal-count bins over rows sorted by probability.

    A point whose rows straddle a bin edge is split between the two bins in proportion to its rows.
    """
    total = float(rows.sum())
    bins = min(bins, int(total) // 2)
    order = np.argsort(probabilities, kind="stable")
    p, n, k = probabilities[order], rows[order].astype(float), positives[order].astype(float)
    edges = np.arange(bins + 1, dtype=float) * (int(total) // bins)
    edges[-1] = total
    # Cumulative rows, probability mass and positives, read at the bin edges: linear inside a point, which
    # splits a straddling point's rows in proportion.
    at = np.concatenate(([0.0], np.cumsum(n)))
    mass = np.diff(np.interp(edges, at, np.concatenate(([0.0], np.cumsum(p * n)))))
    hits = np.diff(np.interp(edges, at, np.concatenate(([0.0], np.cumsum(k)))))
    bin_rows = np.diff(edges)
    return bin_rows, mass / bin_rows, hits / bin_rows


def expected_calibration_error(probabilities: np.ndarray, rows: np.ndarray, positives: np.ndarray,
                               bins: int = 10) -> float:
    """ECE over equal-count bins of rows sorted by probability (NannyML's definition, on weighted points)."""
    if rows.sum() < 4:
        return 0.0
    bin_rows, mean_p, mean_y = _equal_count_bins(probabilities, rows, positives, bins)
    return float(np.sum(bin_rows / bin_rows.sum() * np.abs(mean_p - mean_y)))


def chance_calibration_error(probabilities: np.ndarray, rows: np.ndarray, positives: np.ndarray,
                             bins: int = 10) -> float:
    """The ECE a perfectly calibrated model would show by chance on these rows (E|mean label - p| per bin)."""
    if rows.sum() < 4:
        return 0.0
    bin_rows, mean_p, _ = _equal_count_bins(probabilities, rows, positives, bins)
    spread = np.sqrt(2.0 / np.pi * np.clip(mean_p * (1.0 - mean_p), 0.0, None) / bin_rows)
    return float(np.sum(bin_rows / bin_rows.sum() * spread))
