"""`make bench`: the benchmark harness's honesty. The sample CNN on OpenVINO CPU, latency and throughput hints,
Lineproof's child-process benchmark interleaved with OpenVINO's own benchmark_app, several rounds each.
Target: Lineproof's throughput >= 95% of benchmark_app's and its median latency within 10%.
"""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).parents[2]
sys.path.insert(0, str(ROOT))

from app.core.models.bench import BenchConfig, run_benchmark  # noqa: E402
from app.core.models.model_import import import_model  # noqa: E402
from app.core.models.registry import register_model  # noqa: E402
from app.core.store.project import Project  # noqa: E402
from app.sample.models import build_vision_cnn  # noqa: E402

ROUNDS = 5
SECONDS = 6
SHAPE = [1, 3, 224, 224]


def benchmark_app(model: Path, hint: str) -> dict[str, float]:
    """Median latency (ms) and throughput (FPS) as OpenVINO's benchmark_app reports them."""
    exe = Path(sys.executable).with_name("benchmark_app")
    out = subprocess.run([str(exe), "-m", str(model), "-d", "CPU", "-hint", hint, "-t", str(SECONDS),
                          "-shape", f"image[{','.join(map(str, SHAPE))}]"],
                         capture_output=True, text=True, check=True).stdout
    median = re.search(r"Median:\s+([\d.]+)\s*(ms|us)", out)
    fps = re.search(r"Throughput:\s+([\d.]+)\s*FPS", out)
    assert median and fps, out[-2000:]
    value = float(median.group(1)) / (1000.0 if median.group(2) == "us" else 1.0)
    return {"p50_ms": value, "throughput": float(fps.group(1))}


def main() -> None:
    """Interleave the two harnesses and print medians, ratios and the background load."""
    with tempfile.TemporaryDirectory(prefix="lineproof-bench-") as tmp:
        tmp_path = Path(tmp)
        model = build_vision_cnn(tmp_path)
        project = Project.create(tmp_path / "project", "harness bench")
        register_model(project, "cnn", "CNN", "multiclass")
        import_model(project, model, "cnn", "v1")
        report = {}
        for hint, mode in (("latency", "sync"), ("throughput", "async")):
            ours, theirs, loads = [], [], []
            config = BenchConfig(runtime="openvino", device="CPU", hint=hint, mode=mode, seconds=SECONDS,
                                 shapes={"image": SHAPE})
            for i in range(ROUNDS):
                # A-B then B-A: a drift in machine speed (other tenants, clocks) hits both sides alike.
                if i % 2 == 0:
                    theirs.append(benchmark_app(model, hint))
                run = run_benchmark(project, "cnn:v1", config)
                assert run.status == "ok", run.reason
                ours.append(run.figures)
                loads.append(run.background_load or 0.0)
                if i % 2 == 1:
                    theirs.append(benchmark_app(model, hint))
            row = {
                "lineproof_throughput": statistics.median(r["throughput"] for r in ours),
                "benchmark_app_throughput": statistics.median(r["throughput"] for r in theirs),
                "lineproof_p50_ms": statistics.median(r["p50_ms"] for r in ours),
                "benchmark_app_p50_ms": statistics.median(r["p50_ms"] for r in theirs),
                "background_load_max": max(loads),
            }
            row["throughput_ratio"] = row["lineproof_throughput"] / row["benchmark_app_throughput"]
            row["p50_ratio"] = row["lineproof_p50_ms"] / row["benchmark_app_p50_ms"]
            row["meets_target"] = row["throughput_ratio"] >= 0.95 and abs(row["p50_ratio"] - 1) <= 0.10
            report[hint] = {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}
            print(f"{hint:>10}: Lineproof {row['lineproof_throughput']:.0f} FPS p50 {row['lineproof_p50_ms']:.3f} ms"
                  f" | benchmark_app {row['benchmark_app_throughput']:.0f} FPS p50 {row['benchmark_app_p50_ms']:.3f}"
                  f" ms | throughput x{row['throughput_ratio']:.3f}, p50 x{row['p50_ratio']:.3f}, background load "
                  f"<= {row['background_load_max']:.1%}")
        project.close()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
