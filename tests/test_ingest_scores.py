"""What a log means: scores outside 0..1, decimal commas, log-only models and their decisions, odd file names."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from sklearn import metrics as skm

from app.cli import main
from app.core.analysis.slices import SliceQuery, ThresholdUnknown, compute_slices
from app.core.errors import IngestError
from app.core.store.ingest import LabelMapping, PredictionMapping, import_labels, import_predictions
from app.core.store.project import Project
from tests.helpers import write_csv

HEADER = "record_id,ts,model_version,score,line,temp"


def project_state(project: Project) -> tuple:
    """Rows of the tables an import writes, and the log's columns (the project stays open)."""
    con = project.con
    return (tuple(con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0]
                  for t in ("predictions", "imports", "audit_log", "log_columns")),
            [r[0] for r in con.execute("DESCRIBE predictions").fetchall()])


def test_scores_outside_0_1_are_refused_with_the_fix(empty_project: Project, tmp_path: Path):
    src = write_csv(tmp_path / "logits.csv", HEADER, "a,2026-03-01 10:00,m:v1,0.4,L1,1.5",
                    "b,2026-03-01 10:01,m:v1,2.3,L1,1.5")
    before = project_state(empty_project)
    with pytest.raises(IngestError, match=r"row 2 \(line 3 of the file\).*outside 0\.\.1.*--score-kind logit"):
        import_predictions(empty_project, src)
    assert project_state(empty_project) == before


def test_logits_are_declared_and_turned_into_probabilities(empty_project: Project, tmp_path: Path):
    src = write_csv(tmp_path / "logits.csv", HEADER, "a,2026-03-01 10:00,m:v1,-1.2,L1,1.5",
                    "b,2026-03-01 10:01,m:v1,2.3,L1,1.5")
    import_predictions(empty_project, src, PredictionMapping(score_kind="logit", slices={"line": "line"}))
    stored = [r[0] for r in empty_project.con.execute("SELECT score FROM predictions ORDER BY record_id").fetchall()]
    assert stored == pytest.approx([1 / (1 + math.exp(1.2)), 1 / (1 + math.exp(-2.3))], rel=1e-12)


def test_regression_values_of_a_registered_regression_model_pass(empty_project: Project, tmp_path: Path):
    from app.core.models.registry import register_model

    register_model(empty_project, "gap", "Gap width", "regression")
    with empty_project.change("test.version", "gap:v1") as con:
        con.execute("INSERT INTO model_versions (version_id, model_id, version, format, sha256, artifact_path, "
                    "size_bytes, created_at) VALUES ('gap:v1', 'gap', 'v1', 'onnx', 'x', 'x', 1, now()::TIMESTAMP)")
    src = write_csv(tmp_path / "gap.csv", HEADER, "a,2026-03-01 10:00,gap:v1,12.7,L1,1.5")
    assert import_predictions(empty_project, src, PredictionMapping(slices={"line": "line"})).rows == 1


def test_a_decimal_comma_feature_is_refused_not_made_a_category(empty_project: Project, tmp_path: Path):
    src = tmp_path / "comma.csv"
    src.write_text('record_id,ts,model_version,score,line,temp\n'
                   'a,2026-03-01 10:00,m:v1,0.4,L1,"212,5"\n'
                   'b,2026-03-01 10:01,m:v1,0.5,L1,213\n'
                   'c,2026-03-01 10:02,m:v1,0.6,L1,"1.214,25"\n')
    before = project_state(empty_project)
    with pytest.raises(IngestError, match=r"row 1 \(line 2 of the file\): feature column 'temp' holds numbers "
                                          r"written with a decimal comma \(value '212,5'\)"):
        import_predictions(empty_project, src)
    assert project_state(empty_project) == before


def test_a_text_feature_with_commas_stays_a_category(empty_project: Project, tmp_path: Path):
    src = tmp_path / "text.csv"
    src.write_text('record_id,ts,model_version,score,line,wire\n'
                   'a,2026-03-01 10:00,m:v1,0.4,L1,"steel, coated"\nb,2026-03-01 10:01,m:v1,0.5,L1,alu\n')
    assert import_predictions(empty_project, src).rows == 2
    assert empty_project.con.execute("SELECT dtype FROM log_columns WHERE name = 'wire'").fetchall() == [("VARCHAR",)]


