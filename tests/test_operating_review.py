"""Operating reviews on the sample: the firmware month shows the trigger, the recall drop on the affected line
(interval recomputed independently), the drifted sensor and the silent robot, and nothing on the other lines;
a quiet month shows nothing; a saved record exports and verifies like a packet; the CLI and the screen."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import binomtest, norm

from app.cli import main
from app.core.analysis import operating_review as ops
from app.core.store.project import Project
from app.sample.plant import FIRMWARE_LINE, SILENT_ASSET

FIRMWARE_MONTH = "2026-09"  # the rollout starts on 2026-08-31 (week 18) and the robot is silent in week 21


@pytest.fixture(scope="module")
def september(sample_folder: Path):
    with Project.open_snapshot(sample_folder) as project:
        yield ops.build_review(project, ops.month(FIRMWARE_MONTH)), project.folder


def _counts(folder: Path, line: str, start: str, end: str) -> tuple[int, int]:
    import duckdb

    con = duckdb.connect(str(folder / "project.duckdb"), read_only=True)
    try:
        return con.execute("""SELECT count(*) FILTER (WHERE l.label = 1 AND p.score >= v.threshold),
                                     count(*) FILTER (WHERE l.label = 1)
                              FROM predictions p JOIN labels l USING (record_id)
                              JOIN model_versions v ON v.version_id = p.version_id
                              WHERE p.line = ? AND p.ts >= ?::TIMESTAMP AND p.ts < ?::TIMESTAMP""",
                           [line, start, end]).fetchall()[0]
    finally:
        con.close()


def test_the_firmware_month_finds_exactly_the_sample_stories(september, sample_folder: Path):
    review, _ = september
    h = review["health"]
    assert [(t["line"], t["change"]) for t in review["triggers"]] == [(FIRMWARE_LINE, "firmware 5.0.0")]
    drops = h["drops"]["findings"]
    assert [(d["line"], d["metric"]) for d in drops] == [(FIRMWARE_LINE, "recall")]
    assert [(f["line"], f["feature"]) for f in h["drift"]["line_specific"]] == [(FIRMWARE_LINE, "contact_tip_temp_c")]
    assert "ambient_temp_c" in [f["feature"] for f in h["drift"]["plant_wide"]]  # the season, reported once
    assert [s["asset"] for s in h["silent"]] == [SILENT_ASSET]
    lines = {t["line"] for t in review["triggers"]} | {d["line"] for d in drops} | \
        {f["line"] for f in h["drift"]["line_specific"]} | {s["line"] for s in h["silent"]}
    assert lines == {FIRMWARE_LINE, SILENT_ASSET[:6]}  # nothing spurious on the other ten lines
    # the model's confidence no longer matches the labels on the firmware line only
    estimates = h["estimates"]
    assert [g["line"] for g in estimates["gaps"]] == [FIRMWARE_LINE] and "recall" in estimates["gaps"][0]["gap_metrics"]
    assert len(estimates["per_line"]) == 12
    gap = estimates["gaps"][0]
    assert gap["recall_realized"] < gap["recall_lower"] <= gap["recall"]
    # the sample's releases were staged before governance existed: none has a verified chain, none is in September
    assert review["delivery"]["governed"] is False and review["delivery"]["unverified_releases"] == []
    assert ops.findings_count(review) == 5


def test_the_recall_drop_interval_matches_an_independent_computation(september, sample_folder: Path):
    review, _ = september
    drop = review["health"]["drops"]["findings"][0]
    tested = review["health"]["drops"]["tested"]
    k1, n1 = _counts(sample_folder, FIRMWARE_LINE, "2026-09-01", "2026-10-01")
    k0, n0 = _counts(sample_folder, FIRMWARE_LINE, "2026-08-01", "2026-09-01")
    assert (drop["now"], drop["before"]) == pytest.approx((k1 / n1, k0 / n0))
    confidence = 1 - 0.05 / tested
    ci1 = binomtest(k1, n1).proportion_ci(confidence, method="wilson")
    ci0 = binomtest(k0, n0).proportion_ci(confidence, method="wilson")
    p1, p0 = k1 / n1, k0 / n0
    low = p1 - p0 - np.sqrt((p1 - ci1.low) ** 2 + (ci0.high - p0) ** 2)
    high = p1 - p0 + np.sqrt((ci1.high - p1) ** 2 + (p0 - ci0.low) ** 2)
    assert (drop["low"], drop["high"]) == pytest.approx((low, high))
    assert high < 0 and norm.ppf(1 - 0.05 / tested / 2) > 3  # Bonferroni-corrected


def test_a_problem_that_persists_stays_on_the_record_with_the_month_it_began(sample_folder: Path):
    """October compares with September, when P2-L02 was already low: no new drop, but the line is still below its
    reference and was never re-validated, so the record keeps it open since September."""
    with Project.open_snapshot(sample_folder) as project:
        review = ops.build_review(project, ops.month("2026-10"))
    assert not [d for d in review["health"]["drops"]["findings"] if d["line"] == FIRMWARE_LINE]
    [still] = review["health"]["persisting"]
    assert (still["line"], still["since"], still["validated_since"]) == (FIRMWARE_LINE, "2026-09", 0)
    assert "still open since 2026-09; no validation run since" in still["evidence"]
    k, n = _counts(sample_folder, FIRMWARE_LINE, "2026-10-01", "2026-11-01")
    assert still["recall"] == pytest.approx(k / n)
    assert ops.findings_count(review) >= 1


def test_a_quiet_month_has_no_findings(sample_folder: Path):
    with Project.open_snapshot(sample_folder) as project:
        review = ops.build_review(project, ops.month("2026-07"))
    assert ops.findings_count(review) == 0 and not review["health"]["drift"]["line_specific"]
    assert review["health"]["persisting"] == []


def test_periods_and_their_comparison_periods():
    assert ops.month("2026-01").previous[0].isoformat() == "2025-12-01T00:00:00"
    assert ops.quarter("2026Q1").previous[0].isoformat() == "2025-10-01T00:00:00"
    assert ops.quarter("2026Q3").end.isoformat() == "2026-10-01T00:00:00"
    with pytest.raises(ops.ReviewError, match="YYYY-MM"):
        ops.month("September")


def test_a_saved_review_exports_signed_and_verifies_like_a_packet(sample_copy: Path, tmp_path: Path, monkeypatch):
    from app.core.governance.approvals import add_user, unlock
    from app.core.governance.identity import cert_pem, create_identity, create_site_ca, unlock_identity
    from app.core.packet import PASSED, Signing, verify_packet
    from app.core.packet.review_pdf import export_review

    monkeypatch.setenv("LINEPROOF_HOME", str(tmp_path / "profile"))
    ca = tmp_path / "ca.pem"
    ca.write_text(cert_pem(create_site_ca("plant-ca", "Plant CA", "review-pass")))
    with Project.open(sample_copy) as project:
        add_user(project, "ola", "Ola Ødegård", cert_pem(create_identity("ola", "Ola Ødegård", "review-pass",
                                                                         ca_id="plant-ca", ca_passphrase="review-pass")),
                 ["validation_lead"], by=unlock_identity("ola", "review-pass"))
        review = ops.build_review(project, ops.month(FIRMWARE_MONTH))
        with pytest.raises(ops.ReviewError, match="needs the reviewer's decision"):
            ops.save_review(project, review, " ", [], "ola")
        review_id = ops.save_review(project, review, "Re-validate v1 on P2-L02 with firmware 5.0 data",
                                    ["re-validate weld-defect:v1 on P2-L02", "call maintenance for P3-L02-R05"], "ola")
        path = export_review(project, review_id, project.folder / "packets" / "review.pdf",
                             [Signing(unlock(project, "ola", "review-pass"), "reviewed by")])
        assert ops.next_review_due(project) == "2026-10"
    result = verify_packet(path, [ca])
    assert result.indication == PASSED and "findings match their hash" in result.evidence
    if shutil.which("pdfsig") and shutil.which("certutil"):
        from tests.test_packet import _pdfsig

        sigs = _pdfsig(path, [ca], tmp_path / "nss")
        assert [(s["signature"], s["certificate"]) for s in sigs] == [("Signature is Valid.", "Certificate is Trusted.")]


def test_cli_review_month(sample_folder: Path, capsys):
    assert main(["review", str(sample_folder), "--month", FIRMWARE_MONTH, "-q"]) == 0
    out = capsys.readouterr().out
    assert "recall" in out and FIRMWARE_LINE in out and SILENT_ASSET in out
    assert main(["review", str(sample_folder)]) == 2
    assert "or a period (--month YYYY-MM)" in capsys.readouterr().err


@pytest.mark.gui
def test_reviews_screen_builds_saves_and_exports(qtbot, sample_copy: Path, tmp_path: Path, monkeypatch):
    from app.core.governance.approvals import add_user
    from app.core.governance.identity import cert_pem, create_identity, unlock_identity
    from app.core.packet import INDETERMINATE, verify_packet
    from app.views.reviews_view import ReviewsView

    monkeypatch.setenv("LINEPROOF_HOME", str(tmp_path / "profile"))
    with Project.open(sample_copy) as project:
        add_user(project, "ola", "Ola", cert_pem(create_identity("ola", "Ola", "review-pass")), ["validation_lead"],
                 by=unlock_identity("ola", "review-pass"))
        view = ReviewsView()
        qtbot.addWidget(view)
        view.set_project(project)
        assert view.stack.currentIndex() == 1 and view.period.findText(FIRMWARE_MONTH) >= 0
        assert view.period.currentText() == "2026-10"  # the log ends on 1 November: the last whole month
        view.period.setCurrentText(FIRMWARE_MONTH)
        with qtbot.waitSignal(view.start().done, timeout=60_000):
            pass
        sections = [view.findings.row(i)["section"] for i in range(view.findings.rowCount())]
        assert sections[:4] == ["Trigger", "Metric drop", "Line drift", "Silent asset"]
        assert "5 finding(s)" in view.summary.text()
        assert view.save() is None  # no decision: refused with a dialog
        view.decision.setText("Re-validate v1 on P2-L02")
        view.actions.setPlainText("re-validate weld-defect:v1\ncall maintenance for P3-L02-R05")
        assert view.save() and view.export_button.isEnabled()
        view.ask_passphrase = lambda user: "review-pass"
        view.ask_path = lambda suggestion: str(tmp_path / "review.pdf")
        with qtbot.waitSignal(view.export().done, timeout=60_000) as exported:
            pass
        written = exported.args[0]
        assert written and verify_packet(written, []).indication == INDETERMINATE  # intact, nobody trusted


def test_alerts_are_counted_with_precision_per_line_against_the_previous_period(sample_copy: Path):
    rows = [("P2-L02", "real", "2026-09-10"), ("P2-L02", "false", "2026-09-12"), ("P2-L02", "false", "2026-08-10"),
            ("P1-L01", "open", "2026-09-03"), ("P1-L01", "real", "2026-10-02")]
    with Project.open(sample_copy) as project:
        with project.change("test.alerts", "hand-made") as con:
            for i, (line, state, ts) in enumerate(rows):
                con.execute("INSERT INTO alerts (alert_id, rule, scope, line, subject, severity, message, "
                            "evidence_json, raised_at, state) VALUES (?, 'recall_drop', 'line', ?, ?, 'warning', "
                            "'m', '{}', ?::TIMESTAMP, ?)", [900 + i, line, f"s{i}", ts, state])
        alerts = ops.build_review(project, ops.month(FIRMWARE_MONTH))["alerts"]
    assert (alerts["raised"], alerts["real"], alerts["false"], alerts["open"]) == (3, 1, 1, 1)
    assert alerts["precision_by_line"] == [{"line": "P2-L02", "precision": 0.5, "judged": 2, "precision_before": 0.0,
                                            "judged_before": 1}]
