"""Validation runs end to end with real ONNX Runtime / OpenVINO inference on hand-made data whose answers are
known, the sample's release decision, refusals before any inference, reproducibility and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import polars as pl
import pytest
from onnx import TensorProto, helper, numpy_helper

from app.cli import main
from app.core.errors import Cancelled
from app.core.models.model_import import import_model
from app.core.models.registry import register_model
from app.core.models.validation import (
    FAIL,
    INCONCLUSIVE,
    PASS,
    SKIPPED,
    PlanError,
    ValidationError,
    parse_plan,
    run_validation,
)
from app.core.models.validation.criteria import NOT_JUDGED
from app.core.progress import TaskProgress
from app.core.store.datasets import register_dataset
from app.core.store.project import Project
from tests.helpers import opened_copy

HEAD = '[plan]\nname = "t"\ndataset = "held"\nrecord_id = "record_id"\n[data]\nno_overlap_with_training = false\n'


def _score_model(path: Path) -> Path:
    """probability = the single input feature (x * 1), so a dataset column is exactly the model's score."""
    one = numpy_helper.from_array(np.ones((1, 1), dtype=np.float32), "one")
    graph = helper.make_graph([helper.make_node("Mul", ["x", "one"], ["probability"])], "score",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 1])],
                              [helper.make_tensor_value_info("probability", TensorProto.FLOAT, ["n", 1])], [one])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _held_out() -> pl.DataFrame:
    """L1: both detect 190/200 defects; L2: champion 190/200, candidate 120/200; L3 (tiny): 10 vs 8 of 10.
    Both flag 10 of 200 good parts on L1 and L2 and none on L3."""
    parts = []
    for line, pos, neg, champ_hits, cand_hits, flags in (("L1", 200, 200, 190, 190, 10),
                                                         ("L2", 200, 200, 190, 120, 10), ("L3", 10, 10, 10, 8, 0)):
        i, j = np.arange(pos), np.arange(neg)
        parts.append(pl.DataFrame({
            "line": [line] * (pos + neg), "label": np.r_[np.ones(pos), np.zeros(neg)].astype(np.int64),
            "cand": np.r_[np.where(i < cand_hits, 0.9, 0.1), np.where(j < flags, 0.9, 0.1)],
            "champ": np.r_[np.where(i < champ_hits, 0.9, 0.1), np.where(j < flags, 0.9, 0.1)]}))
    frame = pl.concat(parts)
    tiny = pl.int_range(pl.len()).cast(pl.Float64) * 1e-6  # distinct rows for the row-hash overlap check
    return frame.with_columns(pl.format("R{}", pl.int_range(pl.len())).alias("record_id"),
                              (pl.col("cand") + tiny).alias("cand"), (pl.col("champ") + tiny).alias("champ"))


@pytest.fixture(scope="module")
def small_template(tmp_path_factory) -> Path:
    """Candidate and champion (one scorer file), a leaky and a clean training pull and the held-out set; built once
    (two imports with their isolated runtime checks take ~1.4 s), each test gets its own copy."""
    folder = tmp_path_factory.mktemp("validation-template")
    with Project.create(folder / "proj", "validation test", site="T1") as project:
        register_model(project, "m", "scorer", "binary")
        model = _score_model(folder / "m.onnx")
        held = _held_out()
        held.write_parquet(folder / "held.parquet")
        held.head(5).write_parquet(folder / "train.parquet")  # 5 held-out rows leaked into training
        held.head(0).write_parquet(folder / "clean.parquet")
        leaky = register_dataset(project, "train", "leaky training pull", "training", folder / "train.parquet")
        clean = register_dataset(project, "clean", "clean training pull", "training", folder / "clean.parquet")
        register_dataset(project, "held", "held out", "validation", folder / "held.parquet")
        import_model(project, model, "m", "cand", 0.5, lineage={"training_dataset": leaky}, card={"features": ["cand"]})
        import_model(project, model, "m", "champ", 0.5, lineage={"training_dataset": clean},
                     card={"features": ["champ"]})
    return folder / "proj"


