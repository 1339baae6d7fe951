"""Reviews screen: build the monthly, quarterly or event review, read its findings, record the decision and
actions, and export the record as a signed PDF. Thin over app.core.analysis.operating_review."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

import polars as pl
from PySide6.QtCore import QDate, Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDateEdit,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app.core.analysis import operating_review as ops
from app.core.analysis.quarterly import delivery_texts, lead_days_text
from app.core.analysis.records import RecordFilter
from app.core.analysis.slices import logged_span
from app.core.analysis.time_range import review_period
from app.core.errors import LineproofError
from app.core.governance import approvals as gov
from app.core.store.project import Project
from app.views.errors import show_error
from app.views.screen import Screen
from app.views.signing import ask_passphrase_dialog, unlock_with_prompt
from app.views.table_model import Column, FrameTableModel
from app.views.table_view import DataTable
from app.views.task_controls import TaskControls

EMPTY = "No project open.\n\nOpen a project (Ctrl+O) to hold its monthly, quarterly or event review."
NO_LOG = "No prediction log yet.\n\nA review reads the log: import predictions first (File > Import predictions…)."
SECTION_COLOURS = {"Trigger": "#f8cbad", "Metric drop": "#f8cbad", "Unverified release": "#f8cbad",
                   "Still open": "#f8cbad",
                   "Line drift": "#fff2cc", "Silent asset": "#fff2cc", "Confidence gap": "#fff2cc",
                   "Latency": "#fff2cc", "Plant-wide change": "#ededed", "Stage change": "#e2efda",
                   "Outcome": "#dde6f0", "Alert precision": "#dde6f0", "Lead time": "#dde6f0",
                   "Delivery": "#dde6f0"}
FINDING_COLUMNS = [Column("section", "Section", background=lambda r: SECTION_COLOURS.get(r["section"])),
                   Column("scope", "Where"), Column("finding", "Finding", tooltip=lambda r: r["finding"], free_text=True)]


def finding_rows(review: dict[str, Any]) -> pl.DataFrame:
    """One table row per finding, most urgent sections first."""
    h = review["health"]
    rows = [{"section": "Trigger", "scope": t["line"], "finding": t["action"]} for t in review["triggers"]]
    rows += [{"section": "Metric drop", "scope": f["line"], "finding": f["evidence"], "version": f.get("version")}
             for f in h["drops"]["findings"]]
    rows += [{"section": "Still open", "scope": p["line"], "finding": p["evidence"]}
             for p in h.get("persisting", []) if p["since"] < review["period"]["start"][:7]]
    rows += [{"section": "Line drift", "scope": f["line"], "finding": f["evidence"]} for f in h["drift"]["line_specific"]]
    rows += [{"section": "Silent asset", "scope": f["line"], "finding": f["evidence"], "asset": f.get("asset")}
             for f in h["silent"]]
    rows += [{"section": "Confidence gap", "scope": g["line"], "version": g["version"], "finding":
              f"{g['version']}: measured recall {g['recall_realized']:.3f} lies outside the estimate from the model's "
              f"confidence, {g['recall']:.3f} ({g['recall_lower']:.3f}-{g['recall_upper']:.3f}); gap in "
              f"{', '.join(g['gap_metrics'].split(','))}"} for g in h.get("estimates", {}).get("gaps", [])]
    rows += [{"section": "Lead time", "scope": i["line"], "finding": lead_days_text(i)}
             for i in review.get("answers", {}).get("lead_time", [])]
    rows += [{"section": "Delivery", "scope": scope, "finding": text}
             for scope, text in delivery_texts(review.get("answers", {}))]
    rows += [{"section": "Unverified release", "scope": u["site"], "finding":
              f"{u['version_id']} reached production on {u['released_at'][:16]} without a verified approval chain"}
             for u in review.get("delivery", {}).get("unverified_releases", [])]
    rows += [{"section": "Latency", "scope": f["version_id"], "finding": f["evidence"]} for f in h["latency"]]
    rows += [{"section": "Plant-wide change", "scope": "all lines", "finding": f["evidence"]}
             for f in h["drift"]["plant_wide"]]
    rows += [{"section": "Alert precision", "scope": r["line"], "finding":
              f"{r['precision']:.0%} of {r['judged']} acknowledged alerts were real (previous period: "
              + ("-" if r["precision_before"] is None else f"{r['precision_before']:.0%} of {r['judged_before']}")
              + ")"} for r in review.get("alerts", {}).get("precision_by_line", [])]
    rows += [{"section": "Outcome", "scope": o["line"], "finding":
              f"{o['kpi']} {o['now']:.2f} (before {'-' if o['before'] is None else format(o['before'], '.2f')})"
              + ("" if o["recall_now"] is None else f"; model recall {o['recall_now']:.3f} (before "
                 f"{o['recall_before']:.3f})")} for o in review.get("outcomes", [])]
    rows += [{"section": "Stage change", "scope": c["site"], "finding": f"{c['version_id']} -> {c['stage']} by "
              f"{c['changed_by']} ({c['changed_at']}): {c['reason']}"} for c in review["inventory"]["changes"]]
    return pl.DataFrame(rows, schema={"section": pl.Utf8, "scope": pl.Utf8, "finding": pl.Utf8, "version": pl.Utf8,
                                      "asset": pl.Utf8})


# Findings whose scope is a line: their rows are that line's rows in the review period.
LINE_SECTIONS = {"Trigger", "Metric drop", "Still open", "Line drift", "Silent asset", "Confidence gap",
                 "Lead time", "Alert precision", "Outcome"}


def finding_filter(review: dict[str, Any], row: dict[str, Any]) -> RecordFilter | None:
    """The log's rows behind a finding: its line (and version or asset) in the reviewed period; None when the
    finding is not about rows of the log (a delivery, a stage change, a plant-wide summary)."""
    if row["section"] not in LINE_SECTIONS or not row["scope"] or row["scope"] in ("all", "all lines"):
        return None
    where = (("line", row["scope"]),) + ((("asset", row["asset"]),) if row.get("asset") else ())
    period = review["period"]
    return RecordFilter(where, datetime.fromisoformat(period["start"]), datetime.fromisoformat(period["end"]),
                        row.get("version"))


class ReviewsView(Screen):
    """Period on top; findings, decision and actions below."""

    FOLLOWS_WHOLE_LOG = False  # the whole log is no window: then its own default dates, editable

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.project: Project | None = None
        self.review: dict[str, Any] | None = None
        self.review_id: str | None = None
        self.ask_passphrase: Callable[[str], str | None] = lambda user: ask_passphrase_dialog(self, user)
        self.ask_path: Callable[[str], str | None] = self._ask_path
        self.kind = QComboBox(toolTip="Monthly, quarterly, or the days around an event (firmware change, new line)")
        self.kind.addItems(["Month", "Quarter", "Event"])
        self.period = QComboBox(toolTip="Period to review; it is compared with the period before")
        self.event_day = QDateEdit(calendarPopup=True, toolTip="Day of the event; 14 days after vs 14 before")
        self.event_day.setDisplayFormat("yyyy-MM-dd")
        self.event_day.hide()
        self.build_button = QPushButton("Build review", toolTip="Compute every section (Ctrl+R)")
        self.build_button.setShortcut("Ctrl+R")
        self.controls = TaskControls(self.build_button, "Stop building the review")
        self.progress = self.controls.progress
        self.due = QLabel(objectName="reviewDue")
        top = QHBoxLayout()
        for w in (QLabel("Review"), self.kind, self.period, self.add_follow_box("the month or quarter chosen"),
                  self.event_day, self.build_button,
                  self.controls.cancel_button):
            top.addWidget(w)
        top.addWidget(self.progress, 1)
        top.addStretch(0)
        top.addWidget(self.due)
        self.summary = QLabel(wordWrap=True, objectName="reviewSummary")
        self.findings = FrameTableModel(FINDING_COLUMNS)
        self.table = DataTable(self.findings)
        self.decision = QLineEdit(placeholderText="Decision (required to save), e.g. re-validate v1 on P2-L02")
        self.actions = QPlainTextEdit(placeholderText="Actions, one per line (owner, due date)")
        self.actions.setMaximumHeight(80)
        self.signer = QComboBox(toolTip="Reviewer who signs the record (passphrase asked)")
        self.save_button = QPushButton("Save record", toolTip="Store the review with decision and actions (audited)")
        self.export_button = QPushButton("Export signed PDF…", toolTip="Sign the saved record and write a PDF that "
                                                                       "verifies like a packet")
        self.export_button.setEnabled(False)
        self.kpi_button = QPushButton("Import KPIs…", toolTip="Business outcomes per line and week from CSV "
                                                              "(line, week, kpi, value), shown next to the model")
        record = QWidget()
        rl = QVBoxLayout(record)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(self.decision)
        rl.addWidget(self.actions)
        self.rows_button = QPushButton("Show rows…", enabled=False, toolTip=(
            "The log's rows behind the selected finding: its line in the reviewed period (double-click a finding)"))
        self.rows_button.clicked.connect(self.show_rows)
        self.table.doubleClicked.connect(lambda _i: self.show_rows())
        self.table.clicked.connect(lambda _i: self.rows_button.setEnabled(self.selected_filter() is not None))
        row = QHBoxLayout()
        row.addWidget(self.rows_button)
        row.addWidget(QLabel("Reviewer"))
        row.addWidget(self.signer)
        row.addStretch(1)
        row.addWidget(self.kpi_button)
        row.addWidget(self.save_button)
        row.addWidget(self.export_button)
        rl.addLayout(row)
        body = QSplitter(Qt.Orientation.Vertical)
        body.addWidget(self.table)
        body.addWidget(record)
        body.setSizes([420, 140])
        self.install(top, self.summary, body, empty_message=EMPTY)
        self.kind.currentTextChanged.connect(self._kind_changed)
        self.build_button.clicked.connect(self.start)
        self.save_button.clicked.connect(self.save)
        self.export_button.clicked.connect(self.export)
        self.kpi_button.clicked.connect(lambda: self.import_kpis())

    def set_project(self, project: Project | None) -> None:
        """Offer the months and quarters the log covers."""
        self.stop_jobs()
        self.project = project
        # Typed text belongs to the project it was typed for: never saved against the next one.
        self.decision.clear()
        self.actions.clear()
        if project is None:
            self.show_empty(EMPTY)
            return
        first, last = logged_span(project)
        if first is None:
            self.show_empty(NO_LOG)
            return
        self.span = (first.date(), last.date())
        self._kind_changed(self.kind.currentText())
        self.event_day.setDate(QDate(last.year, last.month, last.day))
        self.signer.clear()
        for r in gov.list_users(project).iter_rows(named=True):
            self.signer.addItem(f"{r['name']} ({r['user_id']})", r["user_id"])
        self.save_button.setEnabled(not project.read_only)
        self.due.setText(f"Next monthly review due: {ops.next_review_due(project)}")
        self.show_content()
        self.show_review(None)

    def unsaved_changes(self) -> list[str]:
        """What would be lost if the project closed now (a typed review decision or actions not saved)."""
        if self.project is None or self.project.read_only:
            return []
        typed = self.decision.text().strip() or self.actions.toPlainText().strip()
        return ["the review decision and actions being typed (Reviews)"] if typed else []

    def _kind_changed(self, kind: str) -> None:
        if self.project is None or not hasattr(self, "span"):
            return
        self.period.clear()
        first, last = self.span
        self.period.setVisible(kind != "Event")
        self.event_day.setVisible(kind == "Event")
        if kind == "Month":
            labels = pl.date_range(date(first.year, first.month, 1), last, "1mo", eager=True)
            for d in reversed(labels.to_list()):
                self.period.addItem(f"{d:%Y-%m}")
        elif kind == "Quarter":
            quarters = sorted({f"{d.year}Q{(d.month - 1) // 3 + 1}" for d in
                               pl.date_range(first, last, "1mo", eager=True).to_list() + [last]}, reverse=True)
            self.period.addItems(quarters)
        if kind != "Event" and self.period.count() > 1:
            # The newest period usually holds a few days; the default is the last one the log covers whole.
            period = (ops.month if kind == "Month" else ops.quarter)(self.period.itemText(0))
            if period.end.date() > last + timedelta(days=1):
                self.period.setCurrentIndex(1)
        if kind != "Event" and self.following():
            self._choose_in_range(kind)
        self.period.setEnabled(not self.following())

    def _choose_in_range(self, kind: str) -> None:
        make = ops.month if kind == "Month" else ops.quarter
        periods = [(p.label, p.start.date(), p.end.date()) for p in map(make, (
            self.period.itemText(i) for i in range(self.period.count())))]
        label = review_period(self.time_range, periods)
        if label is not None:
            self.period.setCurrentIndex(self.period.findText(label))

    def apply_time_range(self, time_range) -> None:
        """The newest whole month (or quarter) in the window's range, else the one holding its last day."""
        self._kind_changed(self.kind.currentText())

    def own_dates_enabled(self, enabled: bool) -> None:
        """The period is the screen's own while it does not follow the window's range."""
        self.period.setEnabled(enabled)

    def chosen_period(self) -> ops.Period:
        """The period the controls describe."""
        kind = self.kind.currentText()
        if kind == "Month":
            return ops.month(self.period.currentText())
        if kind == "Quarter":
            return ops.quarter(self.period.currentText())
        return ops.around(self.event_day.date().toPython())

    def start(self):
        """Build the review in the worker."""
        if self.project is None or self.task is not None:
            return None
        project, period = self.project, self.chosen_period()
        task = self.run_job(f"Review {period.label}", lambda progress: ops.build_review(project, period, progress))
        self.controls.attach(task)
        task.done.connect(self.show_review)
        task.error.connect(lambda exc: show_error(self, exc, "Review"))
        return task

    @property
    def task(self):
        """The review being built, if any."""
        return self.controls.task

    def show_review(self, review: dict[str, Any] | None) -> None:
        """Summary line and findings table."""
        self.review, self.review_id = review, None
        self.export_button.setEnabled(False)
        if review is None:
            self.summary.setText("Choose a period and Build review (Ctrl+R). Each section is compared with the "
                                 "period before; only changes the evidence supports are listed.")
            self.findings.set_frame(finding_rows({"health": {"drops": {"findings": []}, "drift": {
                "line_specific": [], "plant_wide": []}, "silent": [], "latency": []}, "triggers": [],
                "inventory": {"changes": []}}))
            return
        count = ops.findings_count(review)
        a = review["alerts"]
        self.summary.setText(
            f"<b>{review['period']['label']}</b>: {count} finding(s) to act on; alerts raised {a['raised']} (real "
            f"{a['real']}, false {a['false']}, open {a['open']}); {review['health']['drops']['method']}.")
        self.findings.set_frame(finding_rows(review))
        self.rows_button.setEnabled(False)

    def selected_filter(self) -> RecordFilter | None:
        """The rows behind the selected finding (None: no finding selected, or not one about the log's rows)."""
        index = self.table.currentIndex()
        if self.review is None or not index.isValid():
            return None
        return finding_filter(self.review, self.findings.row(index.row()))

    def show_rows(self):
        """Open the log's rows behind the selected finding."""
        from app.views.records_dialog import show_records

        return show_records(self.project, self.selected_filter(), self)

    def save(self) -> str | None:
        """Store the review with the decision and actions."""
        if self.project is None or self.review is None:
            return None
        actions = [line.strip() for line in self.actions.toPlainText().splitlines() if line.strip()]
        try:
            self.review_id = ops.save_review(self.project, self.review, self.decision.text(), actions,
                                             self.signer.currentData() or _actor())
        except Exception as exc:
            show_error(self, exc, "Save review")
            return None
        self.export_button.setEnabled(True)
        self.due.setText(f"Next monthly review due: {ops.next_review_due(self.project)}")
        self.summary.setText(self.summary.text() + f"<br>Saved as {self.review_id}.")
        self.changed.emit()
        return self.review_id

    def import_kpis(self, path: str | None = None) -> int | None:
        """Import a KPI CSV (asked for when not given); rebuild the review to see it."""
        from app.core.analysis.kpis import import_kpis

        if self.project is None or self.project.read_only:
            return None
        if not path:
            path, _ = QFileDialog.getOpenFileName(self, "Import KPIs", "", "CSV (*.csv)")
        if not path:
            return None
        try:
            rows = import_kpis(self.project, path)
        except Exception as exc:
            show_error(self, exc, "Import KPIs")
            return None
        self.summary.setText(f"Imported {rows:,} KPI values; Build review (Ctrl+R) to see them next to the model.")
        self.changed.emit()
        return rows

    def _ask_path(self, suggestion: str) -> str | None:
        path, _ = QFileDialog.getSaveFileName(self, "Export signed review", suggestion, "PDF (*.pdf)")
        return path or None

    def export(self):
        """Sign the saved record as the chosen reviewer and write the PDF in the worker; returns the task."""
        from app.core.packet import Signing
        from app.core.packet.review_pdf import export_review

        if self.project is None or self.review_id is None:
            return None
        if self.signer.currentData() is None:
            show_error(self, LineproofError("Nobody can sign: this project has no registered users.",
                                            "Add yourself on the Users & roles screen, then export."), "Export review")
            return None
        try:
            signer = unlock_with_prompt(self.project, self.signer.currentData(), self.ask_passphrase)
            if signer is None:
                return None
        except Exception as exc:
            show_error(self, exc, "Export review")
            return None
        path = self.ask_path(str(self.project.folder / "packets" / f"{self.review_id}.pdf"))
        if not path:
            return None
        project, review_id = self.project, self.review_id
        task = self.run_job("Export review", lambda progress: export_review(
            project, review_id, path, [Signing(signer, "reviewed by")], progress))
        self.controls.attach(task)
        task.done.connect(self._exported)
        task.error.connect(lambda exc: show_error(self, exc, "Export review"))
        return task

    def _exported(self, written) -> None:
        self.summary.setText(self.summary.text() + f"<br>Signed PDF: {written}")
        self.changed.emit()


def _actor() -> str:
    from app.core.store.audit import current_actor

    return current_actor()


if __name__ == "__main__":
    from app.views.screen import run_alone

    raise SystemExit(run_alone(ReviewsView, read_only=False))
