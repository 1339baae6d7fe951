"""Hardware benchmarks of model versions, run in a child process and recorded with the hardware fingerprint."""

from app.core.bench.config import BenchConfig, BenchError
from app.core.bench.runner import BenchResult, run_benchmark

__all__ = ["BenchConfig", "BenchError", "BenchResult", "run_benchmark"]
