"""#27: the menus and shortcuts are data (app/views/actions.py), checked without a window; and in a window, no
screen's own shortcut collides with a menu's (Qt makes both dead when two own one key)."""

from __future__ import annotations

import gc
from collections import Counter
from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QApplication

from app.views import actions
from app.views.screen_stack import NAMES


def _keys(spec: actions.ActionSpec) -> list[str]:
    if spec.shortcut.startswith("std:"):
        bindings = QKeySequence.keyBindings(getattr(QKeySequence.StandardKey, spec.shortcut[4:]))
        return [k.toString() for k in bindings]
    return [QKeySequence(spec.shortcut).toString()] if spec.shortcut else []


def test_every_action_runs_a_window_method_and_no_two_share_a_key(qapp):
    from app.views.main_window import MainWindow

    specs = actions.all_actions()
    assert len({s.key for s in specs}) == len(specs)
    for spec in specs:
        if spec.slot.startswith("show_screen:"):
            assert spec.slot.partition(":")[2] in NAMES
        else:
            assert callable(getattr(MainWindow, spec.slot, None)), f"{spec.key}: MainWindow.{spec.slot} is missing"
    keys = Counter(k for spec in specs for k in _keys(spec))
    assert keys and not [k for k, n in keys.items() if n > 1], keys.most_common(3)
    assert {"Ctrl+1", "Ctrl+T", "Ctrl+Shift+V", "Ctrl+E"} <= set(keys)


def test_enabled_follows_the_project_state():
    by_key = {s.key: s for s in actions.all_actions()}
    state = {"none": (False, False, False), "read-only": (True, False, False), "writable": (True, True, False),
             "signed in": (True, True, True)}
    expect = {"import": [False, False, True, True], "close": [False, True, True, True],
              "sign_in": [False, True, True, False], "sign_out": [False, False, False, True],
              "verify": [True, True, True, True], "export_project": [False, True, True, True]}
    for key, wanted in expect.items():
        assert [actions.enabled(by_key[key], *s) for s in state.values()] == wanted, key
    assert actions.disabled_tip(by_key["import"]) == "Open a project for writing first"


def test_no_screen_shortcut_collides_with_a_menu_shortcut(qtbot, tmp_path: Path):
    from app.views.main_window import MainWindow

    window = MainWindow(QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(window)
    rows = window.shortcut_rows()  # builds every screen
    menu = Counter(keys for keys, _what, where in rows if where == "menu")
    assert not [k for k, n in menu.items() if n > 1]
    per_screen: dict[str, list[str]] = {}
    for keys, _what, where in rows:
        if where != "menu":
            per_screen.setdefault(where, []).append(keys)
    assert per_screen, "the screens have shortcuts of their own (Ctrl+R, Ctrl+Shift+E, …)"
    for screen, keys in per_screen.items():
        assert not set(keys) & set(menu), f"{screen}: {set(keys) & set(menu)} also belong to a menu"
        assert len(keys) == len(set(keys)), f"{screen}: {keys}"
    assert window.act_import.text() == "&Import predictions…" and not window.act_import.isEnabled()
    window.deleteLater()
    QApplication.processEvents()
    gc.collect()