@pytest.fixture
def small(tmp_path: Path, small_template: Path):
    """A private copy of the validation template."""
    with opened_copy(small_template, tmp_path / "proj") as project:
        yield project


def _run(project: Project, body: str, **kw):
    return run_validation(project, parse_plan(HEAD + body), "m:cand", kw.pop("champion", "m:champ"), **kw)


def _only(run, kind: str):
    found = [c for c in run.criteria if c.kind == kind]
    assert len(found) == 1
    return found[0]


@pytest.mark.parametrize(("minimum", "expected"), [(0.60, PASS), (0.78, INCONCLUSIVE), (0.90, FAIL)])
def test_overall_threshold_pass_inconclusive_fail(small: Project, minimum: float, expected: str) -> None:
    run = _run(small, f"[[overall]]\nmetric = 'recall'\nmin = {minimum}\n")
    check = _only(run, "overall").checks[0]
    assert check.value == pytest.approx(318 / 410)  # 190 + 120 + 8 of 410 defects
    assert check.status == expected and run.verdict == expected


def test_per_slice_threshold_judges_each_line_and_reports_small_ones(small: Project) -> None:
    run = _run(small, "[[per_slice]]\nby = ['line']\nmetric = 'recall'\nmin = 0.8\nmin_support = 50\n")
    by_line = {c.slice["line"]: c for c in _only(run, "per_slice").checks}
    assert (by_line["L1"].status, by_line["L2"].status, by_line["L3"].status) == (PASS, FAIL, NOT_JUDGED)
    assert by_line["L2"].value == pytest.approx(0.6) and "support 10 defects < 50" in by_line["L3"].evidence
    assert run.verdict == FAIL
    # Only slices below their support: nothing judged is not a pass.
    run = _run(small, "[[per_slice]]\nby = ['line']\nmetric = 'recall'\nmin = 0.8\nmin_support = 1000\n")
    assert _only(run, "per_slice").status == INCONCLUSIVE


def test_non_regression_uses_the_paired_interval(small: Project) -> None:
    run = _run(small, "[[non_regression]]\nby = ['line']\nmetric = 'recall'\nmax_drop = 0.05\nmin_support = 5\n")
    by_line = {c.slice["line"]: c for c in _only(run, "non_regression").checks}
    assert by_line["L1"].status == PASS and by_line["L1"].value == pytest.approx(0.0)
    assert by_line["L2"].status == FAIL and by_line["L2"].value == pytest.approx(-0.35)
    # L3 lost 2 of 10 defects: 0.2 worse, but 10 defects cannot show that the drop exceeds 0.05.
    assert by_line["L3"].status == INCONCLUSIVE and by_line["L3"].high > -0.05
    assert run.verdict == FAIL


def test_a_lower_is_better_metric_counts_a_rise_as_a_drop(small: Project) -> None:
    run = _run(small, "[[non_regression]]\nmetric = 'fpr'\nmax_drop = 0.01\n")
    check = _only(run, "non_regression").checks[0]
    assert check.candidate == check.champion == pytest.approx(20 / 410) and check.status == PASS


def test_parity_compares_both_runtimes_on_every_row(small: Project) -> None:
    run = _run(small, "[parity]\nmodels = ['candidate', 'champion']\nmax_abs_diff = 1e-6\n")
    parity = _only(run, "parity")
    assert parity.status == PASS and [c.status for c in parity.checks] == [PASS, PASS]
    assert run.result["parity"]["candidate"]["rows"] == 820
    scores = pl.read_parquet(run.scores_path)
    assert np.abs(scores["candidate_onnxruntime"] - scores["candidate_openvino"]).max() <= 1e-6
    assert np.allclose(scores["candidate_onnxruntime"], _held_out()["cand"], atol=1e-7)


