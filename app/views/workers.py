"""The one way long core work runs: off the GUI thread, with progress, Cancel, and results on the GUI thread."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from PySide6.QtCore import QEventLoop, QObject, QRunnable, Qt, QThreadPool, QTimer, Signal
from PySide6.QtWidgets import QProgressDialog, QWidget

from app.core.errors import Cancelled
from app.core.progress import TaskProgress

T = TypeVar("T")


def call_off_thread(fn: Callable[[], T], name: str = "lineproof-call") -> T:
    """Run a short blocking call (open a database, unlock or make a key) on its own thread and return its result.

    The window keeps painting and its timers keep running meanwhile; only user input waits, so nothing can be
    clicked twice. Its own thread, not the pool: two long jobs there would make a project open wait behind them.
    """
    box: dict[str, Any] = {}
    finished = threading.Event()

    def run() -> None:
        try:
            box["result"] = fn()
        except BaseException as exc:  # re-raised on the caller's thread
            box["error"] = exc
        finally:
            finished.set()

    threading.Thread(target=run, name=name, daemon=True).start()
    if not finished.wait(0.02):  # most calls end at once: no nested loop for them
        loop = QEventLoop()
        poll = QTimer(interval=5)
        poll.timeout.connect(lambda: finished.is_set() and loop.quit())
        poll.start()
        loop.exec(QEventLoop.ProcessEventsFlag.ExcludeUserInputEvents)
        poll.stop()
    if "error" in box:
        raise box["error"]
    return box["result"]


class _Signals(QObject):
    progress = Signal(float, str)
    finished = Signal(object)
    failed = Signal(object)


class _Job(QRunnable):
    def __init__(self, fn: Callable[[TaskProgress], Any], progress: TaskProgress, signals: _Signals,
                 finished: threading.Event) -> None:
        super().__init__()
        self.fn, self.progress, self.signals, self.finished = fn, progress, signals, finished
        self.setAutoDelete(True)

    def run(self) -> None:
        try:
            result = self.fn(self.progress)
        except BaseException as exc:  # every failure goes back to the GUI thread as a value
            self.signals.failed.emit(exc)
        else:
            self.signals.finished.emit(result)
        finally:
            self.finished.set()


class Task(QObject):
    """A running job. Signals arrive on the GUI thread (queued): progress, done(result), error(exc), cancelled()."""

    progress = Signal(float, str)
    done = Signal(object)
    error = Signal(object)
    cancelled = Signal()
    ended = Signal()

    def __init__(self, title: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.title = title
        self.running = True
        self.thread_done = threading.Event()
        self._signals = _Signals()
        self.control = TaskProgress(lambda f, m: self._signals.progress.emit(f, m))
        self._pending: list[tuple[float, str]] = []
        self._signals.progress.connect(self._relay)
        self._signals.finished.connect(self._finish)
        self._signals.failed.connect(self._fail)

    def cancel(self) -> None:
        """Ask the job to stop; `cancelled` is emitted when it has."""
        self.control.cancel()

    def wait(self, timeout_s: float = 30.0) -> bool:
        """Block until the job's thread is done with it (not its signals); True if it is."""
        return self.thread_done.wait(timeout_s)

    def _relay(self, fraction: float, message: str) -> None:
        # A slot may spin the event loop (a window-modal QProgressDialog's setValue does): the later reports then
        # arrive inside this emission, and the slots after it would see 1.0 before 0.3. Reports that arrive
        # while one is being delivered wait their turn, so every slot sees them in the order the job made them.
        self._pending.append((fraction, message))
        if len(self._pending) > 1:
            return
        while self._pending:
            self.progress.emit(*self._pending[0])
            self._pending.pop(0)

    def _finish(self, result: object) -> None:
        # The job returned: its work is done (and stored) even if Cancel came too late to stop it. Saying
        # "cancelled" then would tell the user nothing was kept when it was (every core job raises Cancelled).
        self.running = False
        self.done.emit(result)
        self.ended.emit()

    def _fail(self, exc: BaseException) -> None:
        self.running = False
        if isinstance(exc, Cancelled):
            self.cancelled.emit()
        else:
            self.error.emit(exc)
        self.ended.emit()


def start_task(title: str, fn: Callable[[TaskProgress], Any], parent: QObject | None = None,
               pool: QThreadPool | None = None) -> Task:
    """Run `fn(progress)` on the shared thread pool and return its Task."""
    task = Task(title, parent)
    (pool or QThreadPool.globalInstance()).start(_Job(fn, task.control, task._signals, task.thread_done))
    return task


def attach_progress_dialog(task: Task, parent: QWidget) -> QProgressDialog:
    """A window-modal progress dialog with Cancel, closed when the task ends."""
    dialog = QProgressDialog(task.title, "Cancel", 0, 1000, parent)
    dialog.setWindowTitle(task.title)
    dialog.setWindowModality(Qt.WindowModality.WindowModal)
    dialog.setMinimumDuration(300)
    dialog.setAutoClose(False)
    dialog.setAutoReset(False)
    dialog.setMinimumWidth(420)

    def on_progress(fraction: float, message: str) -> None:
        if not task.running:
            return
        dialog.setValue(int(fraction * 1000))
        if message:
            dialog.setLabelText(message)

    def on_cancel() -> None:
        if not task.running:  # QProgressDialog also emits canceled when it is closed
            return
        dialog.setLabelText("Cancelling: rolling back…")
        dialog.setCancelButton(None)
        task.cancel()

    task.progress.connect(on_progress)
    dialog.canceled.connect(on_cancel)
    # Only hide: a window-modal QProgressDialog runs processEvents inside setValue, so deleting it from a
    # slot that may run inside that nested loop would pull the object out from under setValue.
    task.ended.connect(dialog.hide)
    task.ended.connect(lambda: QTimer.singleShot(1000, dialog.deleteLater))
    return dialog
