"""The sample's plans: the release plan for weld-defect v2 (agreed limits, per line, against production v1) and the
acceptance plan for a cheaper INT8 / FP16 variant of v1 (no line worse than its parent, within the cycle budget)."""

RELEASE_PLAN = '''# Release plan for the weld seam defect detector (agreed with plant quality before the run).
[plan]
name = "weld-defect release"
dataset = "holdout-2026H2"
label = "label"
record_id = "record_id"
confidence = 0.95
decision = "fail_on_evidence"   # a criterion fails only when its interval says so

# The whole plant: enough defects caught, few false alarms, good ranking.
[[overall]]
metric = "recall"
min = 0.60

[[overall]]
metric = "fpr"
max = 0.12

[[overall]]
metric = "auc"
min = 0.85

# Every line must catch at least half of its defects.
[[per_slice]]
by = ["line"]
metric = "recall"
min = 0.50
min_support = 100

# Not worse than production v1: overall, and on every line.
[[non_regression]]
metric = "recall"
max_drop = 0.02

[[non_regression]]
metric = "auc"
max_drop = 0.01

[[non_regression]]
by = ["line"]
metric = "fpr"
max_drop = 0.02
min_support = 200

[[non_regression]]
by = ["line"]
metric = "auc"
max_drop = 0.02
min_support = 100

[parity]
models = ["candidate", "champion"]
max_abs_diff = 0.0001
min_agreement = 0.999

[latency]
percentile = "p99"
max_ms = 2.0
runtime = "onnxruntime"
device = "CPU"
batch = 1
source = "run"     # measure on this PC when no quiet run is recorded
seconds = 3

[data]
no_overlap_with_training = true
overlap_key = "record_id"
min_label_coverage = 0.95
'''

VARIANT_PLAN = '''# Acceptance plan for a cheaper variant (INT8 or FP16) of the production weld-defect model:
# lineproof variant PROJECT weld-defect:v1 --int8 --calibration train-v1, then validate it against its parent.
[plan]
name = "weld-defect variant"
dataset = "holdout-2026H2"
label = "label"
record_id = "record_id"
confidence = 0.95
decision = "fail_on_evidence"   # a line fails when its interval proves the drop; unproven either way: INCONCLUSIVE

# A variant buys speed, never accuracy: no line may lose defects or ranking against its parent.
[[non_regression]]
by = ["line"]
metric = "recall"
max_drop = 0.02
min_support = 100

[[non_regression]]
by = ["line"]
metric = "auc"
max_drop = 0.01
min_support = 100

# One seam at a time on this PC, within the robot's cycle budget.
[latency]
runtime = "openvino"
percentile = "p99"
max_ms = 1.0
batch = 1
source = "run"
seconds = 2

[data]
no_overlap_with_training = true
overlap_key = "record_id"
'''
