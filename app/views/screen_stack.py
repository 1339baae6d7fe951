"""The screens behind the navigation list, each imported and built when first shown or first asked for.

Importing every screen at start cost about a second of CPU (pyqtgraph, the analysis modules behind Alerts,
Drift, Benchmarks): on a busy shop-floor PC that is many seconds before the window appears. Only the Overview is
built at start; the others wait in the stack as empty placeholders.
"""

from __future__ import annotations

from importlib import import_module

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QStackedWidget, QWidget

# (attribute name, navigation label, module, class), in navigation order.
SCREENS: tuple[tuple[str, str, str, str], ...] = (
    ("overview", "Overview", "app.views.overview_view", "OverviewView"),
    ("slices", "Slices", "app.views.slices_view", "SlicesView"),
    ("drift", "Drift", "app.views.drift_view", "DriftView"),
    ("alerts", "Alerts", "app.views.alerts_view", "AlertsView"),
    ("models", "Models", "app.views.models_view", "ModelsView"),
    ("benchmarks", "Benchmarks", "app.views.bench_view", "BenchView"),
    ("validation", "Validation", "app.views.validation_view", "ValidationView"),
    ("approvals", "Approvals", "app.views.approvals_view", "ApprovalsView"),
    ("reviews", "Reviews", "app.views.reviews_view", "ReviewsView"),
    ("audit", "Audit", "app.views.audit_view", "AuditView"),
    ("users", "Users & roles", "app.views.users_view", "UsersView"),
)
NAMES = tuple(name for name, _, _, _ in SCREENS)
LABELS = tuple(label for _, label, _, _ in SCREENS)


class ScreenStack(QStackedWidget):
    """A QStackedWidget whose pages are built on first use; `created` tells the window to wire a new screen."""

    created = Signal(str, QWidget)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._built: dict[str, QWidget] = {}
        for name in NAMES:
            self.addWidget(QWidget(objectName=f"placeholder-{name}"))

    def screen(self, name: str) -> QWidget:
        """The screen called `name`, imported and built now if it was not yet."""
        if name in self._built:
            return self._built[name]
        index = NAMES.index(name)
        _, _, module, cls = SCREENS[index]
        screen = getattr(import_module(module), cls)()
        placeholder = self.widget(index)
        was_current = self.currentIndex() == index
        self.insertWidget(index, screen)
        self.removeWidget(placeholder)
        placeholder.deleteLater()
        if was_current:
            self.setCurrentIndex(index)
        self._built[name] = screen
        self.created.emit(name, screen)
        return screen

    def show_index(self, index: int) -> None:
        """Show the screen at `index` (navigation row), building it first."""
        if 0 <= index < len(NAMES):
            self.screen(NAMES[index])
            self.setCurrentIndex(index)

    def built(self, *names: str) -> list[QWidget]:
        """The screens built so far (of `names`, when given), in navigation order."""
        return [self._built[n] for n in NAMES if n in self._built and (not names or n in names)]

    def current_name(self) -> str:
        """The name of the screen shown now."""
        return NAMES[self.currentIndex()] if 0 <= self.currentIndex() < len(NAMES) else ""
