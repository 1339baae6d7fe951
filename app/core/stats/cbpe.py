"""Confidence-based performance estimation (CBPE) for binary classifiers, on summaries.

Given calibrated probabilities p, a window's expected confusion matrix is TP = sum p and FP = sum (1 - p) over
rows decided positive, FN = sum p and TN = sum (1 - p) over rows decided negative; the metrics follow from it.
The expected ROC AUC walks the rows from the highest score down, accumulating p as true and 1 - p as false
positives (app/core/analysis/estimate.py does that walk in SQL). Sampling errors are NannyML's: a standard deviation measured on the labelled reference, divided by
the square root of the rows (or the relevant share of rows) in the window; the band is +-3 of them, clipped to
[0, 1]. Every function takes grouped points (a score with its row count), never rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

METRICS = ("auc", "f1", "precision", "recall", "accuracy", "fpr")
BAND_SIGMAS = 3.0  # NannyML's SAMPLING_ERROR_RANGE


@dataclass(frozen=True)
class Confusion:
    """A confusion matrix, counted (realized) or expected (estimated)."""

    tp: float
    fp: float
    fn: float
    tn: float

    @property
    def rows(self) -> float:
        """All rows the matrix covers."""
        return self.tp + self.fp + self.fn + self.tn

    def metrics(self) -> dict[str, float | None]:
        """Accuracy, precision, recall, F1 and false-alarm rate (None where a denominator is zero)."""
        def ratio(a: float, b: float) -> float | None:
            return a / b if b > 0 else None
        return {"accuracy": ratio(self.tp + self.tn, self.rows), "precision": ratio(self.tp, self.tp + self.fp),
                "recall": ratio(self.tp, self.tp + self.fn), "f1": ratio(self.tp, self.tp + 0.5 * (self.fp + self.fn)),
                "fpr": ratio(self.fp, self.fp + self.tn)}


def _bernoulli(share: float) -> float:
    return math.sqrt(max(share * (1.0 - share), 0.0))


@dataclass(frozen=True)
class ReferenceSpread:
    """Per metric: the reference's per-row standard deviation and the share of rows the metric counts."""

    spread: dict[str, tuple[float, float]]

    @classmethod
    def measure(cls, labelled: Confusion, scores: np.ndarray, rows: np.ndarray, positives: np.ndarray) -> ReferenceSpread:
        """From the labelled reference: its confusion counts and its (score, rows, positives) points."""
        tp, fp, fn, tn, n = labelled.tp, labelled.fp, labelled.fn, labelled.tn, labelled.rows
        relevant = tp + fn + fp
        f1_std = (relevant / (0.5 * (fn + fp) + tp)) * _bernoulli(tp / relevant) if relevant else 0.0
        spread = {
            "accuracy": (_bernoulli((tp + tn) / n), 1.0),
            "precision": (_bernoulli(tp / (tp + fp)) if tp + fp else 0.0, (tp + fp) / n),
            "recall": (_bernoulli(tp / (tp + fn)) if tp + fn else 0.0, (tp + fn) / n),
            "fpr": (_bernoulli(tn / (tn + fp)) if tn + fp else 0.0, (tn + fp) / n),
            "f1": (f1_std, relevant / n),
            "auc": auc_spread(scores, rows, positives),
        }
        return cls(spread)

    def sampling_error(self, metric: str, rows: float) -> float | None:
        """The standard error of `metric` on a window of `rows` rows."""
        std, share = self.spread[metric]
        if rows <= 0 or share <= 0:
            return None
        return std / math.sqrt(rows * share)


def auc_spread(scores: np.ndarray, rows: np.ndarray, positives: np.ndarray) -> tuple[float, float]:
    """NannyML's ROC AUC sampling components: the spread of each positive's share of negatives ranked below it.

    Classes are swapped when positives are the majority; inside a group of equal scores, negatives rank first.
    """
    rows, positives = rows.astype(float), positives.astype(float)
    n_pos, n = positives.sum(), rows.sum()
    if positives.sum() > n / 2:
        scores, positives = 1.0 - scores, rows - positives
        n_pos = positives.sum()
    order = np.argsort(scores, kind="stable")
    pos = positives[order]
    neg = rows[order] - pos
    n_neg = neg.sum()
    if n_pos == 0 or n_neg == 0:
        return 0.0, n_pos / n if n else 0.0
    below = np.cumsum(neg)  # negatives ranked before each positive of the group (its own negatives first)
    weights = pos.copy()
    if neg[0] == 0 and pos[0] > 0:
        # NannyML's rank bookkeeping drops a positive ranked first and shifts every other one by one place.
        weights[0] -= 1
        below = below + 1
    values = below / n_neg
    kept = weights.sum()
    if kept <= 0:
        return 0.0, n_pos / n
    mean = np.sum(weights * values) / kept
    std = math.sqrt(max(np.sum(weights * (values - mean) ** 2) / kept, 0.0))
    return std, n_pos / n


def realized_auc(scores_asc: np.ndarray, labelled: np.ndarray, positives: np.ndarray) -> float | None:
    """ROC AUC from labelled rows grouped by distinct score (ascending): Mann-Whitney, ties counted one half."""
    negatives = labelled - positives
    n_pos, n_neg = positives.sum(), negatives.sum()
    if n_pos == 0 or n_neg == 0:
        return None
    below = np.cumsum(negatives) - negatives
    return float(np.sum(positives * (below + 0.5 * negatives)) / (n_pos * n_neg))


def band(estimate: float | None, error: float | None) -> tuple[float | None, float | None]:
    """The estimate's band, +-3 sampling errors clipped to [0, 1]."""
    if estimate is None or error is None:
        return None, None
    return max(0.0, estimate - BAND_SIGMAS * error), min(1.0, estimate + BAND_SIGMAS * error)
