"""Overview screen: models and stages, datasets, data volume, label coverage and freshness per line."""

from __future__ import annotations

import html

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app.core.analysis.overview import Overview
from app.views.chart_export import enable_png_export
from app.views.screen import Screen
from app.views.table_model import Column, FrameTableModel
from app.views.table_view import DataTable
from app.views.theme import chart_background, themed

MODEL_COLUMNS = [
    Column("model", "Model", free_text=True), Column("version", "Version"),
    Column("stages", "Stage (sites)", free_text=True),
    Column("task", "Task"), Column("risk_tier", "Risk tier"),
    Column("predictions", "Predictions", tooltip=lambda r: f"{r['predictions']:,} logged predictions"),
    Column("sha256", "sha256", tooltip=lambda r: f"First 12 hex digits of the {r['format']} artifact's sha256 "
                                                 f"({r['size_bytes']:,} bytes)"),
]
DATASET_COLUMNS = [
    # The file hash lives in the Id tooltip: the models table beside it needs the width at 1366x768
    Column("dataset_id", "Id", tooltip=lambda r: f"{r['name']}\nParquet sha256 {r['sha256']}…"),
    Column("kind", "Kind"), Column("rows", "Rows"),
]
LINE_COLUMNS = [
    Column("plant", "Plant"), Column("line", "Line"),
    Column("rows", "Predictions"),
    Column("labelled", "Labelled", tooltip=lambda r: f"{r['labelled']:,} of {r['rows']:,} predictions have "
                                                      "a ground-truth label"),
    Column("coverage", "Coverage", "percent",
           tooltip=lambda r: f"{r['labelled']:,} / {r['rows']:,} = {r['coverage']:.2%} labelled"),
    Column("first_record", "First record"), Column("last_record", "Last record"),
    Column("hours_behind", "Behind newest", "hours",
           tooltip=lambda r: f"Last record is {r['hours_behind']:.1f} h older than the newest in the project"),
]


def _card(caption: str) -> tuple[QFrame, QLabel, QLabel]:
    frame = QFrame(objectName="card")
    layout = QVBoxLayout(frame)
    layout.setContentsMargins(12, 8, 12, 8)
    value = QLabel("–", objectName="cardValue")
    below = QLabel(caption, objectName="cardCaption")
    layout.addWidget(value)
    layout.addWidget(below)
    return frame, value, below


def _group(title: str, widget: QWidget) -> QGroupBox:
    box = QGroupBox(title)
    layout = QVBoxLayout(box)
    layout.setContentsMargins(6, 6, 6, 6)
    layout.addWidget(widget)
    return box


