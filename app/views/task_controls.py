"""A screen's Run button, Cancel button and inline progress bar, bound to one running task at a time."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtWidgets import QProgressBar, QPushButton

from app.views.workers import Task


class TaskControls:
    """Shows progress inline while a task runs, offers Cancel, and re-enables Run when it ends."""

    def __init__(self, run_button: QPushButton, cancel_tip: str) -> None:
        self.run_button = run_button
        self.cancel_button = QPushButton("Cancel", toolTip=cancel_tip)
        self.cancel_button.hide()
        self.progress = QProgressBar(maximum=1000, textVisible=True)
        self.progress.hide()
        self.task: Task | None = None
        self.can_run: Callable[[], bool] = lambda: True
        self.cancel_button.clicked.connect(self.cancel)

    def attach(self, task: Task) -> Task:
        """Follow a task that just started: disable Run, show Cancel and the progress."""
        self.task = task
        self.run_button.setEnabled(False)
        self.cancel_button.show()
        self.progress.show()
        self.progress.setValue(0)
        task.progress.connect(self.show_progress)
        task.ended.connect(self._ended)
        return task

    def cancel(self) -> None:
        """Ask the running task to stop."""
        if self.task is not None:
            self.progress.setFormat("Cancelling…")
            self.task.cancel()

    def show_progress(self, fraction: float, message: str) -> None:
        """Fraction and message of the task."""
        self.progress.setValue(int(fraction * 1000))
        self.progress.setFormat(f"{message} (%p%)" if message else "%p%")

    def _ended(self) -> None:
        self.task = None
        self.run_button.setEnabled(self.can_run())
        self.cancel_button.hide()
        self.progress.hide()
