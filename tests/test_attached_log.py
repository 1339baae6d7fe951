"""An attached log (a hive-partitioned Parquet lake, never copied) gives the same slices as the same rows imported
into the project, on DuckDB and on Spark; a changed source is refused; bad sources are refused with nothing stored.

The log is generated here, not taken from the sample: continuous scores and sensors, a categorical `cell`
dimension beside the partition columns, a third of the rows without labels.
"""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from app.cli import main
from app.core.analysis.drift import DriftQuery, compute_drift
from app.core.analysis.freshness import silent_gaps
from app.core.analysis.slices import SliceQuery, compute_slices
from app.core.analysis.triage import with_triage
from app.core.engine.attach import AttachError, SourceChanged, attach_log, attached_logs, load_log
from app.core.engine.rows import EngineSettings, to_spark
from app.core.errors import SettingsError
from app.core.store.ingest import LabelMapping, PredictionMapping, import_labels, import_predictions
from app.core.store.project import Project

VERSION = "lake-model:v1"
COUNTS = ("n", "labelled", "positives", "tp", "fp", "tn", "fn", "n_recent", "nl_recent")
METRICS = ("coverage", "label_delay_days", "accuracy", "precision", "recall", "f1", "fpr", "auc", "brier",
           "recall_low", "recall_high", "auc_low", "auc_high", "auc_max_error")


def _log(rows: int = 60_000, seed: int = 7) -> tuple[pl.DataFrame, pl.DataFrame]:
    rng = np.random.default_rng(seed)
    plant = rng.choice(["P1", "P2"], rows)
    line = np.char.add(np.char.add(plant, "-L"), rng.integers(1, 4, rows).astype(str))
    start = np.datetime64("2026-03-02T00:00:00", "us")
    ts = start + rng.integers(0, 70 * 86400, rows).astype("timedelta64[s]")
    temp = rng.normal(350, 12, rows) + (line == "P2-L3") * 8
    temp += ((line == "P1-L2") & (ts >= np.datetime64("2026-04-10", "us"))) * 15  # a sensor moves on one line
    current = rng.lognormal(5, 0.2, rows)
    truth = (rng.random(rows) < 1 / (1 + np.exp(-(temp - 362) / 6))).astype(int)
    score = np.clip(1 / (1 + np.exp(-(temp - 358) / 7)) + rng.normal(0, 0.08, rows), 0, 1)
    log = pl.DataFrame({"record_id": [f"r{i:07d}" for i in range(rows)], "ts": pl.Series(ts),
                        "model_version": VERSION, "score": score,
                        "predicted_label": (score >= 0.5).astype(np.int32), "plant": plant, "line": line,
                        "cell": rng.choice(["weld-a", "weld-b", "seal"], rows),
                        # skewed: a few busy robots and hundreds that log a handful of rows
                        "asset": np.char.add("R", np.minimum(rng.zipf(1.6, rows), 400).astype(str)),
                        "tip_temp": temp,
                        "current_a": current})
    silent = (line == "P2-L1") & (ts >= np.datetime64("2026-03-22", "us")) & (ts < np.datetime64("2026-03-27", "us"))
    log = log.filter(~pl.Series(silent))  # a line that stopped sending for five days
    truth, ts = truth[~silent], ts[~silent]
    labelled = rng.random(log.height) < 0.67
    delay = rng.integers(3600, 20 * 86400, log.height).astype("timedelta64[s]")
    labels = pl.DataFrame({"record_id": log["record_id"], "label": truth.astype(float),
                           "labelled_at": pl.Series(ts + delay)}).filter(pl.Series(labelled))
    return log, labels


def _lake(folder: Path, log: pl.DataFrame, labels: pl.DataFrame) -> tuple[Path, Path]:
    root = folder / "lake"
    for (plant, line), part in log.partition_by("plant", "line", as_dict=True).items():
        out = root / f"plant={plant}" / f"line={line}"
        out.mkdir(parents=True)
        half = part.height // 2
        part.drop("plant", "line").head(half).write_parquet(out / "part-0.parquet")
        part.drop("plant", "line").tail(part.height - half).write_parquet(out / "part-1.parquet")
    label_root = folder / "labels"
    label_root.mkdir()
    labels.write_parquet(label_root / "labels.parquet")
    return root, label_root