def test_latency_budget_from_a_benchmark_run(small: Project) -> None:
    latency = "[latency]\nmax_ms = {}\nsource = '{}'\nseconds = 0.5\n"
    missing = _run(small, latency.format(1000, "recorded"))
    assert missing.verdict == INCONCLUSIVE and "No benchmark run of m:cand" in _only(missing, "latency").checks[0].evidence
    measured = _run(small, latency.format(1000, "run"))
    check = _only(measured, "latency").checks[0]
    if check.status == INCONCLUSIVE:  # a busy CI machine marks the run NOISY; the verdict must say so
        assert "NOISY" in check.evidence
        return
    assert check.status == PASS and 0 < check.value < 1000
    over = _run(small, latency.format(1e-6, "recorded"))  # the run just recorded, against a budget it misses
    assert _only(over, "latency").status == FAIL and _only(over, "latency").details["bench_run_id"]


def test_overlap_with_training_data_and_label_coverage(small: Project, tmp_path: Path) -> None:
    body = "[[overall]]\nmetric = 'auc'\nmin = 0.5\n"
    plan = HEAD.replace("no_overlap_with_training = false", "no_overlap_with_training = true\nmin_label_coverage = 0.9")
    run = run_validation(small, parse_plan(plan + body), "m:cand", "m:champ")
    overlap = next(c for c in run.criteria if c.title.startswith("no overlap"))
    by_model = {c.slice["model"]: c for c in overlap.checks}
    assert by_model["m:cand"].status == FAIL and by_model["m:cand"].value == 5
    assert by_model["m:champ"].status == PASS
    by_row = run_validation(small, parse_plan(plan.replace("min_label_coverage", "overlap_key = 'row'\n"
                                                           "min_label_coverage") + body), "m:cand", "m:champ")
    overlap = next(c for c in by_row.criteria if c.title.startswith("no overlap"))
    assert [c.value for c in overlap.checks] == [5, 0]
    coverage = next(c for c in run.criteria if c.title.startswith("label coverage"))
    assert coverage.status == PASS and coverage.checks[0].value == 1.0


def test_label_coverage_below_the_plan_fails(small: Project, tmp_path: Path) -> None:
    held = _held_out().with_columns(pl.when(pl.int_range(pl.len()) % 5 == 0).then(None).otherwise(pl.col("label"))
                                    .alias("label"))
    held.write_parquet(tmp_path / "partly.parquet")
    register_dataset(small, "partly", "partly labelled", "validation", tmp_path / "partly.parquet")
    plan = HEAD.replace("no_overlap_with_training = false", "no_overlap_with_training = false\nmin_label_coverage = 0.9")
    run = run_validation(small, parse_plan(plan + "[[overall]]\nmetric = 'recall'\nmin = 0.5\n"), "m:cand",
                         "m:champ", "partly")
    coverage = next(c for c in run.criteria if c.title.startswith("label coverage"))
    assert coverage.status == FAIL and coverage.checks[0].value == pytest.approx(656 / 820)


def _nothing_written(project: Project) -> tuple:
    con = project.con
    return (con.execute("SELECT count(*) FROM audit_log").fetchone()[0],
            con.execute("SELECT count(*) FROM validation_plans").fetchone()[0],
            con.execute("SELECT count(*) FROM validation_runs").fetchone()[0],
            (project.folder / "artifacts" / "validation").exists())


@pytest.mark.parametrize(("body", "message"), [
    ("[[per_slice]]\nby = ['robot']\nmetric = 'recall'\nmin = 0.5\n", "no column 'robot'"),
    ("[[overall]]\nmetric = 'recall'\nmin = 0.5\n[plan.x]\n", "unknown key 'x' in [plan]"),
])
def test_a_plan_the_data_cannot_answer_is_refused_before_any_inference(small: Project, body: str,
                                                                       message: str) -> None:
    before = _nothing_written(small)
    with pytest.raises(PlanError, match=message.replace("[", r"\[").replace("]", r"\]")):
        _run(small, body)
    assert _nothing_written(small) == before


