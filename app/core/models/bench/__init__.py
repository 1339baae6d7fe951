"""Hardware benchmarks of model versions, run in a child process and recorded with the hardware fingerprint."""

from app.core.models.bench.config import BenchConfig, BenchError
from app.core.models.bench.runner import BenchResult, run_benchmark

__all__ = ["BenchConfig", "BenchError", "BenchResult", "run_benchmark"]