@pytest.fixture(scope="module")
def lake_project(tmp_path_factory) -> tuple[Path, Path, Path]:
    """A project holding the log imported, plus the same rows as a lake attached as `lake`."""
    folder = tmp_path_factory.mktemp("attached")
    log, labels = _log()
    log.write_parquet(folder / "log.parquet")
    labels.write_parquet(folder / "labels.parquet")
    root, label_root = _lake(folder, log, labels)
    project = Project.create(folder / "proj", "Attached", site="P", slice_dimensions=("plant", "line", "cell", "asset"))
    try:
        import_predictions(project, folder / "log.parquet",
                           PredictionMapping(predicted_label="predicted_label",
                                             slices={"plant": "plant", "line": "line", "cell": "cell",
                                                     "asset": "asset"},
                                             features=("tip_temp", "current_a")))
        import_labels(project, folder / "labels.parquet", LabelMapping())
        attach_log(project, str(root), "lake", labels=str(label_root))
    finally:
        project.close()
    return folder / "proj", root, label_root


def _same(a, b, keys: list[str]) -> None:
    a, b = a.sort(keys), b.sort(keys)
    assert a.select(*keys, *COUNTS).equals(b.select(*keys, *COUNTS))
    for m in METRICS:
        x, y = a[m].to_numpy().astype(float), b[m].to_numpy().astype(float)
        assert np.allclose(x, y, rtol=0, atol=1e-12, equal_nan=True), m


@pytest.mark.parametrize(("by", "window"), [(("line",), None), (("cell",), None), (("plant", "cell"), "week"),
                                            ((), None), (("asset",), "week")])
def test_attached_log_on_duckdb_equals_the_imported_copy(lake_project, by, window):
    folder, _, _ = lake_project
    with Project.open_snapshot(folder) as project:
        own = compute_slices(project, SliceQuery(VERSION, by, window))
        attached = compute_slices(project, SliceQuery(VERSION, by, window, log="lake", engine="duckdb"))
    keys = [*by, *(["period"] if window else [])]
    _same(own.overall.with_columns(k=0), attached.overall.with_columns(k=0), ["k"])
    if keys:
        _same(own.slices, attached.slices, keys)
        assert own.slices.height == attached.slices.height > 2
    assert any("attached log lake" in n for n in attached.notes)


DRIFT_STATS = ("ks_d", "ks_d_bound", "wasserstein", "wasserstein_norm", "wasserstein_norm_bound", "psi", "js",
               "ref_std", "missing_cur")
REFERENCE = (datetime(2026, 3, 2), datetime(2026, 4, 6))
CURRENT = (datetime(2026, 4, 13), datetime(2026, 5, 11))


def _same_drift(a: pl.DataFrame, b: pl.DataFrame, keys: list[str]) -> None:
    a, b = a.sort(keys), b.sort(keys)
    assert a.height == b.height > 0
    assert a.select(*keys, "n_ref", "n_cur", "drifted").equals(b.select(*keys, "n_ref", "n_cur", "drifted"))
    for c in DRIFT_STATS:
        if c in a.columns:
            assert np.allclose(a[c].to_numpy().astype(float), b[c].to_numpy().astype(float), rtol=1e-12,
                               atol=1e-12, equal_nan=True), c


@pytest.mark.parametrize(("by", "mode"), [(("line",), "bounded"), (("cell",), "exact"), ((), "bounded")])
def test_drift_on_the_attached_log_equals_the_imported_copy(lake_project, by, mode):
    folder, _, _ = lake_project
    with Project.open_snapshot(folder) as project:
        own = compute_drift(project, DriftQuery(REFERENCE, CURRENT, by=by, mode=mode))
        attached = compute_drift(project, DriftQuery(REFERENCE, CURRENT, by=by, mode=mode, log="lake",
                                                     engine="duckdb"))
    assert attached.bounded == (mode == "bounded")
    _same_drift(own.rows, attached.rows, [*by, "feature"])
    if by == ("line",):
        assert attached.rows.filter(pl.col("drifted")).select("line", "feature").rows() == [("P1-L2", "tip_temp")]


def test_freshness_on_the_attached_log_equals_the_imported_copy(lake_project):
    folder, _, _ = lake_project
    with Project.open_snapshot(folder) as project:
        own = silent_gaps(project, per="line", expected_hours=24)
        attached = silent_gaps(project, per="line", expected_hours=24, log="lake", engine="duckdb")
    assert own.equals(attached)
    gap = attached.row(0, named=True)
    assert gap["line"] == "P2-L1" and 4 * 24 <= gap["gap_hours"] <= 5 * 24 and not gap["open"]