@pytest.mark.parametrize(("text", "message"), [
    ("[[overall]]\nmetric = 'recal'\nmin = 0.5\n", "metric 'recal'"),
    ("[[overall]]\nmetric = 'recall'\nmin = 0.5\nmax = 0.9\n", "exactly one of min or max"),
    ("[[non_regression]]\nmetric = 'precision'\nmax_drop = 0.1\n", "no paired test"),
    ("[[overall]]\nmetric = 'recall'\nminimum = 0.5\n", "unknown key 'minimum'"),
    ("[[overall]]\nmetric = 'recall'\nmin = 'high'\n", "is not a number"),
    ("[[overal]]\nmetric = 'recall'\nmin = 0.5\n", "unknown table 'overal'"),
    ("[latency]\nmax_ms = 5\npercentile = 'p98'\n", "percentile = 'p98'"),
    ("[[overall]\nmetric = 'recall'\n", "not valid TOML"),
    ("[plan]\nname = 'x'\n", "has no criteria"),
])
def test_plan_errors_name_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(PlanError, match=message) as info:
        parse_plan(text, "release.toml")
    assert "release.toml" in str(info.value)


def test_a_dataset_or_model_that_does_not_fit_is_refused(small: Project, tmp_path: Path) -> None:
    body = "[[overall]]\nmetric = 'recall'\nmin = 0.5\n"
    with pytest.raises(ValidationError, match="training dataset"):
        _run(small, body, dataset_id="train")
    with pytest.raises(ValidationError, match="Unknown candidate"):
        run_validation(small, parse_plan(HEAD + body), "m:nope", "m:champ")
    with pytest.raises(PlanError, match="compares with a champion"):
        run_validation(small, parse_plan(HEAD + "[[non_regression]]\nmetric = 'auc'\nmax_drop = 0.1\n"), "m:cand")
    (small.folder / small.con.execute("SELECT artifact_path FROM datasets WHERE dataset_id = 'held'"
                                      ).fetchone()[0]).chmod(0o644)
    with open(small.folder / small.con.execute("SELECT artifact_path FROM datasets WHERE dataset_id = 'held'"
                                               ).fetchone()[0], "ab") as f:
        f.write(b"tampered")
    before = _nothing_written(small)
    with pytest.raises(ValidationError, match="no longer matches its sha256"):
        _run(small, body)
    assert _nothing_written(small) == before


def test_two_runs_give_identical_results_and_both_are_stored(small: Project) -> None:
    body = ("[[overall]]\nmetric = 'auc'\nmin = 0.8\n[[per_slice]]\nby = ['line']\nmetric = 'fpr'\nmax = 0.2\n"
            "[[non_regression]]\nby = ['line']\nmetric = 'auc'\nmax_drop = 0.05\n")
    first, second = _run(small, body), _run(small, body)
    assert first.run_id != second.run_id
    assert first.result_sha256 == second.result_sha256
    strip = ("timing", "scores_file")
    assert {k: v for k, v in first.result.items() if k not in strip} == \
        {k: v for k, v in second.result.items() if k not in strip}
    rows = small.con.execute("SELECT run_id, verdict, plan_sha256, result_sha256 FROM validation_runs ORDER BY 1"
                             ).fetchall()
    assert [r[3] for r in rows] == [first.result_sha256] * 2
    stored = json.loads(small.con.execute("SELECT result_json FROM validation_runs WHERE run_id = ?",
                                          [first.run_id]).fetchone()[0])
    assert stored["plan"]["sha256"] == parse_plan(HEAD + body).sha256
    assert small.con.execute("SELECT count(*) FROM validation_plans").fetchone()[0] == 1  # same text: one revision


