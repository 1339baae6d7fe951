"""Numbers lead to their rows (#27 item 6): the rows behind a slice, a drift cell or an alert, read and exported,
checked against direct DuckDB counts; a filter the log cannot answer is refused naming the column."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl
import pytest

from app.core.analysis.records import (
    RecordFilter,
    RecordsError,
    alert_filter,
    count_records,
    export_records,
    period_span,
    read_records,
)
from app.core.store.ingest import import_predictions
from app.core.store.project import Project
from tests.helpers import write_csv

MAY, JUNE = datetime(2026, 5, 1), datetime(2026, 6, 1)


def _direct(folder: Path, sql: str) -> int:
    con = duckdb.connect(str(folder / "project.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()[0][0]
    finally:
        con.close()


def test_the_rows_of_a_slice_are_those_a_direct_query_counts(sample_copy: Path, tmp_path: Path) -> None:
    f = RecordFilter((("line", "P2-L02"),), MAY, JUNE, "weld-defect:v1")
    expected = _direct(sample_copy, "SELECT count(*) FROM predictions WHERE line = 'P2-L02' AND ts >= '2026-05-01' "
                                    "AND ts < '2026-06-01' AND version_id = 'weld-defect:v1'")
    with Project.open(sample_copy, read_only=True) as project:
        assert expected > 0 and count_records(project, f) == expected
        rows = read_records(project, f, limit=50)
        assert rows.height == min(50, expected) and set(rows["line"]) == {"P2-L02"}
        assert rows["ts"].is_sorted(descending=True)
        labelled = rows.filter(pl.col("label").is_not_null()).row(0, named=True)
        stored = _direct(sample_copy, f"SELECT label FROM labels WHERE record_id = '{labelled['record_id']}'")
        assert labelled["label"] == stored
        out = tmp_path / "rows.csv"
        assert export_records(project, f, out) == expected
    exported = pl.read_csv(out)
    assert exported.height == expected and {"record_id", "ts", "score", "label", "line"} <= set(exported.columns)
    assert not list(tmp_path.glob(".*partial"))


def test_a_filter_the_log_cannot_answer_or_a_file_that_cannot_be_written_is_refused(sample_copy: Path,
                                                                                   tmp_path: Path) -> None:
    with Project.open(sample_copy, read_only=True) as project:
        with pytest.raises(RecordsError, match="no column 'cell'"):
            count_records(project, RecordFilter((("cell", "C1"),)))
        with pytest.raises(RecordsError, match="could not be written"):
            export_records(project, RecordFilter((("line", "P2-L02"),)), tmp_path / "missing-folder" / "rows.csv")
    assert not (tmp_path / "missing-folder").exists()


def test_an_empty_slice_value_selects_the_rows_without_one(empty_project: Project, tmp_path: Path) -> None:
    rows = [f"r{i},2026-03-0{1 + i % 9} 10:00:00,m:v1,0.{i % 10},{'' if i % 4 == 0 else 'L1'}" for i in range(40)]
    import_predictions(empty_project, write_csv(tmp_path / "log.csv", "record_id,ts,model_version,score,line", *rows))
    assert count_records(empty_project, RecordFilter((("line", "(missing)"),))) == 10
    assert count_records(empty_project, RecordFilter((("line", "L1"),))) == 30


def test_periods_and_alert_scopes_become_filters() -> None:
    assert period_span("2026-12-01", "month") == (datetime(2026, 12, 1), datetime(2027, 1, 1))
    assert period_span("2026-05-04T00:00:00", "week") == (datetime(2026, 5, 4), datetime(2026, 5, 11))
    assert period_span("2026-05-04", "day")[1] == datetime(2026, 5, 5)
    assert alert_filter("line=P2-L02", MAY, JUNE) == RecordFilter((("line", "P2-L02"),), MAY, JUNE)
    assert alert_filter("plant-wide", MAY, JUNE).where == ()


@pytest.mark.gui
@pytest.mark.slow  # computes the slice table and evaluates the alert rules on the sample
def test_the_slices_and_alerts_screens_open_the_rows_behind_their_numbers(qtbot, sample_copy: Path) -> None:
    from app.views.alerts_view import AlertsView
    from app.views.slices_view import SlicesView

    project = Project.open(sample_copy)
    try:
        slices = SlicesView()
        qtbot.addWidget(slices)
        slices.show()  # the screen computes when shown
        with qtbot.waitSignal(slices.computed, timeout=60_000):
            slices.set_project(project)
        with qtbot.waitSignal(slices.drilled, timeout=60_000):
            slices.drill((("line", "P2-L02"),))
        dialog = slices.show_rows()
        qtbot.addWidget(dialog)
        qtbot.waitUntil(lambda: dialog.total > 0, timeout=30_000)
        assert dialog.total == count_records(project, slices.record_filter())
        assert dialog.model.rowCount() == min(dialog.total, 1000) and "P2-L02" in dialog.windowTitle()

        from app.core.analysis.alerts import evaluate_alerts

        first, last = project.con.execute("SELECT min(ts), max(ts) FROM predictions").fetchall()[0]
        evaluate_alerts(project, (first, first + (last - first) * 0.4), (last - (last - first) * 0.2, last))
        alerts = AlertsView()
        qtbot.addWidget(alerts)
        alerts.show()
        alerts.set_project(project)
        row = next(r for r in range(alerts.alerts_model.rowCount())
                   if alerts.alerts_model.row(r)["scope"].startswith("line="))
        alerts._selected(alerts.alerts_model.index(row, 0))
        record = alerts.alerts_model.row(row)
        dialog = alerts.show_rows()
        qtbot.addWidget(dialog)
        qtbot.waitUntil(lambda: dialog.summary.text().endswith((".", "shown.")) and "Reading" not in
                        dialog.summary.text(), timeout=30_000)
        line = record["scope"].partition("=")[2]
        with project.reading() as con:
            direct = con.execute("SELECT count(*) FROM predictions WHERE line = ? AND ts >= ? AND ts < ?",
                                 [line, record["window_start"], record["window_end"]]).fetchall()[0][0]
        assert dialog.total == direct
    finally:
        project.close()


@pytest.mark.slow  # a whole window on a sample copy with its background work, plus a monthly review
def test_the_overview_items_and_review_findings_open_the_rows_behind_them(qtbot, sample_copy: Path,
                                                                          tmp_path: Path) -> None:
    """#27 item 6: an attention item and a review finding lead to their rows; the worst line's rows hold exactly the
    labelled count the item states, as a direct DuckDB count says."""
    from PySide6.QtCore import QSettings

    from app.core.analysis import operating_review as ops
    from app.core.analysis.attention import attention_items, build_attention
    from app.views.main_window import MainWindow
    from app.views.reviews_view import ReviewsView, finding_filter, finding_rows

    window = MainWindow(QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(window)
    window.show()
    try:
        assert window.open_project(sample_copy)
        qtbot.waitUntil(lambda: bool(window.overview.attention_items), timeout=60_000)
        project = window.project
        attention = build_attention(project)
        items = attention_items(attention)
        worst = next(i for i, item in enumerate(items) if item.text.startswith("Worst line"))
        f = items[worst].rows
        assert f.where == (("line", attention.worst["line"]),) and f.version_id == attention.worst["version"]
        with project.reading() as con:
            labelled = con.execute(
                "SELECT count(l.label) FROM predictions p LEFT JOIN labels l USING (record_id) WHERE p.line = ? "
                "AND p.version_id = ? AND p.ts >= ?", [attention.worst["line"], f.version_id, f.start]
            ).fetchall()[0][0]
        assert labelled == attention.worst["labelled"]  # the item's own figure, from its rows
        assert '<a href="item:' in window.overview.attention.text()
        opened = []
        window.overview.open_rows.connect(opened.append)
        window.overview.attention.linkActivated.emit(f"item:{worst}")  # as a click on the link does
        assert opened == [f]
        dialog = window.show_rows(f)
        qtbot.waitUntil(lambda: dialog.total > 0, timeout=30_000)
        assert dialog.total == count_records(project, f)
        window.overview.activate_item(0)  # "Open alerts: N" leads to the Alerts screen
        assert window.screens.current_name() == "alerts"

        review = ops.build_review(project, ops.month("2026-10"))
        rows = finding_rows(review)
        lined = [r for r in rows.iter_rows(named=True) if finding_filter(review, r) is not None]
        assert lined, "the sample's October review has findings on lines"
        for r in lined:
            rf = finding_filter(review, r)
            assert rf.where[0] == ("line", r["scope"]) and (rf.start, rf.end) == (datetime(2026, 10, 1),
                                                                                 datetime(2026, 11, 1))
        assert all(finding_filter(review, r) is None for r in rows.iter_rows(named=True)
                   if r["section"] in ("Stage change", "Delivery", "Plant-wide change"))
        view = ReviewsView()
        qtbot.addWidget(view)
        view.set_project(project)
        view.show_review(review)
        index = rows["section"].to_list().index(lined[0]["section"])
        view.table.setCurrentIndex(view.findings.index(index, 0))
        dialog = view.show_rows()
        qtbot.waitUntil(lambda: dialog.total > 0, timeout=30_000)
        with project.reading() as con:
            direct = con.execute("SELECT count(*) FROM predictions WHERE line = ? AND ts >= ? AND ts < ?"
                                 + (" AND version_id = ?" if lined[0]["version"] else ""),
                                 [lined[0]["scope"], datetime(2026, 10, 1), datetime(2026, 11, 1)]
                                 + ([lined[0]["version"]] if lined[0]["version"] else [])).fetchall()[0][0]
        assert dialog.total == direct
    finally:
        window.close_project(force=True)