class OverviewView(Screen):
    """Shows an Overview from core; holds no project state of its own."""

    open_rows = Signal(object)  # a RecordFilter: the rows behind an attention item
    open_screen = Signal(str)  # a screen name: where an item leads

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.models_model = FrameTableModel(MODEL_COLUMNS, self)
        self.datasets_model = FrameTableModel(DATASET_COLUMNS, self)
        self.lines_model = FrameTableModel(LINE_COLUMNS, self)

        self.title = QLabel("No project open", objectName="projectTitle")
        self.subtitle = QLabel("", objectName="projectSubtitle")
        self.subtitle.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.read_only_badge = QLabel("READ-ONLY", objectName="readOnlyBadge")
        self.read_only_badge.setToolTip("Another process holds this project, or it was opened read-only: "
                                        "imports and changes are disabled.")
        self.read_only_badge.hide()
        header = QHBoxLayout()
        titles = QVBoxLayout()
        titles.addWidget(self.title)
        titles.addWidget(self.subtitle)
        header.addLayout(titles, 1)
        header.addWidget(self.read_only_badge, 0, Qt.AlignmentFlag.AlignTop)

        cards = QHBoxLayout()
        self.cards: dict[str, QLabel] = {}
        self.captions: dict[str, QLabel] = {}  # the small text under a card's value (it says what the value is)
        for key, caption in (("predictions", "predictions logged"), ("coverage", "labelled (ground truth)"),
                             ("span", "production period"), ("versions", "model versions"),
                             ("lines", "lines reporting"), ("review", "next review due")):
            frame, value, below = _card(caption)
            self.cards[key] = value
            self.captions[key] = below
            cards.addWidget(frame)

        self.attention = QLabel("", objectName="attention", wordWrap=True, textFormat=Qt.TextFormat.RichText)
        self.attention_items: list = []
        self.attention.linkActivated.connect(lambda href: self.activate_item(int(href.split(":")[1])))
        self.attention.setToolTip("Open alerts (Alerts screen), the line whose recall is lowest even at the top of "
                                  "its 95% interval over the last 28 days (Slices screen), the newest week's lowest "
                                  "recall estimated from the model's confidence (labels not in yet; band +-3 sampling "
                                  "errors), lines whose measured recall left that band, the top alert by impact, and "
                                  "assets that have sent nothing for more than 24 h up to the newest record.\n"
                                  "Click an item for the log's rows behind it (alerts: the Alerts screen).")
        self.plot = pg.PlotWidget(background=chart_background())
        enable_png_export(self.plot, "overview-trend")
        self.plot.setMinimumHeight(150)
        self.plot.setLabel("left", "predictions / week")
        self.plot.showGrid(y=True, alpha=0.3)
        self.rows_bars = pg.BarGraphItem(x=[], height=[], width=0.8, brush="#9cc3e6", name="predictions")
        self.labelled_bars = pg.BarGraphItem(x=[], height=[], width=0.5, brush=themed("#1f4e79", "#5b9bd5"),
                                             name="labelled")
        self.plot.addItem(self.rows_bars)
        self.plot.addItem(self.labelled_bars)
        self.plot.setToolTip("Weekly predictions and how many have a label; recent weeks are partly labelled "
                             "because inspection results arrive 1-3 weeks late.")

        self.models_table = DataTable(self.models_model)
        self.datasets_table = DataTable(self.datasets_model)
        self.lines_table = DataTable(self.lines_model)

        top = QSplitter(Qt.Orientation.Horizontal)
        top.addWidget(_group("Models and versions", self.models_table))
        top.addWidget(_group("Datasets", self.datasets_table))
        top.setSizes([900, 300])  # the models table has the most columns: none cut at 1366x768
        bottom = QSplitter(Qt.Orientation.Horizontal)
        bottom.addWidget(_group("Lines: data, label coverage and freshness", self.lines_table))
        bottom.addWidget(_group("Per week: predictions / labelled", self.plot))
        bottom.setSizes([800, 330])
        body = QSplitter(Qt.Orientation.Vertical)
        body.addWidget(top)
        body.addWidget(bottom)
        body.setSizes([200, 400])

        self.install(header, cards, self.attention, body, empty_message="No project open.\n\nFile > Open project… (Ctrl+O) opens a project folder, "
                        "File > New project… (Ctrl+N) creates one, File > Open sample project builds the demo.")

    def set_overview(self, ov: Overview) -> None:
        """Show a freshly computed overview."""
        self.title.setText(ov.name)
        self.subtitle.setText(f"{ov.site + ' · ' if ov.site else ''}{ov.folder} · schema {ov.schema_version}")
        self.read_only_badge.setVisible(ov.read_only)
        self.cards["predictions"].setText(f"{ov.prediction_rows:,}")
        self.captions["predictions"].setText(f"records, {ov.input_only_rows:,} inputs only" if ov.input_only_rows
                                             else "predictions logged")
        inputs = (f"\n{ov.input_only_rows:,} of them inputs only (no model version or score): drift and data "
                  "quality, no metrics") if ov.input_only_rows else ""
        self.cards["predictions"].setToolTip(f"{ov.prediction_rows:,} predictions, {ov.label_rows:,} labels{inputs}")
        self.cards["coverage"].setText(f"{ov.label_coverage:.1%}")
        self.cards["coverage"].setToolTip(f"{ov.labelled_rows:,} of {ov.prediction_rows:,} predictions labelled")
        # Big figures stay short (six cards fit 1366 px): the years go in the caption.
        span = f"{ov.first_ts:%d %b} – {ov.last_ts:%d %b}" if ov.first_ts else "no data"
        years = "" if not ov.first_ts else f" {ov.first_ts:%Y}" if ov.first_ts.year == ov.last_ts.year else \
            f" {ov.first_ts:%Y}–{ov.last_ts:%Y}"
        self.cards["span"].setText(span)
        self.captions["span"].setText(f"production period{years}")
        self.cards["span"].setToolTip(f"First record {ov.first_ts}, newest record {ov.last_ts}")
        self.cards["versions"].setText(str(ov.models.height))
        self.cards["lines"].setText(str(ov.lines.height))
        due = ov.next_review.split(" ")[0] if ov.next_review else "-"
        self.cards["review"].setText(due)
        n = len(ov.open_triggers)
        self.captions["review"].setText(f"next review due · {n} trigger{'s' if n != 1 else ''}" if n else
                                        "next review due")
        self.cards["review"].setToolTip("\n".join(["Open triggers (Reviews screen):", *ov.open_triggers])
                                        if ov.open_triggers else "No event since the last review calls for an "
                                                                 "event review")
        self.models_model.set_frame(ov.models)
        self.datasets_model.set_frame(ov.datasets)
        self.lines_model.set_frame(ov.lines)
        self._set_weekly(ov)
        self.show_content()
        if ov.prediction_rows == 0:
            self.lines_table.setToolTip("No prediction log yet: File > Import predictions… (Ctrl+I)")

    def set_attention(self, attention) -> None:
        """Show what needs a look first (computed after the overview, in the worker); each item links to the
        rows behind it, or to the Alerts screen."""
        from app.core.analysis.attention import attention_items

        self.attention_items = attention_items(attention)
        parts = []
        for i, item in enumerate(self.attention_items):
            text = html.escape(item.text)
            linked = item.rows is not None or item.screen is not None
            parts.append(("" if i == 0 else html.escape(item.joiner))
                         + (f'<a href="item:{i}">{text}</a>' if linked else text))
        self.attention.setText("".join(parts))

    def activate_item(self, index: int) -> None:
        """Follow an attention item: its rows (a record table over the log) or its screen."""
        item = self.attention_items[index]
        if item.rows is not None:
            self.open_rows.emit(item.rows)
        elif item.screen is not None:
            self.open_screen.emit(item.screen)

    def _set_weekly(self, ov: Overview) -> None:
        weekly = ov.weekly
        x = np.arange(weekly.height, dtype=float)
        rows = weekly["rows"].to_numpy().astype(float) if weekly.height else np.zeros(0)
        labelled = weekly["labelled"].to_numpy().astype(float) if weekly.height else np.zeros(0)
        self.rows_bars.setOpts(x=x, height=rows)
        self.labelled_bars.setOpts(x=x, height=labelled)
        if weekly.height:
            step = -(-weekly.height // 4)  # at most four dates: each needs ~50 px of a ~300 px plot
            ticks = [(float(i), f"{w:%d %b}") for i, w in enumerate(weekly["week"]) if i % step == 0]
            self.plot.getAxis("bottom").setTicks([ticks])
            self.plot.setXRange(-0.6, weekly.height - 0.4, padding=0)
            self.plot.setYRange(0, float(rows.max()) * 1.15, padding=0)


def main() -> int:
    """Show this screen alone on a project: python -m app.views.overview_view PROJECT."""
    import sys

    from PySide6.QtWidgets import QApplication

    from app.core.analysis.overview import build_overview
    from app.core.store.project import Project

    app = QApplication(sys.argv)
    view = OverviewView()
    with Project.open(sys.argv[1] if len(sys.argv) > 1 else ".", read_only=True) as project:
        view.set_overview(build_overview(project))
    view.resize(1366, 720)
    view.show()
    return app.exec()


if __name__ == "__main__":
    raise SystemExit(main())