def test_the_plan_hash_is_audited_before_the_run_and_a_cancelled_run_says_so(small: Project) -> None:
    progress = TaskProgress()
    progress.report = lambda fraction, message="": progress.cancel() if "Scoring" in message else None
    plan = parse_plan(HEAD + "[[overall]]\nmetric = 'recall'\nmin = 0.5\n")
    with pytest.raises(Cancelled):
        run_validation(small, plan, "m:cand", "m:champ", progress=progress)
    trail = small.con.execute("SELECT action, details_json FROM audit_log WHERE action LIKE 'validation.%' "
                              "ORDER BY seq").fetchall()
    assert [a for a, _ in trail] == ["validation.start", "validation.abandoned"]
    assert json.loads(trail[0][1])["plan_sha256"] == plan.sha256
    assert small.con.execute("SELECT count(*) FROM validation_runs").fetchone()[0] == 0
    assert not list((small.folder / "artifacts" / "validation").glob("*.parquet"))


def test_sample_v2_fails_on_the_aluminium_line_although_it_is_better_overall(sample_copy: Path) -> None:
    from app.sample.plant import ALUMINIUM_LINE
    from app.sample.release_plan import RELEASE_PLAN

    with Project.open(sample_copy) as project:
        run = run_validation(project, parse_plan(RELEASE_PLAN), "weld-defect:v2", "weld-defect:v1")
    assert run.verdict == FAIL
    overall = [c for c in run.criteria if c.kind == "overall" or (c.kind == "non_regression" and not c.checks[0].slice)]
    assert overall and all(c.status == PASS for c in overall)  # the overall view would release it
    gains = {c.checks[0].metric: c.checks[0].value for c in overall if c.kind == "non_regression"}
    assert gains["recall"] > 0 and gains["auc"] > 0  # and it is better than production overall
    failed = run.failing()
    assert failed and {k.slice.get("line") for _, k in failed} == {ALUMINIUM_LINE}
    assert {c.kind for c, _ in failed} == {"non_regression"}
    parity = next(c for c in run.criteria if c.kind == "parity")
    cand = next(k for k in parity.checks if k.slice["model"].startswith("candidate"))
    assert cand.status == SKIPPED and "TreeEnsembleClassifier" in cand.evidence


def test_cli_validate_exit_codes_gate_a_release(small: Project, tmp_path: Path, capsys) -> None:
    folder = str(small.folder)
    small.close()
    plans = {}
    for name, body in (("pass", "[[overall]]\nmetric = 'recall'\nmin = 0.6\n"),
                       ("fail", "[[overall]]\nmetric = 'recall'\nmin = 0.9\n"),
                       ("unsure", "[[overall]]\nmetric = 'recall'\nmin = 0.78\n"),
                       ("broken", "[[overall]]\nmetric = 'recal'\nmin = 0.6\n")):
        plans[name] = tmp_path / f"{name}.toml"
        plans[name].write_text(HEAD + body)
    args = [folder, "--candidate", "m:cand", "--champion", "m:champ", "-q", "--plan"]
    assert main(["validate", *args, str(plans["pass"])]) == 0
    assert "Verdict: PASS" in capsys.readouterr().out
    assert main(["validate", *args, str(plans["fail"])]) == 1
    assert "Verdict: FAIL" in capsys.readouterr().out
    assert main(["validate", *args, str(plans["unsure"]), "--format", "json"]) == 2
    assert json.loads(capsys.readouterr().out)["verdict"] == INCONCLUSIVE
    assert main(["validate", *args, str(plans["broken"])]) == 2
    assert "metric 'recal'" in capsys.readouterr().err
    # By id: the latest stored revision of plan "t" is the last one run (the "unsure" one).
    assert main(["validate", *args, "t"]) == 2
    assert main(["validations", folder]) == 0
    assert capsys.readouterr().out.count("m:cand") == 5


