"""Judging each criterion of a plan from the computed metrics, with the evidence in words and numbers.

Three outcomes per check, from the estimate and its interval (plan `decision`):
- fail_on_evidence (default): FAIL only when the whole interval is on the wrong side of the bound;
  INCONCLUSIVE when the estimate is on the wrong side but the interval still reaches the bound; else PASS.
- pass_on_evidence: PASS only when the whole interval is on the right side; FAIL as above; else INCONCLUSIVE.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import polars as pl

from app.core.models.validation.plan import (
    CLASS_RECALL,
    LOWER_IS_BETTER,
    SUPPORT_OF,
    RegressionRule,
    ThresholdRule,
)

PASS, FAIL, INCONCLUSIVE, SKIPPED, NOT_JUDGED = "PASS", "FAIL", "INCONCLUSIVE", "SKIPPED", "NOT JUDGED"
METRIC_NAMES = {"accuracy": "accuracy", "precision": "precision", "recall": "recall", "f1": "F1",
                "fpr": "false-alarm rate", "auc": "ROC AUC", "brier": "Brier score", "macro_f1": "macro F1"}


def metric_name(metric: str) -> str:
    """A metric in words: 'recall', 'recall of class porosity'."""
    if metric.startswith(CLASS_RECALL):
        return f"recall of class {metric[len(CLASS_RECALL):]}"
    return METRIC_NAMES.get(metric, metric)


def support_text(metric: str) -> str:
    """What a metric's support counts: 'defects', 'rows of class porosity'."""
    if metric.startswith(CLASS_RECALL):
        return f"rows of class {metric[len(CLASS_RECALL):]}"
    return SUPPORT_OF.get(metric, "labelled")


@dataclass(frozen=True)
class Check:
    """One judged number: overall or one slice."""

    slice: dict[str, str]
    metric: str
    status: str
    evidence: str
    value: float | None = None
    low: float | None = None
    high: float | None = None
    bound: float | None = None
    support: int | None = None
    candidate: float | None = None
    champion: float | None = None


@dataclass(frozen=True)
class Criterion:
    """One criterion of the plan with its checks and its own outcome."""

    kind: str
    title: str
    status: str
    checks: tuple[Check, ...] = ()
    note: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def failing(self) -> list[Check]:
        """The checks that failed."""
        return [c for c in self.checks if c.status == FAIL]

    def as_dict(self) -> dict[str, Any]:
        """Plain data for the stored result."""
        return asdict(self)


def judge(value: float | None, low: float | None, high: float | None, minimum: float | None,
          maximum: float | None, decision: str) -> str:
    """PASS / FAIL / INCONCLUSIVE of an estimate with its interval against a bound (see module doc)."""
    if value is None:
        return NOT_JUDGED
    low = value if low is None else low
    high = value if high is None else high
    if minimum is not None:
        if high < minimum:
            return FAIL
        if decision == "pass_on_evidence":
            return PASS if low >= minimum else INCONCLUSIVE
        return INCONCLUSIVE if value < minimum else PASS
    assert maximum is not None
    if low > maximum:
        return FAIL
    if decision == "pass_on_evidence":
        return PASS if high <= maximum else INCONCLUSIVE
    return INCONCLUSIVE if value > maximum else PASS


def combine(statuses: list[str]) -> str:
    """The worst outcome: FAIL, then INCONCLUSIVE, then PASS (checks not judged do not count)."""
    judged = [s for s in statuses if s not in (NOT_JUDGED, SKIPPED)]
    if FAIL in judged:
        return FAIL
    if INCONCLUSIVE in judged or not judged:
        return INCONCLUSIVE
    return PASS


def support_of(row: dict[str, Any], metric: str) -> int:
    """The count a metric's interval rests on: defects for recall, good parts for false alarms, ..."""
    if metric.startswith(CLASS_RECALL):
        return int(row.get(f"support_{metric}") or 0)
    if metric in ("accuracy", "macro_f1") or "positives" not in row:
        return int(row["labelled"])
    return int({"recall": row["positives"], "fpr": row["negatives"], "precision": row["cand_flagged"] or 0,
                "auc": min(row["positives"], row["negatives"])}.get(metric, row["labelled"]))


