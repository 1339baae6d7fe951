"""Input-only logs: a line's inputs without a model version or score feed drift and data quality, never metrics."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as skm

from app.cli import main
from app.core.analysis.drift import DriftQuery, compute_drift
from app.core.analysis.overview import build_overview, log_rows_text
from app.core.analysis.slices import SliceQuery, compute_slices, logged_versions, resolve_version
from app.core.errors import IngestError
from app.core.store.ingest import (
    NO_COLUMN,
    LabelMapping,
    PredictionMapping,
    import_labels,
    import_predictions,
)
from app.core.store.project import Project
from tests.helpers import project_state, write_csv

REF = (datetime(2026, 3, 1), datetime(2026, 3, 15))
CUR = (datetime(2026, 3, 15), datetime(2026, 3, 29))


def _inputs_csv(path: Path, n: int = 400, prefix: str = "i") -> tuple[Path, np.ndarray, np.ndarray]:
    """A sensor log without model columns: temp shifts by +2 in the second fortnight."""
    rng = np.random.default_rng(21)
    days = np.arange(n) * 28 // n
    temp = (rng.normal(20, 1, n) + np.where(days >= 14, 2.0, 0.0)).round(3)
    write_csv(path, "record_id,ts,line,temp",
              *[f"{prefix}{i},2026-03-{1 + days[i]:02d} 08:00,L1,{temp[i]}" for i in range(n)])
    return path, temp[days < 14], temp[days >= 14]


def test_an_input_only_log_imports_and_its_drift_matches_scipy(empty_project: Project, tmp_path: Path):
    src, ref, cur = _inputs_csv(tmp_path / "sensors.csv")
    result = import_predictions(empty_project, src, PredictionMapping(model_version=None, score=None,
                                                                      slices={"line": "line"}))
    assert result.rows == 400
    stored = empty_project.con.execute("SELECT count(*), count(version_id), count(score) FROM predictions").fetchall()
    assert stored == [(400, 0, 0)]
    table = compute_drift(empty_project, DriftQuery(REF, CUR, by=("line",), features=("temp",)))
    row = table.rows.row(0, named=True)
    expected = stats.ks_2samp(ref, cur)
    assert row["ks_d"] == pytest.approx(expected.statistic, abs=1e-12)
    assert row["n_ref"] == len(ref) and row["n_cur"] == len(cur)
    assert logged_versions(empty_project) == []  # nothing to compute metrics for
    overview = build_overview(empty_project)
    assert overview.input_only_rows == 400
    assert log_rows_text(overview) == "0 predictions + 400 input-only records"


def test_input_rows_never_reach_the_metrics_of_the_only_model(empty_project: Project, tmp_path: Path):
    """With one model version, slices read the whole log without a version filter: input rows must not count."""
    rng = np.random.default_rng(3)
    n = 300
    y = (rng.random(n) < 0.4).astype(int)
    score = np.clip(0.5 * y + rng.random(n) * 0.6, 0, 1).round(3)
    write_csv(tmp_path / "log.csv", "record_id,ts,model_version,score,line,temp",
              *[f"r{i},2026-03-{1 + i % 28:02d} 09:00,cam:v1,{score[i]},L1,20" for i in range(n)])
    write_csv(tmp_path / "labels.csv", "record_id,label", *[f"r{i},{y[i]}" for i in range(n)])
    import_predictions(empty_project, tmp_path / "log.csv", PredictionMapping(slices={"line": "line"}))
    src, _, _ = _inputs_csv(tmp_path / "sensors.csv")
    import_predictions(empty_project, src, PredictionMapping(model_version=None, score=None, slices={"line": "line"}))
    # labels for input-only records exist too (a later model may be judged on them); they are not this model's
    write_csv(tmp_path / "input_labels.csv", "record_id,label", *[f"i{i},1" for i in range(400)])
    import_labels(empty_project, tmp_path / "labels.csv", LabelMapping(labelled_at=None))
    import_labels(empty_project, tmp_path / "input_labels.csv", LabelMapping(labelled_at=None))
    table = compute_slices(empty_project, SliceQuery("cam:v1", min_support=1, threshold=0.5))
    assert table.overall["n"][0] == n
    assert table.overall["recall"][0] == pytest.approx(skm.recall_score(y, score >= 0.5), abs=1e-12)
    assert resolve_version(empty_project, "cam:v1") == "cam:v1"


def test_a_file_without_model_columns_is_refused_with_the_input_only_hint(sample_like_project, tmp_path: Path,
                                                                         capsys):
    folder = sample_like_project
    src, _, _ = _inputs_csv(tmp_path / "sensors.csv")
    before = project_state(folder)
    assert main(["ingest", str(folder), str(src), "-q"]) == 2
    err = capsys.readouterr().err
    assert "sensors.csv has no column 'model_version' (model version) and no 'score'" in err
    assert "--inputs-only" in err
    assert project_state(folder) == before
    assert main(["ingest", str(folder), str(src), "--inputs-only", "--slice", "line=line", "-q"]) == 0
    assert "400 input records" in capsys.readouterr().out
    assert project_state(folder)["predictions"] == before["predictions"] + 400


@pytest.mark.parametrize("mapping, message", [
    (PredictionMapping(model_version=None), "a score column is mapped but no model version column"),
    (PredictionMapping(score=None), "a model version column is mapped but no score column"),
    (PredictionMapping(model_version=None, score=None, predicted_label="pred"),
     "a predicted label \\('pred'\\) is mapped in an input-only import"),
])
def test_half_a_model_mapping_is_refused(empty_project: Project, tmp_path: Path, mapping, message):
    src = write_csv(tmp_path / "log.csv", "record_id,ts,model_version,score,pred,temp",
                    "a,2026-03-01 10:00,m:v1,0.4,1,1.5")
    folder = empty_project.folder
    with pytest.raises(IngestError, match=message):
        import_predictions(empty_project, src, mapping)
    empty_project.close()
    assert project_state(folder)["predictions"] == 0


def test_inputs_only_with_a_mapped_score_is_refused_on_the_command_line(empty_project: Project, tmp_path: Path,
                                                                        capsys):
    src, _, _ = _inputs_csv(tmp_path / "sensors.csv")
    folder = empty_project.folder
    empty_project.close()
    assert main(["ingest", str(folder), str(src), "--inputs-only", "--map", "score=temp", "-q"]) == 2
    assert "--inputs-only imports no model version" in capsys.readouterr().err


@pytest.fixture
def sample_like_project(tmp_path: Path) -> Path:
    """A closed project with one model's log already in it."""
    project = Project.create(tmp_path / "plant", "plant")
    write_csv(tmp_path / "log.csv", "record_id,ts,model_version,score,line",
              *[f"r{i},2026-02-0{1 + i % 9} 10:00,cam:v1,0.{i % 10},L{i % 2}" for i in range(50)])
    import_predictions(project, tmp_path / "log.csv", PredictionMapping(slices={"line": "line"}))
    project.close()
    return project.folder


@pytest.mark.gui
def test_the_import_dialog_offers_inputs_only_for_a_file_without_model_columns(qtbot, empty_project: Project,
                                                                              tmp_path: Path):
    from app.core.store.sources import inspect_file
    from app.views.import_dialog import PredictionImportDialog

    src, _, _ = _inputs_csv(tmp_path / "sensors.csv")
    dialog = PredictionImportDialog(inspect_file(empty_project.cursor(), src), ("line",))
    qtbot.addWidget(dialog)
    mapping = dialog.mapping()
    assert mapping.inputs_only and mapping.slices == {"line": "line"} and mapping.features == ("temp",)
    assert dialog.kind.text().startswith("Inputs only")
    dialog.model_version.setCurrentText("temp")
    dialog.predicted_label.setCurrentText("line")
    dialog.model_version.setCurrentText(NO_COLUMN)  # back to inputs only: a decision column makes no sense
    assert dialog.predicted_label.currentText() == NO_COLUMN and not dialog.predicted_label.isEnabled()
    dialog.score.setCurrentText("temp")
    assert "or neither" in dialog.kind.text()
    with pytest.raises(IngestError, match="a score column is mapped but no model version"):
        import_predictions(empty_project, src, dialog.mapping())