def test_a_high_risk_release_request_needs_a_passed_run(small: Project, tmp_path: Path, monkeypatch) -> None:
    from app.core.governance.approvals import GovernanceError, add_user, create_request, governance, unlock
    from app.core.governance.identity import cert_pem, create_identity, unlock_identity

    monkeypatch.setenv("LINEPROOF_HOME", str(tmp_path / "profile"))
    add_user(small, "vera", "Vera Łukasz", cert_pem(create_identity("vera", "Vera Łukasz", "pw-123456")),
             ["admin", "validation_lead"], by=unlock_identity("vera", "pw-123456"))
    vera = unlock(small, "vera", "pw-123456")
    register_model(small, "hi", "high-risk scorer", "binary", risk_tier="high", by=vera)
    import_model(small, _score_model(tmp_path / "hi.onnx"), "hi", "v1", 0.5, card={"features": ["cand"]}, by=vera)
    passed = run_validation(small, parse_plan(HEAD + "[[overall]]\nmetric = 'recall'\nmin = 0.6\n"), "hi:v1",
                            by=vera)
    failed = run_validation(small, parse_plan(HEAD + "[[overall]]\nmetric = 'recall'\nmin = 0.9\n"), "hi:v1",
                            by=vera)
    assert (passed.verdict, failed.verdict) == (PASS, FAIL)
    assert governance(small).runs[passed.run_id]["signed_by"] == "vera"  # the result hash, signed by its runner
    with pytest.raises(GovernanceError, match=f"run {failed.run_id} is FAIL"):
        create_request(small, "hi:v1", "T1", "production", vera, failed.run_id)
    request = create_request(small, "hi:v1", "T1", "production", vera, passed.run_id)
    subject = json.loads(small.con.execute("SELECT subject_json FROM approval_requests WHERE request_id = ?",
                                           [request]).fetchone()[0])
    assert subject["validation_result_sha256"] == passed.result_sha256
    assert subject["plan_sha256"] == parse_plan(HEAD + "[[overall]]\nmetric = 'recall'\nmin = 0.6\n").sha256


def test_parity_fails_when_the_runtimes_disagree_and_is_skipped_without_openvino():
    from app.core.models.validation.checks import parity_criterion, parity_summary
    from app.core.models.validation.plan import ParityRule
    from app.core.models.validation.scoring import RuntimeScores

    ort_scores = np.linspace(0.0, 1.0, 1001)
    drifted = ort_scores + np.where(np.abs(ort_scores - 0.5) < 0.01, 0.02, 0.0)  # 21 rows near the threshold move
    rule = ParityRule(max_abs_diff=1e-4, min_agreement=0.999, models=("candidate",))
    ok = parity_summary(RuntimeScores("onnxruntime", ort_scores), RuntimeScores("openvino", ort_scores.copy()), 0.5)
    bad = parity_summary(RuntimeScores("onnxruntime", ort_scores), RuntimeScores("openvino", drifted), 0.5)
    assert parity_criterion(rule, {"candidate": ok}, {"candidate": "m:cand"}).status == PASS
    failed = parity_criterion(rule, {"candidate": bad}, {"candidate": "m:cand"})
    assert failed.status == FAIL and bad["max_abs_diff"] == pytest.approx(0.02)
    assert bad["disagreements"] == int(np.sum((ort_scores >= 0.5) != (drifted >= 0.5))) > 0
    skipped = parity_summary(RuntimeScores("onnxruntime", ort_scores),
                             RuntimeScores("openvino", None, skipped="OpenVINO has no conversion for X"), 0.5)
    assert parity_criterion(rule, {"candidate": skipped}, {"candidate": "m:cand"}).status == SKIPPED


def test_overlap_cannot_be_judged_without_a_known_training_dataset(small: Project, tmp_path: Path):
    import_model(small, _score_model(tmp_path / "nolineage.onnx"), "m", "nolineage", 0.5, card={"features": ["cand"]})
    plan = parse_plan(HEAD.replace("no_overlap_with_training = false", "no_overlap_with_training = true")
                      + "[[overall]]\nmetric = 'recall'\nmin = 0.6\n")
    run = run_validation(small, plan, "m:nolineage")
    overlap = next(c for c in run.criteria if c.title.startswith("no overlap"))
    assert overlap.status == INCONCLUSIVE and "names no training dataset" in overlap.checks[0].evidence
    assert run.verdict == INCONCLUSIVE
