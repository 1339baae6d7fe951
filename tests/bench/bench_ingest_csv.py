"""`make bench`: CSV ingest (`lineproof ingest`, header-guessed mapping) against a bare DuckDB
`CREATE TABLE AS SELECT * FROM read_csv(...)` of the same file, interleaved pairs, each side in its own process
so that its peak RSS is its own. Target (issue #25): time and peak memory <= 1.3x / 1.5x the bare statement.

LINEPROOF_BENCH_ROWS sets the size (default 10M; use 2M on a 2-core laptop); LINEPROOF_BENCH_PAIRS the pairs (5).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).parents[2]))

from tests.bench.peak import PRINT_PEAK, peak_of  # noqa: E402

ROWS = int(os.environ.get("LINEPROOF_BENCH_ROWS", 10_000_000))
PAIRS = int(os.environ.get("LINEPROOF_BENCH_PAIRS", 5))


def make_csv(path: Path, rows: int) -> None:
    """A sensor log with continuous features, written in 1M-row chunks."""
    rng = np.random.default_rng(5)
    with open(path, "w", encoding="utf-8") as f:
        for start in range(0, rows, 1_000_000):
            n = min(1_000_000, rows - start)
            frame = pl.DataFrame({"record_id": [f"R{i:09d}" for i in range(start, start + n)]})
            frame = frame.with_columns(
                pl.lit("2026-03-01 10:00:00").alias("ts"), pl.lit("weld:v1").alias("model_version"),
                pl.Series("score", rng.random(n).round(6)), pl.Series("line", rng.choice(["L1", "L2", "L3"], n)),
                pl.Series("current_a", rng.normal(200, 15, n).round(4)),
                pl.Series("voltage", rng.normal(24, 1.5, n).round(4)),
                pl.Series("material", rng.choice(["steel", "alu"], n)))
            f.write(frame.write_csv(include_header=start == 0))


def _child(code: str) -> tuple[float, float]:
    """(seconds, peak RSS MB) of a Python child running `code` (it reports its own peak)."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code + "\n" + PRINT_PEAK], check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    return seconds, peak_of(done.stdout)


def time_ctas(csv: Path, work: Path) -> tuple[float, float]:
    db = work / "bare.duckdb"
    db.unlink(missing_ok=True)
    return _child(f"import duckdb; c = duckdb.connect({str(db)!r}); "
                  f"c.execute(\"CREATE TABLE t AS SELECT * FROM read_csv({str(csv)!r})\"); c.close()")


def time_ingest(csv: Path, work: Path) -> tuple[float, float]:
    folder = work / "proj"
    shutil.rmtree(folder, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "app", "init", str(folder)], check=True, capture_output=True)
    return _child(f"from app.cli import main\nassert main(['ingest', {str(folder)!r}, {str(csv)!r}, '-q']) == 0")


def main() -> int:
    """Interleaved pairs; median and range; the load average printed with them."""
    with tempfile.TemporaryDirectory(prefix="lineproof-bench-csv-") as tmp:
        work = Path(tmp)
        csv = work / "log.csv"
        make_csv(csv, ROWS)
        print(f"CSV ingest vs bare CTAS: {ROWS:,} rows, {csv.stat().st_size / 1e6:,.0f} MB, {PAIRS} interleaved pairs, "
              f"load {os.getloadavg()[0]:.2f}")
        ratios, bare, ours = [], [], []
        for _ in range(PAIRS):
            b = time_ctas(csv, work)
            o = time_ingest(csv, work)
            bare.append(b)
            ours.append(o)
            ratios.append(o[0] / b[0])
        print(f"  peak RSS       bare {statistics.median(m for _, m in bare):,.0f} MB, lineproof "
              f"{statistics.median(m for _, m in ours):,.0f} MB ("
              f"{statistics.median(m for _, m in ours) / statistics.median(m for _, m in bare):.2f}x; target <= 1.5x)")
        print(f"  bare CTAS      median {statistics.median(t for t, _ in bare):6.2f} s "
              f"(range {min(t for t, _ in bare):.2f}-{max(t for t, _ in bare):.2f})")
        print(f"  lineproof      median {statistics.median(t for t, _ in ours):6.2f} s "
              f"(range {min(t for t, _ in ours):.2f}-{max(t for t, _ in ours):.2f})")
        print(f"  ratio          median {statistics.median(ratios):6.2f}x (range {min(ratios):.2f}-{max(ratios):.2f}; "
              f"target <= 1.3x)  load now {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