def test_attaching_copies_no_rows_and_records_the_files(lake_project):
    folder, root, _ = lake_project
    with Project.open_snapshot(folder) as project:
        [info] = attached_logs(project)
        log = load_log(project, "lake")
    assert info["rows"] == _log()[0].height and info["files"] == 12 == len(log.files)
    assert set(log.slices) == {"plant", "line", "cell", "asset"} and log.partitions == ("plant", "line")
    assert set(log.features) == {"tip_temp", "current_a"}
    assert all(Path(f.path).is_relative_to(root.resolve()) for f in log.files)


def test_the_project_file_does_not_grow_with_the_lake(tmp_path: Path):
    """Attaching stores a file list, not rows: the project file grows by the same few DuckDB blocks (256 KB each)
    for a lake ten times the size."""
    growth = []
    for rows in (20_000, 200_000):
        log, labels = _log(rows, seed=3)
        (tmp_path / str(rows)).mkdir()
        root, label_root = _lake(tmp_path / str(rows), log, labels)
        project = Project.create(tmp_path / f"proj{rows}", "Growth", site="P")
        folder = project.folder
        project.close()
        before = (folder / "project.duckdb").stat().st_size
        with Project.open(folder) as project:
            attach_log(project, str(root), "lake", labels=str(label_root))
        growth.append((folder / "project.duckdb").stat().st_size - before)
        lake_bytes = sum(p.stat().st_size for p in root.rglob("*.parquet"))
    assert lake_bytes > 5_000_000
    assert growth[1] <= growth[0] + 262_144 and growth[1] < 2_000_000


@pytest.fixture
def own_lake(tmp_path: Path):
    log, labels = _log(20_000, seed=11)
    root, label_root = _lake(tmp_path, log, labels)
    project = Project.create(tmp_path / "proj", "Changes", site="P")
    attach_log(project, str(root), "lake", labels=str(label_root))
    yield project, root, log
    project.close()


def _attempt(project: Project):
    return compute_slices(project, SliceQuery(VERSION, ("line",), log="lake", engine="duckdb"))


@pytest.mark.parametrize("change", ["new file", "deleted partition", "moved partition", "rewritten file",
                                    "schema changed", "labels rewritten"])
def test_a_changed_source_is_refused_until_checked_again(own_lake, change: str):
    project, root, log = own_lake
    part = root / "plant=P1" / "line=P1-L1"
    if change == "new file":
        pl.read_parquet(part / "part-0.parquet").with_columns(pl.col("record_id") + "-new").write_parquet(
            part / "part-9.parquet")
    elif change == "deleted partition":
        shutil.rmtree(part)
    elif change == "moved partition":
        part.rename(root / "plant=P1" / "line=P1-L9")
    elif change == "rewritten file":
        pl.read_parquet(part / "part-0.parquet").head(10).write_parquet(part / "part-0.parquet")
    elif change == "schema changed":
        pl.read_parquet(part / "part-0.parquet").with_columns(pl.col("score").cast(pl.Utf8)).write_parquet(
            part / "part-0.parquet")
    else:
        labels = root.parent / "labels" / "labels.parquet"
        pl.read_parquet(labels).head(5).write_parquet(labels)
    with pytest.raises(SourceChanged) as err:
        _attempt(project)
    assert "changed since it was checked" in err.value.what and "--recheck lake" in err.value.todo
    if change == "schema changed":  # checking again refuses the new file and keeps the old record
        with pytest.raises(AttachError, match="not a number|cannot be read"):
            attach_log(project, str(root), "lake", labels=str(root.parent / "labels"), replace=True)
        with pytest.raises(SourceChanged):
            _attempt(project)
    elif change in ("new file", "deleted partition", "moved partition", "rewritten file"):
        before = load_log(project, "lake", check=False).digest
        attach_log(project, str(root), "lake", labels=str(root.parent / "labels"), replace=True)
        assert load_log(project, "lake").digest != before
        table = _attempt(project)
        if change == "moved partition":  # the same rows, now under the line their folder names
            assert "P1-L9" in table.slices["line"].to_list() and "P1-L1" not in table.slices["line"].to_list()
        else:
            assert table.overall["n"][0] != log.height


def _write_bad(tmp_path: Path, frame: pl.DataFrame) -> Path:
    out = tmp_path / "bad" / "plant=P1"
    out.mkdir(parents=True)
    frame.write_parquet(out / "part.parquet")
    return tmp_path / "bad"