def _log_only(project: Project, tmp_path: Path, with_pred: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(4)
    n = 400
    y = (rng.random(n) < 0.3).astype(int)
    score = np.clip(0.3 * y + rng.random(n) * 0.7, 0, 1).round(3)
    pred = (score >= 0.45).astype(int)  # the line decided at 0.45, not at 0.5
    rows = [f"r{i},2026-03-0{1 + i % 9} 10:{i % 60:02d},cam:v7,{score[i]},L{i % 2}" + (f",{pred[i]}" if with_pred
                                                                                      else "") for i in range(n)]
    write_csv(tmp_path / "log.csv", "record_id,ts,model_version,score,line" + (",pred" if with_pred else ""), *rows)
    write_csv(tmp_path / "labels.csv", "record_id,label", *[f"r{i},{y[i]}" for i in range(n)])
    import_predictions(project, tmp_path / "log.csv")
    import_labels(project, tmp_path / "labels.csv", LabelMapping(labelled_at=None))
    return y, score, pred


def test_a_log_only_model_uses_the_logged_decisions(empty_project: Project, tmp_path: Path):
    y, _, pred = _log_only(empty_project, tmp_path, with_pred=True)
    table = compute_slices(empty_project, SliceQuery("cam:v7", min_support=1))
    assert table.overall["recall"][0] == pytest.approx(skm.recall_score(y, pred), abs=1e-12)
    explored = compute_slices(empty_project, SliceQuery("cam:v7", min_support=1, threshold=0.6))
    assert explored.overall["recall"][0] != pytest.approx(table.overall["recall"][0])


def test_a_log_only_model_without_decisions_needs_a_threshold(empty_project: Project, tmp_path: Path, capsys):
    y, score, _ = _log_only(empty_project, tmp_path, with_pred=False)
    with pytest.raises(ThresholdUnknown, match="decision threshold is unknown"):
        compute_slices(empty_project, SliceQuery("cam:v7", min_support=1))
    table = compute_slices(empty_project, SliceQuery("cam:v7", min_support=1, threshold=0.45))
    assert table.overall["recall"][0] == pytest.approx(skm.recall_score(y, score >= 0.45), abs=1e-12)
    folder = empty_project.folder
    empty_project.close()
    assert main(["slices", str(folder), "--model", "cam:v7", "-q"]) == 2
    assert "--threshold" in capsys.readouterr().err
    assert main(["slices", str(folder), "--model", "cam:v7", "--threshold", "0.45", "-q"]) == 0


@pytest.mark.parametrize("name", ["log[1].csv", "line*2.csv", "shift?{a,b}.csv"])
def test_file_names_are_never_read_as_patterns(empty_project: Project, tmp_path: Path, name: str):
    write_csv(tmp_path / name, HEADER, "a,2026-03-01 10:00,m:v1,0.4,L1,1.5")
    write_csv(tmp_path / "log1.csv", HEADER, "z,2026-03-01 10:00,m:v1,0.4,L1,1.5")  # what a pattern would match
    write_csv(tmp_path / "line2.csv", HEADER, "y,2026-03-01 10:00,m:v1,0.4,L1,1.5")
    assert import_predictions(empty_project, tmp_path / name).rows == 1
    assert empty_project.con.execute("SELECT record_id FROM predictions").fetchall() == [("a",)]


def test_alerts_work_without_a_line_dimension(tmp_path: Path):
    """A log sliced only by asset: alerts are raised per asset (the project's dimension), and a feature that
    moved on every asset at once is one plant-wide alert."""
    from datetime import datetime

    from app.core.analysis.alerts import evaluate_alerts, list_alerts

    project = Project.create(tmp_path / "noline", "no lines", slice_dimensions=("asset",))
    rng = np.random.default_rng(8)
    n = 600
    y = (rng.random(n) < 0.5).astype(int)
    score = np.where(y == 1, rng.random(n) * 0.6, rng.random(n) * 0.4).round(3)  # poor recall at 0.5
    temp = np.where(np.arange(n) < n // 2, rng.normal(20, 1, n), rng.normal(30, 1, n)).round(2)
    days = [f"2026-03-{1 + (i * 28) // n:02d} 10:00" for i in range(n)]
    write_csv(tmp_path / "log.csv", "record_id,ts,model_version,score,pred,asset,temp",
              *[f"r{i},{days[i]},cam:v1,{score[i]},{int(score[i] >= 0.5)},R{i % 3},{temp[i]}" for i in range(n)])
    write_csv(tmp_path / "labels.csv", "record_id,label", *[f"r{i},{y[i]}" for i in range(n)])
    import_predictions(project, tmp_path / "log.csv", PredictionMapping(predicted_label="pred", slices={"asset": "asset"}))
    import_labels(project, tmp_path / "labels.csv", LabelMapping(labelled_at=None))
    evaluate_alerts(project, (datetime(2026, 3, 1), datetime(2026, 3, 15)), (datetime(2026, 3, 15),
                                                                                datetime(2026, 3, 29)),
                    _threshold_rules())
    alerts = list_alerts(project)
    rules = {(r["rule"], r["scope"]) for r in alerts.iter_rows(named=True)}
    assert ("drift", "plant-wide") in rules
    assert {("metric_low", f"asset=R{i}") for i in range(3)} <= rules
    from app.core.analysis import operating_review as ops

    review = ops.build_review(project, ops.around(datetime(2026, 3, 15).date(), 14))
    assert [f["feature"] for f in review["health"]["drift"]["line_specific"]] == ["temp"]
    assert review["health"]["drift"]["line_specific"][0]["line"] == "all" and review["health"]["drift"]["plant_wide"] == []
    project.close()


def _threshold_rules():
    from app.core.analysis.alerts import AlertRules

    return AlertRules(recall_min=0.9, min_support=30)
