"""`make bench`: what an INT8 variant (NNCF post-training quantization) and an FP16 variant buy on this PC's CPU.

The sample's seam CNN (~650M multiply-adds per image), a tabular MLP (4-32-1) and a wide one (4-1024-1024-512-1,
1.6M weights: as big as a tabular model gets), each FP32 / FP16 / INT8 on OpenVINO CPU, batch 1, latency hint; interleaved rounds (FP32, FP16, INT8, FP32, ...) so that background load hits all alike.
Prints median p50 / p99 and throughput per version and the FP32/INT8 ratio, with the load average.

LINEPROOF_BENCH_ROUNDS sets the rounds (5), LINEPROOF_BENCH_SECONDS the seconds per run (3).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).parents[2]
sys.path.insert(0, str(ROOT))

from app.core.models.bench import BenchConfig, run_benchmark  # noqa: E402
from app.core.models.model_import import import_model  # noqa: E402
from app.core.models.registry import register_model  # noqa: E402
from app.core.models.variants import make_variant  # noqa: E402
from app.core.store.project import Project  # noqa: E402

ROUNDS = int(os.environ.get("LINEPROOF_BENCH_ROUNDS", 5))
SECONDS = float(os.environ.get("LINEPROOF_BENCH_SECONDS", 3))


def _case(project: Project, name: str, versions: list[str]) -> None:
    config = BenchConfig(runtime="openvino", batch=1, seconds=SECONDS, hint="latency")
    got: dict[str, list[tuple[float, float, float]]] = {v: [] for v in versions}
    load = os.getloadavg()[0]
    for _ in range(ROUNDS):
        for v in versions:
            r = run_benchmark(project, v, config)
            if r.status == "ok":
                got[v].append((r.figures["p50_ms"], r.figures["p99_ms"], r.figures["throughput"]))
            else:
                print(f"  {v}: {r.reason}")
    print(f"[{name}] OpenVINO CPU, batch 1, latency hint, {ROUNDS} interleaved rounds of {SECONDS:g} s "
          f"(load {load:.2f} -> {os.getloadavg()[0]:.2f})")
    base = statistics.median(g[0] for g in got[versions[0]]) if got[versions[0]] else None
    for v in versions:
        if not got[v]:
            continue
        p50 = [g[0] for g in got[v]]
        print(f"  {v:<22} p50 {statistics.median(p50):8.3f} ms (range {min(p50):.3f}-{max(p50):.3f}), p99 "
              f"{statistics.median(g[1] for g in got[v]):8.3f} ms, {statistics.median(g[2] for g in got[v]):8.0f} "
              f"inf/s" + (f", FP32/this {base / statistics.median(p50):.2f}x" if base else ""))


def _wide_mlp(path: Path, widths: tuple[int, ...] = (1024, 1024, 512)) -> Path:
    """4 features -> `widths` (ReLU) -> defect probability, fixed He-scaled weights: does a bigger tabular network
    let INT8 pay at batch 1?"""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(9)
    inits, nodes, x, fan_in = [], [], "X", 4
    for i, width in enumerate((*widths, 1)):
        w = (rng.standard_normal((fan_in, width)) * np.sqrt(2 / fan_in)).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(np.zeros(width, np.float32), f"b{i}")]
        nodes += [helper.make_node("MatMul", [x, f"w{i}"], [f"m{i}"]), helper.make_node("Add", [f"m{i}", f"b{i}"], [f"a{i}"])]
        nodes.append(helper.make_node("Relu" if i < len(widths) else "Sigmoid", [f"a{i}"], [f"h{i}"]))
        x, fan_in = f"h{i}", width
    graph = helper.make_graph(nodes, "wide_mlp", [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["n", 4])],
                              [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["n", 1])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def main() -> int:
    """The CNN and the two MLPs, each with its two variants."""
    from app.sample.models import build_vision_cnn
    from tests.test_variants import FEATURES, _dataset, _mlp

    with tempfile.TemporaryDirectory(prefix="lineproof-bench-variants-") as tmp_name:
        tmp = Path(tmp_name)
        images = np.random.default_rng(5).random((64, 3, 224, 224), dtype=np.float32)
        np.savez(tmp / "seams.npz", image=images)
        with Project.create(tmp / "p", "variants") as project:
            from app.core.store.datasets import register_dataset

            register_model(project, "seam", "vision", "binary")
            import_model(project, build_vision_cnn(tmp), "seam", "v1")
            make_variant(project, "seam:v1", "fp16")
            make_variant(project, "seam:v1", "int8", calibration=str(tmp / "seams.npz"), samples=64)
            register_model(project, "m", "MLP", "binary")
            import_model(project, _mlp(tmp / "mlp.onnx"), "m", "v1", card={"features": FEATURES})
            register_dataset(project, "holdout", "held out", "validation", _dataset(tmp / "holdout.parquet"))
            make_variant(project, "m:v1", "fp16")
            make_variant(project, "m:v1", "int8", calibration="holdout", samples=300)
            register_model(project, "w", "wide MLP", "binary")
            import_model(project, _wide_mlp(tmp / "wide.onnx"), "w", "v1", card={"features": FEATURES})
            make_variant(project, "w:v1", "fp16")
            make_variant(project, "w:v1", "int8", calibration="holdout", samples=300)
            _case(project, "seam CNN 1x3x224x224", ["seam:v1", "seam:v1-fp16", "seam:v1-int8"])
            _case(project, "tabular MLP 4-32-1", ["m:v1", "m:v1-fp16", "m:v1-int8"])
            _case(project, "wide MLP 4-1024-1024-512-1", ["w:v1", "w:v1-fp16", "w:v1-int8"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