BAD = {
    "decimal comma": (lambda f: f.with_columns(pl.col("score").map_elements(lambda v: f"{v:.4f}".replace(".", ","),
                                                                            return_dtype=pl.Utf8)), "not a number"),
    "score above 1": (lambda f: f.with_columns(pl.col("score") * 3), "not a probability"),
    "NaN score": (lambda f: f.with_columns(pl.when(pl.int_range(pl.len()) == 5).then(float("nan"))
                                           .otherwise(pl.col("score")).alias("score")), "NaN"),
    "text time": (lambda f: f.with_columns(pl.col("ts").dt.strftime("%d.%m.%Y %H:%M")), "not a timestamp"),
    "repeated ids": (lambda f: f.with_columns(pl.lit("same").alias("record_id")), "more than once"),
    "decision 2": (lambda f: f.with_columns(pl.col("predicted_label") * 2), "other than 0 or 1"),
    "no score column": (lambda f: f.drop("score"), "no column 'score'"),
    "empty id": (lambda f: f.with_columns(pl.when(pl.int_range(pl.len()) == 3).then(pl.lit(""))
                                          .otherwise(pl.col("record_id")).alias("record_id")), "empty record ids"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_source_is_refused_and_nothing_is_stored(tmp_path: Path, empty_project: Project, case: str):
    make, words = BAD[case]
    log, _ = _log(500, seed=5)
    source = _write_bad(tmp_path, make(log.drop("plant")))
    with empty_project.reading() as con:
        audit = con.execute("SELECT count(*) FROM audit_log").fetchall()[0][0]
    with pytest.raises(AttachError) as err:
        attach_log(empty_project, str(source), "bad")
    assert words in err.value.what and "nothing was attached" in err.value.todo.lower()
    with empty_project.reading() as con:
        assert con.execute("SELECT count(*) FROM attached_logs").fetchall()[0][0] == 0
        assert con.execute("SELECT count(*) FROM audit_log").fetchall()[0][0] == audit


def test_sources_that_are_not_there_are_named(tmp_path: Path, empty_project: Project):
    with pytest.raises(AttachError, match="does not exist"):
        attach_log(empty_project, str(tmp_path / "nowhere"), "x")
    (tmp_path / "empty").mkdir()
    with pytest.raises(AttachError, match="holds no Parquet files"):
        attach_log(empty_project, str(tmp_path / "empty"), "x")
    with pytest.raises(AttachError, match="not a usable name"):
        attach_log(empty_project, str(tmp_path / "empty"), "no spaces")


@pytest.mark.parametrize(("table", "words"), [
    ({"engine": {"name": "flink"}}, "not known"), ({"engine": {"master": "yarn"}}, "not a Spark master"),
    ({"engine": {"connect": "http://x"}}, "not a Spark Connect URL"), ({"engine": {"threads": "2"}}, "unknown key"),
    ({"engine": {"master": 4}}, "not text"), ({"engine": "spark"}, "not a table")])
def test_engine_settings_are_checked(table: dict, words: str):
    with pytest.raises(SettingsError, match=words):
        EngineSettings.from_manifest(table)
    assert EngineSettings.from_manifest({"engine": {"name": "spark", "master": "local[*]"}}).master == "local[*]"
    assert EngineSettings.from_manifest({}, "spark").name == "spark"


def test_summary_sql_transpiles_to_spark_functions():
    sql = to_spark("SELECT date_trunc('week', ts)::DATE AS p, count(*) FILTER (WHERE label = 1) AS n, "
                   "sum((score - label) ^ 2) AS se, sum(epoch_us(labelled_at) - epoch_us(ts)) AS d FROM t GROUP BY ALL")
    assert "UNIX_MICROS(labelled_at)" in sql and "POWER(" in sql and "FILTER(WHERE" in sql
    assert "CAST(DATE_TRUNC('WEEK', ts) AS DATE)" in sql


def test_cli_attach_list_and_slices(lake_project, capsys, tmp_path: Path):
    folder, root, _ = lake_project
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    assert main(["attach-log", str(copy), "--list"]) == 0
    assert "lake" in capsys.readouterr().out
    assert main(["slices", str(copy), "--model", VERSION, "--by", "line", "--log", "lake", "-q"]) == 0
    assert "P2-L3" in capsys.readouterr().out
    assert main(["slices", str(copy), "--model", "lake-model", "--log", "lake"]) == 2
    assert "--model lake-model:VERSION" in capsys.readouterr().err
    assert main(["attach-log", str(copy), str(root), "--as", "lake"]) == 2
    assert "already attached" in capsys.readouterr().err


@pytest.mark.slow
def test_spark_drift_summaries_equal_duckdb(lake_project):
    """Spark builds the same bounded summaries (mergeable, per partition): same counts, flags and bounds."""
    folder, _, _ = lake_project
    with Project.open_snapshot(folder) as project:
        for by in (("line",), ("plant", "cell")):
            duck = compute_drift(project, DriftQuery(REFERENCE, CURRENT, by=by, mode="bounded", log="lake",
                                                     engine="duckdb"))
            spark = compute_drift(project, DriftQuery(REFERENCE, CURRENT, by=by, log="lake", engine="spark"))
            assert spark.bounded
            _same_drift(duck.rows, spark.rows, [*by, "feature"])
        assert silent_gaps(project, per="line", log="lake", engine="spark").equals(
            silent_gaps(project, per="line", log="lake", engine="duckdb"))


@pytest.mark.slow
def test_spark_local_equals_duckdb_on_the_attached_log(lake_project):
    """Spark local[2] runs the same summary (transpiled): every count identical, every metric to 1e-12."""
    folder, _, _ = lake_project
    with Project.open_snapshot(folder) as project:
        for by, window in ((("line",), None), (("plant", "cell"), "week"), (("asset",), "week")):
            duck = compute_slices(project, SliceQuery(VERSION, by, window, log="lake", engine="duckdb"))
            spark = compute_slices(project, SliceQuery(VERSION, by, window, log="lake", engine="spark"))
            keys = [*by, *(["period"] if window else [])]
            _same(duck.slices, spark.slices, keys)
            _same(duck.overall.with_columns(k=0), spark.overall.with_columns(k=0), ["k"])


def test_spark_refuses_a_log_whose_labels_it_cannot_read(tmp_path: Path):
    """Labels stored in the project cannot reach a cluster: refused before Spark starts, and a log without labels
    anywhere reads as unlabelled (not as an error)."""
    from app.core.engine.rows import EngineError

    log, labels = _log(5_000, seed=2)
    root, _ = _lake(tmp_path, log, labels)
    one_part = tmp_path / "some.parquet"
    log.head(100).write_parquet(one_part)
    labels.write_parquet(tmp_path / "l.parquet")
    project = Project.create(tmp_path / "proj", "No lake labels", site="P")
    try:
        attach_log(project, str(root), "lake")
        assert compute_slices(project, SliceQuery(VERSION, ("line",), log="lake", engine="duckdb")
                              ).overall["labelled"][0] == 0
        import_predictions(project, one_part, PredictionMapping(predicted_label="predicted_label",
                                                                slices={"plant": "plant", "line": "line"},
                                                                features=("tip_temp",)))
        import_labels(project, tmp_path / "l.parquet", LabelMapping(), skip_unknown=True)
        with pytest.raises(EngineError, match="cannot read the labels stored in this project"):
            compute_slices(project, SliceQuery(VERSION, ("line",), log="lake", engine="spark"))
    finally:
        project.close()


@pytest.mark.parametrize("engine", [{"name": "spark", "master": "spark://127.0.0.1:{port}"},
                                    {"name": "spark", "connect": "sc://127.0.0.1:{port}"}])
def test_an_unreachable_cluster_is_one_clear_error(lake_project, tmp_path: Path, engine: dict):
    import socket

    from app.core.engine.rows import EngineError

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    folder, _, _ = lake_project
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    lines = "\n".join(f'{k} = "{v.format(port=port)}"' for k, v in engine.items())
    with open(copy / "lineproof.toml", "a", encoding="utf-8") as toml:
        toml.write(f"\n[engine]\n{lines}\n")
    before = (copy / "project.duckdb").read_bytes()
    with Project.open_snapshot(copy) as project:
        with pytest.raises(EngineError) as err:
            compute_slices(project, SliceQuery(VERSION, ("line",), log="lake"))
    assert f"127.0.0.1:{port}" in err.value.what and "cannot be reached" in err.value.what
    assert "nothing was computed" in err.value.todo
    assert (copy / "project.duckdb").read_bytes() == before


def test_a_delta_table_is_read_at_its_snapshot_and_a_rollback_is_reported(tmp_path: Path):
    """The Delta table's current snapshot (not every file in its folder) is the log; writing to it or restoring
    an older version changes the version, which is reported until the log is checked again."""
    from deltalake import DeltaTable

    log, labels = _log(20_000, seed=13)
    log.write_parquet(tmp_path / "log.parquet")
    labels.write_parquet(tmp_path / "labels.parquet")
    table = tmp_path / "delta"
    log.write_delta(table, delta_write_options={"partition_by": ["plant", "line"]})
    project = Project.create(tmp_path / "proj", "Delta", site="P", slice_dimensions=("plant", "line", "cell"))
    try:
        import_predictions(project, tmp_path / "log.parquet", PredictionMapping(
            predicted_label="predicted_label", slices={"plant": "plant", "line": "line", "cell": "cell"},
            features=("tip_temp", "current_a")))
        import_labels(project, tmp_path / "labels.parquet", LabelMapping())
        attached = attach_log(project, str(table), "delta")
        assert attached.snapshot == "0" and set(attached.partitions) == {"plant", "line"}
        own = compute_slices(project, SliceQuery(VERSION, ("line", "cell")))
        delta = compute_slices(project, SliceQuery(VERSION, ("line", "cell"), log="delta", engine="duckdb"))
        _same(own.slices, delta.slices, ["line", "cell"])
        extra = log.head(100).with_columns(pl.col("record_id") + "-late")
        extra.write_delta(table, mode="append", delta_write_options={"partition_by": ["plant", "line"]})
        with pytest.raises(SourceChanged, match="version 1, not the version 0"):
            compute_slices(project, SliceQuery(VERSION, ("line",), log="delta"))
        DeltaTable(str(table)).restore(0)  # rolled back: the files are version 0's again, the version is 2
        with pytest.raises(SourceChanged, match="version 2, not the version 0.*rolled back"):
            compute_slices(project, SliceQuery(VERSION, ("line",), log="delta"))
        attach_log(project, str(table), "delta", replace=True)
        again = compute_slices(project, SliceQuery(VERSION, ("line", "cell"), log="delta", engine="duckdb"))
        _same(own.slices, again.slices, ["line", "cell"])  # files of older versions in the folder are not read
        with project.reading() as con:
            details = [r[0] for r in con.execute("SELECT details_json FROM audit_log WHERE action LIKE 'log.%' "
                                                 "ORDER BY seq").fetchall()]
        assert '"snapshot": "0"' in details[0] and '"snapshot": "2"' in details[1]
    finally:
        project.close()


@pytest.mark.slow
def test_cancel_stops_the_spark_job(lake_project):
    """Cancel (the worker's progress) cancels the Spark job group of the running summary."""
    import threading

    from app.core.engine.attach import load_log
    from app.core.engine.rows import EngineSettings, SparkRows
    from app.core.errors import Cancelled
    from app.core.progress import TaskProgress

    folder, _, _ = lake_project
    progress = TaskProgress()
    with Project.open_snapshot(folder) as project:
        con = project.cursor()
        rows = SparkRows(con, EngineSettings("spark"), load_log(project, "lake"), progress)
        outcome: list[BaseException | None] = []

        def endless() -> None:
            try:
                rows.materialise("_x", "SELECT sum(a.score * b.score) AS s FROM _log a CROSS JOIN _log b")
                outcome.append(None)
            except BaseException as exc:  # noqa: BLE001 (the test inspects it)
                outcome.append(exc)
        worker = threading.Thread(target=endless)
        worker.start()
        tracker = rows.spark.sparkContext.statusTracker()
        for _ in range(300):
            if tracker.getActiveJobsIds():
                break
            threading.Event().wait(0.1)
        progress.cancel()
        worker.join(120)
        rows.close()
        con.close()
    assert not worker.is_alive() and isinstance(outcome[0], Cancelled)
    with pytest.raises(Cancelled):  # and a summary asked for after Cancel does not start
        rows._run(lambda: None)


def _lake_alerts(folder: Path, tmp_path: Path, engine: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(alerts over the imported log, alerts over the attached lake on `engine`), on a copy of the project."""
    from app.core.analysis.alerts import evaluate_alerts, list_alerts

    copy = tmp_path / f"copy-{engine}"
    shutil.copytree(folder, copy)
    with Project.open(copy) as project:
        evaluate_alerts(project, REFERENCE, CURRENT)
        own = list_alerts(project)
        evaluate_alerts(project, REFERENCE, CURRENT, log="lake", engine=engine)
        both = list_alerts(project)
    return own, both.filter(pl.col("scope").str.starts_with("log lake: ")).with_columns(
        pl.col("scope").str.strip_prefix("log lake: "), pl.col("message").str.strip_prefix("[lake] "))


@pytest.mark.parametrize("engine", ["duckdb", pytest.param("spark", marks=pytest.mark.slow)])
def test_alerts_over_the_attached_log_equal_those_over_the_imported_copy(lake_project, tmp_path: Path,
                                                                         engine: str):
    """Metric, drift, missingness and silence rules per line: the same alerts, the attached ones naming the log."""
    folder, _, _ = lake_project
    own, attached = _lake_alerts(folder, tmp_path, engine)
    # the project's own log also checks its other dimensions (cell, asset metrics) and overrides: not the lake
    primary = own.filter(pl.col("scope").str.starts_with("line=") | (pl.col("rule") == "stale")
                         | (pl.col("scope") == "plant-wide"))
    columns = ["rule", "scope", "line", "subject", "severity", "message"]
    assert primary.height > 2 and {"drift", "stale"} <= set(primary["rule"])
    assert primary.select(columns).sort(columns).equals(attached.select(columns).sort(columns))


@pytest.mark.slow
def test_the_sample_as_a_lake_gives_the_same_numbers_on_every_engine(sample_folder: Path, tmp_path: Path):
    """The sample's own log exported as a lake (plant=/line= folders, labels beside): slices per line and per
    shift with weekly windows, drift per line and freshness per asset equal the imported log, on DuckDB and Spark."""
    import duckdb

    lake, labels = tmp_path / "lake", tmp_path / "labels"
    labels.mkdir()
    con = duckdb.connect(str(sample_folder / "project.duckdb"), read_only=True)
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"""COPY (SELECT * EXCLUDE (version_id, import_id), version_id AS model_version FROM predictions)
                    TO '{lake}' (FORMAT parquet, PARTITION_BY (plant, line))""")
    con.execute(f"COPY (SELECT record_id, label, labelled_at FROM labels) TO '{labels / 'l.parquet'}' (FORMAT parquet)")
    version = con.execute("SELECT min(version_id) FROM predictions").fetchall()[0][0]
    first, last = con.execute("SELECT min(ts), max(ts) FROM predictions").fetchall()[0]
    con.close()
    copy = tmp_path / "sample"
    shutil.copytree(sample_folder, copy)
    middle = first + (last - first) / 2
    reference, current = (first, middle), (middle, last + timedelta(seconds=1))
    with Project.open(copy) as project:
        attach_log(project, str(lake), "lake", labels=str(labels),
                   features=tuple(f for f in _sample_features(project)))
        for by, window in ((("line",), None), (("shift",), "week")):
            own = compute_slices(project, SliceQuery(version, by, window))
            keys = [*by, *(["period"] if window else [])]
            for engine in ("duckdb", "spark"):
                _same(own.slices, compute_slices(project, SliceQuery(version, by, window, log="lake",
                                                                     engine=engine)).slices, keys)
        own_drift = with_triage(project, compute_drift(project, DriftQuery(reference, current, by=("line",),
                                                                           mode="bounded")))
        assert any("firmware" in (c or "") for c in own_drift.rows["cause"])  # the sample's firmware change
        for engine in ("duckdb", "spark"):
            attached = with_triage(project, compute_drift(project, DriftQuery(
                reference, current, by=("line",), mode="bounded", log="lake", engine=engine)))
            _same_drift(own_drift.rows, attached.rows, ["line", "feature"])
            # triage and its likely cause (the firmware change found in the lake's own rows) agree too
            assert own_drift.rows.sort("line", "feature").select("line", "feature", "triage", "cause").equals(
                attached.rows.sort("line", "feature").select("line", "feature", "triage", "cause"))
            assert silent_gaps(project, per="asset", log="lake", engine=engine).equals(silent_gaps(project, per="asset"))


def _sample_features(project: Project) -> list[str]:
    with project.reading() as con:
        return [r[0] for r in con.execute("SELECT name FROM log_columns WHERE role = 'feature' AND dtype = 'DOUBLE' "
                                          "ORDER BY name").fetchall()]


@pytest.fixture(scope="module")
def connect_server(tmp_path_factory):
    """A Spark Connect server on localhost (the thin client's way to a cluster), started from the pyspark wheel."""
    import os
    import socket
    import subprocess
    import time

    import pyspark

    home = Path(pyspark.__file__).parent
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    logs = tmp_path_factory.mktemp("connect")
    env = {**os.environ, "SPARK_HOME": str(home), "SPARK_LOG_DIR": str(logs), "SPARK_PID_DIR": str(logs)}
    server = subprocess.Popen(
        [str(home / "bin" / "spark-submit"), "--class", "org.apache.spark.sql.connect.service.SparkConnectServer",
         "--master", "local[2]", "--conf", f"spark.connect.grpc.binding.port={port}",
         "--conf", "spark.connect.grpc.binding.address=127.0.0.1", "--conf", "spark.driver.host=127.0.0.1",
         "--conf", "spark.ui.enabled=false", "--conf", "spark.sql.session.timeZone=UTC",
         "--jars", str(next((home / "jars").glob("spark-connect_*.jar")))],
        env=env, stdout=open(logs / "server.log", "w"), stderr=subprocess.STDOUT)
    try:
        for _ in range(240):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None:
                    pytest.fail(f"the Spark Connect server stopped: {(logs / 'server.log').read_text()[-2000:]}")
                time.sleep(0.5)
        else:
            pytest.fail("the Spark Connect server did not open its port in 120 s")
        yield f"sc://127.0.0.1:{port}"
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()


@pytest.mark.slow
def test_spark_connect_equals_duckdb(lake_project, connect_server: str, tmp_path: Path):
    """Through Spark Connect (sc://) the summaries are the same as on DuckDB."""
    folder, _, _ = lake_project
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    with open(copy / "lineproof.toml", "a", encoding="utf-8") as toml:
        toml.write(f'\n[engine]\nname = "spark"\nconnect = "{connect_server}"\n')
    with Project.open_snapshot(copy) as project:
        duck = compute_slices(project, SliceQuery(VERSION, ("line", "cell"), "week", log="lake", engine="duckdb"))
        remote = compute_slices(project, SliceQuery(VERSION, ("line", "cell"), "week", log="lake"))
        _same(duck.slices, remote.slices, ["line", "cell", "period"])
        d1 = compute_drift(project, DriftQuery(REFERENCE, CURRENT, by=("line",), mode="bounded", log="lake",
                                               engine="duckdb"))
        d2 = compute_drift(project, DriftQuery(REFERENCE, CURRENT, by=("line",), log="lake"))
        _same_drift(d1.rows, d2.rows, ["line", "feature"])


def test_an_iceberg_table_is_read_at_its_snapshot_and_a_rollback_is_reported(tmp_path: Path):
    """The current snapshot's data files (partition columns inside them), its id recorded; an append or a
    rollback or a delete is a new snapshot, reported until checked again."""
    from pyiceberg.catalog.sql import SqlCatalog

    log, labels = _log(20_000, seed=17)
    log.write_parquet(tmp_path / "log.parquet")
    labels.write_parquet(tmp_path / "labels.parquet")
    catalog = SqlCatalog("plant", uri=f"sqlite:///{tmp_path / 'catalog.db'}", warehouse=f"file://{tmp_path / 'wh'}")
    catalog.create_namespace("lake")
    table = catalog.create_table("lake.predictions", schema=log.to_arrow().schema)
    with table.update_spec() as spec:
        spec.add_identity("line")
    table.append(log.to_arrow())
    first = table.current_snapshot().snapshot_id
    folder = table.location().removeprefix("file://")
    project = Project.create(tmp_path / "proj", "Iceberg", site="P", slice_dimensions=("plant", "line", "cell"))
    try:
        import_predictions(project, tmp_path / "log.parquet", PredictionMapping(
            predicted_label="predicted_label", slices={"plant": "plant", "line": "line", "cell": "cell"},
            features=("tip_temp", "current_a")))
        import_labels(project, tmp_path / "labels.parquet", LabelMapping())
        attached = attach_log(project, folder, "ice")
        assert attached.format == "iceberg" and attached.snapshot == str(first) and attached.rows == log.height
        own = compute_slices(project, SliceQuery(VERSION, ("line", "cell")))
        ice = compute_slices(project, SliceQuery(VERSION, ("line", "cell"), log="ice", engine="duckdb"))
        _same(own.slices, ice.slices, ["line", "cell"])
        table.append(log.head(50).with_columns(pl.col("record_id") + "-late").to_arrow())
        with pytest.raises(SourceChanged, match="Iceberg table 'ice' is at snapshot"):
            compute_slices(project, SliceQuery(VERSION, ("line",), log="ice"))
        table.manage_snapshots().rollback_to_snapshot(first).commit()
        attach_log(project, folder, "ice", replace=True)  # checked again: the rolled-back snapshot's files
        again = compute_slices(project, SliceQuery(VERSION, ("line", "cell"), log="ice", engine="duckdb"))
        _same(own.slices, again.slices, ["line", "cell"])
        table.delete("record_id = 'r0000001'")  # a delete is a new snapshot too
        with pytest.raises(SourceChanged):
            compute_slices(project, SliceQuery(VERSION, ("line",), log="ice"))
    finally:
        project.close()
