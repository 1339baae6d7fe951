"""`make bench`: validation of weld-defect v2 against v1 on 1M held-out rows under the sample's release plan.
Reports the time, its split (load, inference per model and runtime, metrics), and the rows/s of the
validation's ONNX Runtime scoring function against a bare `session.run` loop over the same matrix and batch size,
interleaved A-B / B-A. Target: the validation's scoring within 1.2x of the bare runtime.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).parents[2]
sys.path.insert(0, str(ROOT))

from app.core.models.model_import import import_model  # noqa: E402
from app.core.models.registry import register_model  # noqa: E402
from app.core.models.validation import parse_plan, run_validation  # noqa: E402
from app.core.models.validation.scoring import score_onnxruntime  # noqa: E402
from app.core.progress import NullProgress  # noqa: E402
from app.core.store.datasets import register_dataset  # noqa: E402
from app.core.store.project import Project  # noqa: E402
from app.sample import models  # noqa: E402
from app.sample.plant import FEATURES, validation_set  # noqa: E402
from app.sample.release_plan import RELEASE_PLAN  # noqa: E402

ROWS = 1_000_000
ROUNDS = 3
SCORING_ROUNDS = 9  # v1 scores 1M rows in ~60 ms: only many interleaved repeats rise above this VM's noise


def bare_rows_per_s(model: Path, x: np.ndarray, batch: int) -> float:
    """ONNX Runtime alone: one session, one warm-up batch, the same matrix and batch size, nothing else."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    session.run(None, {name: x[:batch]})  # the same one warm-up batch the validation does before timing
    started = time.perf_counter()
    for i in range(0, len(x), batch):
        session.run(None, {name: x[i:i + batch]})
    return len(x) / (time.perf_counter() - started)


def main() -> None:
    """Build the project, validate ROUNDS times interleaved with bare runs, print the figures."""
    with tempfile.TemporaryDirectory(prefix="lineproof-bench-val-") as tmp:
        tmp_path = Path(tmp)
        v1, _ = models.train_v1(tmp_path)
        v2, _ = models.train_v2(tmp_path)
        held = validation_set(ROWS)
        held.write_parquet(tmp_path / "held.parquet")
        project = Project.create(tmp_path / "project", "validation bench")
        register_model(project, "weld-defect", "weld defect", "binary")
        register_dataset(project, "holdout-2026H2", "1M held out", "validation", tmp_path / "held.parquet")
        card = {"features": list(FEATURES)}
        import_model(project, v1, "weld-defect", "v1", models.V1_THRESHOLD, card=card)
        import_model(project, v2, "weld-defect", "v2", models.V2_THRESHOLD, card=card)
        # The sample's plan; latency is the benchmark harness's business, overlap needs the training pulls.
        text = RELEASE_PLAN.split("[latency]")[0] + "[data]\nno_overlap_with_training = false\n"
        plan = parse_plan(text)
        x = np.ascontiguousarray(held.select(FEATURES).to_numpy().astype(np.float32))
        runs = []
        for _ in range(ROUNDS):
            started = time.perf_counter()
            run = run_validation(project, plan, "weld-defect:v2", "weld-defect:v1")
            runs.append((time.perf_counter() - started, run))
        project.close()
        # The validation's own scoring function against the bare loop, interleaved A-B / B-A.
        ours_rps, bare = {"v1": [], "v2": []}, {"v1": [], "v2": []}
        for i in range(SCORING_ROUNDS):
            for key, path in (("v2", v2), ("v1", v1)):
                order = (0, 1) if i % 2 == 0 else (1, 0)
                for side in order:
                    if side == 0:
                        scored = score_onnxruntime(path, x, key, plan.batch_size, plan.threads, NullProgress(),
                                                   lambda _done: None)
                        ours_rps[key].append(ROWS / scored.seconds)
                    else:
                        bare[key].append(bare_rows_per_s(path, x, plan.batch_size))
    total = statistics.median(t for t, _ in runs)
    timing = {k: statistics.median(r.timing.get(k, 0.0) for _, r in runs) for k in runs[0][1].timing}
    inference = sum(v for k, v in timing.items() if k.endswith("_s") and ("onnxruntime" in k or "openvino" in k)
                    and not k.endswith("compile_s"))
    print(f"Validation of weld-defect:v2 vs v1 on {ROWS:,} held-out rows, {ROUNDS} runs (median), "
          f"verdict {runs[0][1].verdict}, identical results: {len({r.result_sha256 for _, r in runs}) == 1}")
    print(f"  total {total:.2f} s: load {timing['load_s']:.2f} s, inference {inference:.2f} s "
          f"({inference / total:.0%}), metrics {timing['metrics_s']:.2f} s ({timing['metrics_s'] / total:.0%}), "
          f"rest (plan, audit, store) {total - timing['load_s'] - inference - timing['metrics_s']:.2f} s")
    for key, role in (("v2", "candidate"), ("v1", "champion")):
        ours = statistics.median(ours_rps[key])
        theirs = statistics.median(bare[key])
        print(f"  {key} ({role}) ONNX Runtime scoring: {ours:,.0f} rows/s; bare session.run (batch "
              f"{plan.batch_size}): {theirs:,.0f} rows/s; time ours/bare x{theirs / ours:.3f} (target <= 1.2; "
              f"medians of {SCORING_ROUNDS} interleaved)")
    if "champion_openvino_s" in timing:
        print(f"  v1 on OpenVINO for parity: {ROWS / timing['champion_openvino_s']:,.0f} rows/s")


if __name__ == "__main__":
    main()