def _f(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _slice_of(row: dict[str, Any], by: tuple[str, ...]) -> dict[str, str]:
    return {d: ("(missing)" if row[d] is None else str(row[d])) for d in by}


def _label(slice_: dict[str, str]) -> str:
    return ", ".join(f"{k} {v}" for k, v in slice_.items()) or "overall"


def threshold_criterion(rule: ThresholdRule, table: pl.DataFrame, confidence: float, decision: str,
                        kind: str) -> Criterion:
    """A candidate metric against min or max, overall or on every slice of `rule.by`."""
    name, pct = metric_name(rule.metric), f"{confidence:.0%}"
    bound_text = f">= {rule.min}" if rule.min is not None else f"<= {rule.max}"
    checks = []
    for row in table.iter_rows(named=True):  # one row per slice, not per record
        slice_ = _slice_of(row, rule.by)
        support = support_of(row, rule.metric)
        value = row.get(f"cand_{rule.metric}")
        low, high = row.get(f"cand_{rule.metric}_low"), row.get(f"cand_{rule.metric}_high")
        if rule.by and support < rule.min_support:
            checks.append(Check(slice_, rule.metric, NOT_JUDGED,
                                f"{_label(slice_)}: support {support} {support_text(rule.metric)} < {rule.min_support};"
                                f" reported, not judged ({name} {_f(value)})", value, low, high, None, support))
            continue
        status = judge(value, low, high, rule.min, rule.max, decision)
        interval = f" ({pct} CI {_f(low)} to {_f(high)})" if low is not None and high is not None else \
            " (no interval for this metric: judged on the estimate)"
        checks.append(Check(slice_, rule.metric, status,
                            f"{_label(slice_)}: {name} {_f(value)}{interval}, required {bound_text}; "
                            f"{support} {support_text(rule.metric)}", value, low, high,
                            rule.min if rule.min is not None else rule.max, support))
    scope = f" on every {' x '.join(rule.by)}" if rule.by else " overall"
    title = f"{name} {bound_text}{scope}" + (f" (support >= {rule.min_support})" if rule.by else "")
    return Criterion(kind, title, combine([c.status for c in checks]), tuple(checks))


def regression_criterion(rule: RegressionRule, table: pl.DataFrame, confidence: float, decision: str
                         ) -> Criterion:
    """Candidate minus champion against the allowed drop, judged on the paired interval of the difference."""
    name, pct = metric_name(rule.metric), f"{confidence:.0%}"
    lower_better = rule.metric in LOWER_IS_BETTER
    test = {"auc": "DeLong", "brier": "paired normal"}.get(rule.metric, "Newcombe paired score")
    checks = []
    for row in table.iter_rows(named=True):
        slice_ = _slice_of(row, rule.by)
        support = support_of(row, rule.metric)
        diff, low, high = (row.get(f"diff_{rule.metric}{s}") for s in ("", "_low", "_high"))
        cand, champ = row.get(f"cand_{rule.metric}"), row.get(f"champ_{rule.metric}")
        # "Gain": positive when the candidate is better, whichever direction the metric runs.
        gain, g_low, g_high = (diff, low, high) if not lower_better else \
            (None if diff is None else -diff, None if high is None else -high, None if low is None else -low)
        if rule.by and support < rule.min_support:
            checks.append(Check(slice_, rule.metric, NOT_JUDGED,
                                f"{_label(slice_)}: support {support} {support_text(rule.metric)} < {rule.min_support};"
                                " reported, not judged", gain, g_low, g_high, None, support, cand, champ))
            continue
        status = judge(gain, g_low, g_high, -rule.max_drop, None, decision)
        word = "better" if (gain or 0) >= 0 else "worse"
        checks.append(Check(
            slice_, rule.metric, status,
            f"{_label(slice_)}: {name} {_f(cand)} vs champion {_f(champ)}, {abs(gain or 0):.3f} {word} "
            f"({pct} CI of the gain {_f(g_low)} to {_f(g_high)}, {test}); allowed drop {rule.max_drop}",
            gain, g_low, g_high, -rule.max_drop, support, cand, champ))
    scope = f" on every {' x '.join(rule.by)}" if rule.by else " overall"
    title = f"{name} not worse than the champion by more than {rule.max_drop}{scope}"
    return Criterion("non_regression", title, combine([c.status for c in checks]), tuple(checks),
                     note=f"paired test: {test}")


def verdict(criteria: list[Criterion]) -> str:
    """The run's verdict: FAIL if any criterion fails, INCONCLUSIVE if any cannot be decided, else PASS."""
    statuses = [c.status for c in criteria if c.status != SKIPPED]
    if FAIL in statuses:
        return FAIL
    if INCONCLUSIVE in statuses or not statuses:
        return INCONCLUSIVE
    return PASS
