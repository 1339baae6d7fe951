"""The small Qt-free progress object every long core operation reports to."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from app.core.errors import Cancelled


class Progress(Protocol):
    """What a long core function may ask of its caller."""

    def report(self, fraction: float, message: str = "") -> None:
        """Tell the caller how far the work is (0..1) and what it is doing."""

    def cancelled(self) -> bool:
        """True once the user asked to stop."""


class TaskProgress:
    """Thread-safe progress: a cancel flag plus an optional callback for reports."""

    def __init__(self, on_report: Callable[[float, str], None] | None = None) -> None:
        self._cancel = threading.Event()
        self._on_report = on_report
        self._on_cancel: list[Callable[[], None]] = []
        self.last: tuple[float, str] = (0.0, "")

    def report(self, fraction: float, message: str = "") -> None:
        """Record and forward a report."""
        self.last = (max(0.0, min(1.0, fraction)), message)
        if self._on_report is not None:
            self._on_report(*self.last)

    def cancel(self) -> None:
        """Ask the running work to stop (called from any thread)."""
        self._cancel.set()
        for hook in list(self._on_cancel):
            try:
                hook()
            except Exception:  # the work may have just finished and released what the hook interrupts
                pass

    def cancelled(self) -> bool:
        """True once cancel() was called."""
        return self._cancel.is_set()

    def on_cancel(self, hook: Callable[[], None]) -> None:
        """Register a hook that interrupts blocking work (e.g. a DuckDB query) on cancel."""
        self._on_cancel.append(hook)
        if self.cancelled():
            hook()

    def off_cancel(self, hook: Callable[[], None]) -> None:
        """Forget a hook once the work it interrupts is over."""
        if hook in self._on_cancel:
            self._on_cancel.remove(hook)


class NullProgress(TaskProgress):
    """Progress for callers that do not care (scripts, tests)."""


def check_cancelled(progress: Progress) -> None:
    """Raise Cancelled if the user asked to stop."""
    if progress.cancelled():
        raise Cancelled()


@contextmanager
def interrupt_on_cancel(progress: Progress, con: Any) -> Iterator[None]:
    """While inside, Cancel interrupts the DuckDB statement running on `con` (if the progress supports it)."""
    hook = con.interrupt
    if hasattr(progress, "on_cancel"):
        progress.on_cancel(hook)
    try:
        yield
    finally:
        if hasattr(progress, "off_cancel"):
            progress.off_cancel(hook)


class PartProgress:
    """One step of a longer job: its reports fill [low, high] of the caller's bar, Cancel is the caller's."""

    def __init__(self, parent: Progress, low: float, high: float) -> None:
        self.parent, self.low, self.high = parent, low, high

    def report(self, fraction: float, message: str = "") -> None:
        """Forward a report, scaled into this step's share."""
        self.parent.report(self.low + (self.high - self.low) * max(0.0, min(1.0, fraction)), message)

    def cancelled(self) -> bool:
        """The caller's cancel flag."""
        return self.parent.cancelled()

    def on_cancel(self, hook: Callable[[], None]) -> None:
        """Register an interrupt hook with the caller (when it takes hooks)."""
        if hasattr(self.parent, "on_cancel"):
            self.parent.on_cancel(hook)

    def off_cancel(self, hook: Callable[[], None]) -> None:
        """Forget an interrupt hook."""
        if hasattr(self.parent, "off_cancel"):
            self.parent.off_cancel(hook)
