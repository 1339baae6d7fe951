"""Validation plans: acceptance criteria in TOML, agreed before the run, parsed strictly and hashed.

A typo in a plan must never weaken it silently, so unknown tables, keys, metrics and dimensions are errors.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass, field
from typing import Any

from app.core.errors import LineproofError

THRESHOLD_METRICS = ("accuracy", "precision", "recall", "f1", "fpr", "auc", "brier")
# Metrics with a paired test between two models scored on the same rows (see paired.py).
PAIRED_METRICS = ("accuracy", "recall", "fpr", "auc", "brier")
# Multiclass models (multiclass.py): accuracy, macro F1 and the recall of one class, written "recall:<class>".
MULTICLASS_METRICS = ("accuracy", "macro_f1")
MULTICLASS_PAIRED = ("accuracy",)
CLASS_RECALL = "recall:"
LOWER_IS_BETTER = frozenset({"fpr", "brier"})
DECISIONS = ("fail_on_evidence", "pass_on_evidence")
PERCENTILES = ("p50", "p90", "p95", "p99", "p999", "max", "mean")
SUPPORT_OF = {"recall": "defects", "fpr": "good parts", "precision": "flagged", "accuracy": "labelled",
              "f1": "labelled", "brier": "labelled", "auc": "of the rarer class"}

EXAMPLE_PLAN = '''# Acceptance plan: agreed before the run; its sha256 is audited and every result refers to it.
[plan]
name = "Release check"
label = "label"            # 0 = good, 1 = defect
record_id = "record_id"
confidence = 0.95
decision = "fail_on_evidence"  # or "pass_on_evidence": a criterion passes only when the interval proves it

[[overall]]
metric = "recall"
min = 0.60

[[overall]]
metric = "fpr"
max = 0.12

[[per_slice]]
by = ["line"]
metric = "recall"
min = 0.50
min_support = 100          # slices with fewer defects are reported, not judged

[[non_regression]]
metric = "auc"
max_drop = 0.01

[[non_regression]]
by = ["line"]
metric = "fpr"
max_drop = 0.02            # false-alarm rate may rise by at most 2 points on any line
min_support = 200

[parity]
max_abs_diff = 0.0001
min_agreement = 0.999

[latency]
percentile = "p99"
max_ms = 5.0
runtime = "onnxruntime"
device = "CPU"
batch = 1
source = "recorded"        # or "run": benchmark now when no run is recorded

[data]
no_overlap_with_training = true
overlap_key = "record_id"  # or "row": a hash of the feature values
min_label_coverage = 0.95
'''


class PlanError(LineproofError):
    """The plan cannot be used; nothing was run."""


@dataclass(frozen=True)
class ThresholdRule:
    """A metric must stay above `min` or below `max`, overall (by == ()) or on every slice of `by`."""

    metric: str
    min: float | None
    max: float | None
    by: tuple[str, ...] = ()
    min_support: int = 30


@dataclass(frozen=True)
class RegressionRule:
    """The candidate may be worse than the champion by at most `max_drop` (in the metric's own units)."""

    metric: str
    max_drop: float
    by: tuple[str, ...] = ()
    min_support: int = 30


@dataclass(frozen=True)
class ParityRule:
    """ONNX Runtime and OpenVINO must give the same scores and decisions."""

    max_abs_diff: float = 1e-4
    min_agreement: float = 0.999
    models: tuple[str, ...] = ("candidate",)
    precision: str = "f32"


@dataclass(frozen=True)
class LatencyRule:
    """A latency percentile of the candidate must stay within a budget on a runtime, device and batch."""

    max_ms: float
    percentile: str = "p99"
    runtime: str = "onnxruntime"
    device: str = "CPU"
    batch: int = 1
    source: str = "recorded"
    seconds: float = 5.0


@dataclass(frozen=True)
class DataRule:
    """Checks of the held-out data itself."""

    no_overlap_with_training: bool = True
    overlap_key: str = "record_id"
    min_label_coverage: float | None = None


@dataclass(frozen=True)
class ValidationPlan:
    """A parsed plan with the exact text it came from and that text's sha256."""

    text: str
    sha256: str
    name: str = "Validation plan"
    dataset: str = ""
    label: str = "label"
    record_id: str = "record_id"
    confidence: float = 0.95
    decision: str = "fail_on_evidence"
    batch_size: int = 8192
    threads: int = 0
    overall: tuple[ThresholdRule, ...] = ()
    per_slice: tuple[ThresholdRule, ...] = ()
    non_regression: tuple[RegressionRule, ...] = ()
    parity: ParityRule | None = None
    latency: LatencyRule | None = None
    data: DataRule = field(default_factory=DataRule)

    @property
    def dimensions(self) -> tuple[str, ...]:
        """Every slice dimension the plan names, in first-use order."""
        seen: dict[str, None] = {}
        for rule in (*self.per_slice, *self.non_regression):
            seen.update(dict.fromkeys(rule.by))
        return tuple(seen)

    @property
    def groupings(self) -> tuple[tuple[str, ...], ...]:
        """The slice groupings to compute: () for overall, then each distinct `by`."""
        seen: dict[tuple[str, ...], None] = {(): None}
        for rule in (*self.per_slice, *self.non_regression):
            seen[rule.by] = None
        return tuple(seen)

    @property
    def needs_champion(self) -> bool:
        """Non-regression criteria compare with a champion."""
        return bool(self.non_regression) or "champion" in (self.parity.models if self.parity else ())


_TOP = {"plan", "overall", "per_slice", "non_regression", "parity", "latency", "data"}
_PLAN_KEYS = {"name", "dataset", "label", "record_id", "confidence", "decision", "batch_size", "threads"}


def _where(section: str, index: int | None) -> str:
    return f"[[{section}]] #{index + 1}" if index is not None else f"[{section}]"


def _keys(table: dict[str, Any], allowed: set[str], where: str, source: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise PlanError(f"{source}: unknown key {unknown[0]!r} in {where}.",
                        f"Known keys there: {', '.join(sorted(allowed))}.")


def _number(table: dict[str, Any], key: str, where: str, source: str, default: Any = None,
            low: float | None = None, high: float | None = None) -> Any:
    value = table.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PlanError(f"{source}: {where} {key} = {value!r} is not a number.", f"Write e.g. {key} = 0.9")
    if (low is not None and value < low) or (high is not None and value > high):
        raise PlanError(f"{source}: {where} {key} = {value} is outside {low}..{high}.", "Correct the value.")
    return value


def _metric(table: dict[str, Any], allowed: tuple[str, ...], where: str, source: str) -> str:
    metric = table.get("metric")
    multiclass = MULTICLASS_METRICS if allowed == THRESHOLD_METRICS else MULTICLASS_PAIRED
    if metric in multiclass or isinstance(metric, str) and metric.startswith(CLASS_RECALL) and \
            len(metric) > len(CLASS_RECALL):
        return metric  # a multiclass metric: checked against the model's task and classes before the run
    if metric not in allowed:
        extra = " (precision and F1 have no paired test; judge them with a threshold instead)" \
            if allowed == PAIRED_METRICS and metric in ("precision", "f1") else ""
        raise PlanError(f"{source}: {where} has metric {metric!r}, which this plan type cannot judge{extra}.",
                        f"Use one of: {', '.join(allowed)} (multiclass models: {', '.join(multiclass)}, "
                        "recall:<class>).")
    return metric


def _by(table: dict[str, Any], where: str, source: str, required: bool) -> tuple[str, ...]:
    by = table.get("by", [])
    if isinstance(by, str):
        by = [by]
    if not isinstance(by, list) or not all(isinstance(d, str) and d for d in by):
        raise PlanError(f"{source}: {where} by = {by!r} is not a list of column names.", 'Write by = ["line"].')
    if required and not by:
        raise PlanError(f"{source}: {where} names no slice dimension.", 'Add by = ["line"] (or another column).')
    if len(set(by)) != len(by):
        raise PlanError(f"{source}: {where} names a dimension twice.", "Name each dimension once.")
    return tuple(by)


def _threshold(table: dict[str, Any], where: str, source: str, per_slice: bool) -> ThresholdRule:
    _keys(table, {"metric", "min", "max", "by", "min_support"}, where, source)
    metric = _metric(table, THRESHOLD_METRICS, where, source)
    low, high = _number(table, "min", where, source), _number(table, "max", where, source)
    if (low is None) == (high is None):
        raise PlanError(f"{source}: {where} needs exactly one of min or max.",
                        "e.g. min = 0.9 for recall, max = 0.05 for fpr.")
    return ThresholdRule(metric, low, high, _by(table, where, source, per_slice),
                         int(_number(table, "min_support", where, source, 30, 0)))


def _regression(table: dict[str, Any], where: str, source: str) -> RegressionRule:
    _keys(table, {"metric", "max_drop", "by", "min_support"}, where, source)
    metric = _metric(table, PAIRED_METRICS, where, source)
    drop = _number(table, "max_drop", where, source, low=0.0, high=1.0)
    if drop is None:
        raise PlanError(f"{source}: {where} needs max_drop.", "e.g. max_drop = 0.01 (one point of the metric).")
    return RegressionRule(metric, float(drop), _by(table, where, source, False),
                          int(_number(table, "min_support", where, source, 30, 0)))


def _list(doc: dict[str, Any], name: str, source: str) -> list[dict[str, Any]]:
    items = doc.get(name, [])
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise PlanError(f"{source}: {name} must be written as [[{name}]] tables.", "See the example plan.")
    return items


def _table(doc: dict[str, Any], name: str, source: str) -> dict[str, Any] | None:
    table = doc.get(name)
    if table is not None and not isinstance(table, dict):
        raise PlanError(f"{source}: {name} must be a [{name}] table.", "See the example plan.")
    return table


def parse_plan(text: str, source: str = "plan") -> ValidationPlan:
    """Parse and check a plan's TOML text; raise PlanError naming the line, table or key at fault."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PlanError(f"{source} is not valid TOML: {exc}.", "Fix the line named; the example plan shows the "
                                                               "format.") from exc
    unknown = sorted(set(doc) - _TOP)
    if unknown:
        raise PlanError(f"{source}: unknown table {unknown[0]!r}.", f"Known tables: {', '.join(sorted(_TOP))}.")
    head = _table(doc, "plan", source) or {}
    _keys(head, _PLAN_KEYS, "[plan]", source)
    decision = head.get("decision", "fail_on_evidence")
    if decision not in DECISIONS:
        raise PlanError(f"{source}: [plan] decision = {decision!r}.", f"Use one of {', '.join(DECISIONS)}.")
    overall = tuple(_threshold(t, _where("overall", i), source, False) for i, t in
                    enumerate(_list(doc, "overall", source)))
    if any(rule.by for rule in overall):
        raise PlanError(f"{source}: [[overall]] criteria cannot have `by`.", "Move them to [[per_slice]].")
    per_slice = tuple(_threshold(t, _where("per_slice", i), source, True) for i, t in
                      enumerate(_list(doc, "per_slice", source)))
    regressions = tuple(_regression(t, _where("non_regression", i), source) for i, t in
                        enumerate(_list(doc, "non_regression", source)))
    plan = ValidationPlan(
        text=text, sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        name=str(head.get("name", "Validation plan")), dataset=str(head.get("dataset", "")),
        label=str(head.get("label", "label")), record_id=str(head.get("record_id", "record_id")),
        confidence=float(_number(head, "confidence", "[plan]", source, 0.95, 0.5, 0.999)),
        decision=decision, batch_size=int(_number(head, "batch_size", "[plan]", source, 8192, 1, 1 << 22)),
        threads=int(_number(head, "threads", "[plan]", source, 0, 0, 1024)),
        overall=overall, per_slice=per_slice, non_regression=regressions,
        parity=_parity(_table(doc, "parity", source), source),
        latency=_latency(_table(doc, "latency", source), source),
        data=_data(_table(doc, "data", source), source))
    if not (plan.overall or plan.per_slice or plan.non_regression or plan.parity or plan.latency):
        raise PlanError(f"{source} has no criteria.", "Add at least one [[overall]], [[per_slice]], "
                                                      "[[non_regression]], [parity] or [latency] table.")
    return plan


def _parity(table: dict[str, Any] | None, source: str) -> ParityRule | None:
    if table is None:
        return None
    _keys(table, {"max_abs_diff", "min_agreement", "models", "precision"}, "[parity]", source)
    models = table.get("models", ["candidate"])
    if not isinstance(models, list) or not models or set(models) - {"candidate", "champion"}:
        raise PlanError(f"{source}: [parity] models = {models!r}.", 'Use ["candidate"] or ["candidate", "champion"].')
    precision = table.get("precision", "f32")
    if precision not in ("f32", "f16", "bf16", "default"):
        raise PlanError(f"{source}: [parity] precision = {precision!r}.", "Use f32, f16, bf16 or default.")
    return ParityRule(float(_number(table, "max_abs_diff", "[parity]", source, 1e-4, 0.0)),
                      float(_number(table, "min_agreement", "[parity]", source, 0.999, 0.0, 1.0)),
                      tuple(models), precision)


def _latency(table: dict[str, Any] | None, source: str) -> LatencyRule | None:
    if table is None:
        return None
    _keys(table, {"max_ms", "percentile", "runtime", "device", "batch", "source", "seconds"}, "[latency]", source)
    budget = _number(table, "max_ms", "[latency]", source, low=0.0)
    if budget is None:
        raise PlanError(f"{source}: [latency] needs max_ms.", "e.g. max_ms = 5.0 (the budget for the percentile).")
    rule = LatencyRule(float(budget), str(table.get("percentile", "p99")), str(table.get("runtime", "onnxruntime")),
                       str(table.get("device", "CPU")), int(_number(table, "batch", "[latency]", source, 1, 1)),
                       str(table.get("source", "recorded")),
                       float(_number(table, "seconds", "[latency]", source, 5.0, 0.5, 600)))
    if rule.percentile not in PERCENTILES:
        raise PlanError(f"{source}: [latency] percentile = {rule.percentile!r}.", f"Use one of {', '.join(PERCENTILES)}.")
    if rule.runtime not in ("onnxruntime", "openvino"):
        raise PlanError(f"{source}: [latency] runtime = {rule.runtime!r}.", "Use onnxruntime or openvino.")
    if rule.source not in ("recorded", "run"):
        raise PlanError(f"{source}: [latency] source = {rule.source!r}.", 'Use "recorded" or "run".')
    return rule


def _data(table: dict[str, Any] | None, source: str) -> DataRule:
    if table is None:
        return DataRule()
    _keys(table, {"no_overlap_with_training", "overlap_key", "min_label_coverage"}, "[data]", source)
    key = table.get("overlap_key", "record_id")
    if key not in ("record_id", "row"):
        raise PlanError(f"{source}: [data] overlap_key = {key!r}.", 'Use "record_id" or "row".')
    return DataRule(bool(table.get("no_overlap_with_training", True)), key,
                    _number(table, "min_label_coverage", "[data]", source, None, 0.0, 1.0))


BINARY_ONLY = frozenset(THRESHOLD_METRICS) - {"accuracy"}


def check_plan_task(plan: ValidationPlan, task: str, classes: list[str], version: str) -> None:
    """Raise PlanError when a criterion names a metric the model's task has not (recall of a binary detector vs
    the recall of one class of a multiclass model), or a class the model does not know."""
    rules = (*plan.overall, *plan.per_slice, *plan.non_regression)
    for rule in rules:
        m = rule.metric
        if task == "binary" and (m in MULTICLASS_METRICS and m != "accuracy" or m.startswith(CLASS_RECALL)):
            raise PlanError(f"The plan judges {m!r}, a multiclass metric, but {version} is a binary model.",
                            f"Use {', '.join(THRESHOLD_METRICS)} for a binary model.")
        if task == "multiclass" and m in BINARY_ONLY:
            raise PlanError(f"The plan judges {m!r}, but {version} is a multiclass model.",
                            f"Judge it on accuracy, macro_f1 or recall:<class> (classes: {', '.join(classes)}).")
        if m.startswith(CLASS_RECALL) and m[len(CLASS_RECALL):] not in classes:
            raise PlanError(f"The plan judges {m!r}, but {version} has no class {m[len(CLASS_RECALL):]!r}.",
                            f"Its classes: {', '.join(classes)}.")


def check_plan_columns(plan: ValidationPlan, columns: set[str], features: dict[str, list[str]],
                       dataset_name: str) -> None:
    """Raise PlanError before any inference if the dataset lacks a column the plan or a model needs."""
    needs = [(plan.label, "[plan] label"), *[(d, "a `by` dimension") for d in plan.dimensions]]
    if plan.data.no_overlap_with_training and plan.data.overlap_key == "record_id":
        needs.append((plan.record_id, "[plan] record_id (for the overlap check)"))
    for column, why in needs:
        if column not in columns:
            raise PlanError(f"The dataset {dataset_name} has no column {column!r}, named as {why}.",
                            f"Its columns: {', '.join(sorted(columns))}. Correct the plan or choose another dataset.")
    for version, names in features.items():
        missing = [f for f in names if f not in columns]
        if not names:
            raise PlanError(f"{version}'s model card names no input features.",
                            "Add the feature column names to the model card ('features') in Models.")
        if missing:
            raise PlanError(f"The dataset {dataset_name} lacks {version}'s input feature(s): {', '.join(missing)}.",
                            "Choose a dataset with every feature the model card lists.")
