"""SIGKILL in the middle of a large import: the project opens afterwards with no trace of the partial import."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest

from app.core.store.ingest import import_predictions
from app.core.store.project import Project

ROWS = 1_500_000

INGEST_SCRIPT = textwrap.dedent("""
    import sys
    from app.core.store.ingest import import_predictions
    from app.core.progress import TaskProgress
    from app.core.store.project import Project
    def report(fraction, message):
        print(f"{fraction:.3f}", flush=True)
    with Project.open(sys.argv[1]) as project:
        import_predictions(project, sys.argv[2], progress=TaskProgress(report))
    print("DONE", flush=True)
""")


def _log(path: Path, start: int, rows: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    base = np.datetime64("2026-01-01T00:00:00", "s")
    pl.DataFrame({
        "record_id": np.char.add("K", np.arange(start, start + rows).astype(str)),
        "ts": (base + rng.integers(0, 86400 * 180, rows).astype("timedelta64[s]")).astype("datetime64[us]"),
        "model_version": np.full(rows, "weld:v1"), "score": rng.random(rows),
        "line": rng.choice(["L1", "L2", "L3"], rows), "current_a": rng.normal(220, 10, rows),
        "voltage_v": rng.normal(24, 1, rows)}).write_parquet(path, row_group_size=100_000)
    return path


@pytest.fixture(scope="module")
def big_log(tmp_path_factory) -> Path:
    return _log(tmp_path_factory.mktemp("kill") / "big.parquet", 0, ROWS, 1)


def _state(folder: Path) -> tuple:
    con = duckdb.connect(str(folder / "project.duckdb"), read_only=True)
    try:
        return (con.execute("SELECT count(*), count(DISTINCT import_id), round(sum(score), 6) FROM predictions").fetchall()[0],
                con.execute("SELECT count(*) FROM imports").fetchall()[0][0],
                con.execute("SELECT count(*) FROM audit_log").fetchall()[0][0])
    finally:
        con.close()


def _kill_mid_ingest(folder: Path, log: Path, kill_at: float, max_delay: float) -> bool:
    """Start an ingest in a child, SIGKILL it a random moment after its progress passes `kill_at`; False when
    the import finished before the signal landed (on a fast machine the end of an import is quick)."""
    proc = subprocess.Popen([sys.executable, "-c", INGEST_SCRIPT, str(folder), str(log)], stdout=subprocess.PIPE,
                            text=True, cwd=Path(__file__).parents[1])
    killed = False
    for line in proc.stdout:
        if line.strip() == "DONE":
            break
        if float(line) >= kill_at:
            time.sleep(random.uniform(0.0, max_delay))
            os.kill(proc.pid, signal.SIGKILL)
            killed = True
            break
    proc.wait()
    assert killed or proc.returncode == 0, f"the ingest failed by itself (exit {proc.returncode})"
    return proc.returncode == -signal.SIGKILL


def _fresh_project(folder: Path, tmp_path: Path) -> tuple:
    shutil.rmtree(folder, ignore_errors=True)
    with Project.create(folder, "kill test", slice_dimensions=("line",)) as project:
        import_predictions(project, _log(tmp_path / "earlier.parquet", 10_000_000, 5_000, 2))
    return _state(folder)


def _run_kills(tmp_path: Path, big_log: Path, times: int, moments: list[tuple[float, float]]) -> None:
    folder = tmp_path / "proj"
    earlier = _fresh_project(folder, tmp_path)
    assert earlier[0][0] == 5_000
    rolled_back = 0
    for i in range(times):
        kill_at, max_delay = random.choice(moments)
        killed = _kill_mid_ingest(folder, big_log, kill_at, max_delay)
        with Project.open(folder):  # opens: the WAL is replayed or discarded
            pass
        state = _state(folder)
        if state == earlier:
            assert killed, "the import finished, yet nothing of it is in the project"
            rolled_back += 1
            continue
        # The kill landed after COMMIT: then the whole file must be there, never a part of it.
        assert state[0][0] == 5_000 + ROWS and state[1] == 2, f"partial import visible after kill {i + 1}: {state}"
        earlier = _fresh_project(folder, tmp_path)
    assert rolled_back >= max(1, times // 2)
    with Project.open(folder) as project:  # the project still takes the import afterwards
        assert import_predictions(project, big_log).rows == ROWS
    state = _state(folder)
    assert state[0][0] == ROWS + 5_000 and state[1] == 2


def test_sigkill_during_ingest_leaves_earlier_imports_intact(tmp_path: Path, big_log: Path):
    random.seed(3)
    _run_kills(tmp_path, big_log, times=1, moments=[(0.45, 0.6)])  # inside the ~1.2 s INSERT


@pytest.mark.slow
def test_sigkill_during_ingest_repeatedly(tmp_path: Path, big_log: Path):
    random.seed(11)
    # Mostly inside the INSERT, sometimes right at COMMIT.
    _run_kills(tmp_path, big_log, times=10, moments=[(0.45, 1.0), (0.45, 1.0), (0.95, 0.08)])
