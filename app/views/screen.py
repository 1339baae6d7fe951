"""What every screen shares: its content, or a centred empty-state message that says what to do next."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QLabel, QLayout, QStackedLayout, QVBoxLayout, QWidget

from app.core.progress import TaskProgress
from app.views.workers import Task, start_task


class Screen(QWidget):
    """Base of the screens: `install()` lays out the content; `show_empty()` / `show_content()` switch;
    `run_job()` runs core work in the shared worker and `stop_jobs()` ends this screen's jobs (only its own)."""

    # Whether "All data" binds this screen: it does for Slices (no date limit); Drift, Alerts and Reviews cannot
    # use the whole log as a window, so then their own dates stay theirs to choose.
    FOLLOWS_WHOLE_LOG = True

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.jobs: list[Task] = []
        self.time_range = None  # the window's TimeRange, for the screens that follow it
        self.follow: QCheckBox | None = None

    # ----- the window's time range (Slices, Drift, Alerts, Reviews)
    def add_follow_box(self, what: str) -> QCheckBox:
        """The "Window range" box: ticked, `what` follows the toolbar's time range; unticked, the screen's own."""
        self.follow = QCheckBox("Window range", checked=True, objectName="followTimeRange", toolTip=(
            f"Ticked: {what} follows the window's time range (toolbar, Ctrl+T).\n"
            "Untick to choose this screen's own dates; the other screens keep following."))
        self.follow.toggled.connect(self._follow_toggled)
        return self.follow

    def following(self) -> bool:
        """Whether this screen takes its dates from the window's time range."""
        return self.follow is not None and self.follow.isChecked() and self.time_range is not None and \
            (self.FOLLOWS_WHOLE_LOG or not self.time_range.whole_log)

    def set_time_range(self, time_range) -> None:
        """The window's range changed: a following screen applies it (and recomputes when it shows data)."""
        self.time_range = time_range
        if self.follow is not None and self.follow.isChecked() and getattr(self, "project", None) is not None:
            self.apply_time_range(time_range)  # "All data" on Drift: back to its default windows, editable
            self.own_dates_enabled(not self.following())

    def _follow_toggled(self, on: bool) -> None:
        if on and self.time_range is not None and getattr(self, "project", None) is not None:
            self.apply_time_range(self.time_range)
        self.own_dates_enabled(not self.following())

    def apply_time_range(self, time_range) -> None:
        """Put the range into this screen's controls and recompute (screens that follow it override this)."""

    def own_dates_enabled(self, enabled: bool) -> None:
        """Enable the screen's own date controls (disabled while it follows the window's range)."""

    def run_job(self, title: str, fn: Callable[[TaskProgress], Any]) -> Task:
        """Start `fn(progress)` in the worker and keep track of it until it ends."""
        task = start_task(title, fn, self)
        self.jobs.append(task)
        task.ended.connect(lambda: self.jobs.remove(task) if task in self.jobs else None)
        return task

    def stop_jobs(self) -> None:
        """Cancel this screen's running jobs and wait for their threads (cancelled DuckDB work stops in ms)."""
        for task in list(self.jobs):
            task.cancel()
        for task in list(self.jobs):
            task.wait()

    def install(self, *parts: QLayout | QWidget, empty_message: str) -> None:
        """Stack the parts (the last one stretches) above an empty state shown first."""
        content = QWidget()
        layout = QVBoxLayout(content)
        layout.setContentsMargins(12, 10, 12, 8)
        for i, part in enumerate(parts):
            if isinstance(part, QLayout):
                layout.addLayout(part)
            else:
                layout.addWidget(part, 1 if i == len(parts) - 1 else 0)
        self.empty = QLabel(objectName="emptyState", alignment=Qt.AlignmentFlag.AlignCenter, wordWrap=True)
        self.stack = QStackedLayout(self)
        self.stack.addWidget(self.empty)
        self.stack.addWidget(content)
        self.show_empty(empty_message)

    def show_empty(self, message: str) -> None:
        """Show a message instead of the content."""
        self.empty.setText(message)
        self.stack.setCurrentIndex(0)

    def show_content(self) -> None:
        """Show the content."""
        self.stack.setCurrentIndex(1)


def run_alone(screen_class: type, read_only: bool = True) -> int:
    """Show one screen by itself on the project named on the command line (python -m app.views.X PROJECT)."""
    import sys

    from app.core.store.project import Project
    from app.views.application import make_app

    app = make_app(sys.argv)
    view = screen_class()
    project = Project.open(sys.argv[1] if len(sys.argv) > 1 else ".", read_only=read_only)
    view.resize(1366, 720)
    view.show()
    view.set_project(project)
    code = app.exec()
    view.set_project(None)
    project.close()
    return code
