"""What a benchmark run is asked to do, checked before any process starts."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from app.core.errors import LineproofError

RUNTIMES = ("onnxruntime", "openvino")
HINTS = ("latency", "throughput", "none")
MODES = ("sync", "async")
PRECISIONS = ("", "f32", "f16", "bf16")


class BenchError(LineproofError):
    """A benchmark cannot be configured or started as asked."""


@dataclass(frozen=True)
class BenchConfig:
    """One benchmark: runtime and device, shapes, threading, duration and inputs."""

    runtime: str = "onnxruntime"
    device: str = "CPU"
    batch: int = 1
    shapes: dict[str, list[int]] = field(default_factory=dict)  # input name -> full shape (dynamic dims filled)
    threads: int = 0  # 0: the runtime decides
    streams: int = 0  # OpenVINO streams / ONNX Runtime concurrent requests in async mode; 0: the runtime decides
    hint: str = "latency"  # OpenVINO performance hint
    precision: str = ""  # OpenVINO inference precision hint; "" keeps the device default
    mode: str = "sync"
    seconds: float = 10.0
    iterations: int = 0  # > 0: stop after this many inferences instead of after `seconds`
    warmup: int = 10
    seed: int = 0
    dataset_id: str = ""  # "" synthesises inputs from the signature
    timeout_s: float = 0.0  # 0: derived from seconds
    max_memory_mb: int = 0  # 0: 75% of this PC's memory

    def check(self) -> None:
        """Raise BenchError naming the first unusable setting."""
        if self.runtime not in RUNTIMES:
            raise BenchError(f"Unknown runtime {self.runtime!r}.", f"Use one of {', '.join(RUNTIMES)}.")
        if self.hint not in HINTS:
            raise BenchError(f"Unknown performance hint {self.hint!r}.", f"Use one of {', '.join(HINTS)}.")
        if self.mode not in MODES:
            raise BenchError(f"Unknown mode {self.mode!r}.", f"Use one of {', '.join(MODES)}.")
        if self.precision not in PRECISIONS:
            raise BenchError(f"Unknown precision hint {self.precision!r}.", "Use f32, f16 or bf16, or leave it empty.")
        if self.batch < 1:
            raise BenchError(f"Batch size {self.batch} is not positive.", "Use a batch size of 1 or more.")
        if self.seconds <= 0 and self.iterations <= 0:
            raise BenchError("The benchmark has neither a duration nor an iteration count.",
                             "Give --seconds or --iterations.")
        if self.threads < 0 or self.streams < 0 or self.warmup < 0:
            raise BenchError("Threads, streams and warm-up cannot be negative.", "Use 0 to let the runtime decide.")
        if self.runtime == "onnxruntime" and self.device not in ("CPU",):
            raise BenchError(f"ONNX Runtime is benchmarked on CPU here, not {self.device!r}.",
                             "Use --device CPU, or --runtime openvino for other devices.")

    @property
    def effective_timeout(self) -> float:
        """Seconds after which the benchmark process is killed."""
        if self.timeout_s > 0:
            return self.timeout_s
        return 120.0 + 3 * (self.seconds if self.iterations <= 0 else 60.0)

    def to_json(self) -> str:
        """Canonical JSON (stored with the run)."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchConfig:
        """Build from a stored dict, ignoring unknown keys from newer versions."""
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


def parse_shapes(items: list[str] | None) -> dict[str, list[int]]:
    """Input shapes written as NAME=D1,D2,... (or D1xD2; several separated by ';'), from the CLI or the form."""
    shapes: dict[str, list[int]] = {}
    for item in (part.strip() for raw in items or [] for part in raw.split(";")):
        if not item:
            continue
        name, _, dims = item.partition("=")
        try:
            values = [int(d) for d in dims.replace("x", ",").split(",") if d.strip()]
        except ValueError:
            values = []
        if not name.strip() or not values or any(v < 1 for v in values):
            raise LineproofError(f"Shape {item!r} is not NAME=D1,D2,... with positive sizes.",
                                 "Example: image=1,3,224,224")
        shapes[name.strip()] = values
    return shapes
