"""Offline help: F1 shows the manual's part for the current screen and the glossary; every shortcut is listed;
About names the version and the bundled libraries' licences."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from app.views.help_text import SCREEN_SECTIONS, glossary, help_markdown, library_rows, readme_text, section  # noqa: E402
from app.views.screen_stack import NAMES  # noqa: E402

GLOSSARY_TERMS = ("PSI", "KS", "Wasserstein", "Wilson", "Newcombe", "DeLong", "Bonferroni")


def test_every_screen_has_help_and_every_section_exists_in_the_readme():
    readme = readme_text()
    assert set(SCREEN_SECTIONS) == set(NAMES)
    for screen, headings in SCREEN_SECTIONS.items():
        for heading in headings:
            text = section(readme, heading)
            assert text.startswith(f"## {heading}") and len(text) > 200, (screen, heading)


def test_a_section_ends_at_the_next_top_level_heading():
    readme = "# T\n## A\none\n### A.1\ntwo\n## B\nthree\n"
    assert section(readme, "A") == "## A\none\n### A.1\ntwo"
    assert section(readme, "B") == "## B\nthree"
    assert section(readme, "C") == ""


def test_the_glossary_explains_the_statistics_the_screens_use():
    text = glossary()
    for term in GLOSSARY_TERMS:
        assert f"**{term}" in text, term
    drift = help_markdown("drift", "Drift")
    assert drift.startswith("# Help: Drift") and "## Drift, data quality, events and alerts" in drift
    assert "Wilson interval" in drift and "## Slice performance" not in drift


def test_about_lists_the_bundled_libraries_with_versions_and_licences():
    rows = {name: (version, licence) for name, version, licence in library_rows()}
    assert rows["duckdb"][0].count(".") >= 1 and rows["duckdb"][1] == "MIT"
    assert "LGPL" in rows["PySide6-Essentials"][1] and rows["openvino"][1].startswith("Apache")
    assert all(licence for _, licence in rows.values())


def test_f1_opens_help_for_the_screen_in_front(qtbot, window, sample_folder: Path):  # noqa: F811
    window.open_project(sample_folder)
    window.nav.setCurrentRow(NAMES.index("drift"))
    QApplication.processEvents()
    qtbot.keyClick(window, Qt.Key.Key_F1)
    dialogs = [w for w in QApplication.topLevelWidgets() if type(w).__name__ == "HelpDialog" and w.isVisible()]
    assert len(dialogs) == 1 and dialogs[0].windowTitle() == "Help: Drift"
    text = dialogs[0].browser.toPlainText()
    assert "Drift, data quality, events and alerts" in text and "Bonferroni" in text
    assert dialogs[0].width() <= 1366 and dialogs[0].height() <= 700
    dialogs[0].close()


def test_the_shortcut_list_names_every_shortcut_once_with_what_it_does(qtbot, window):  # noqa: F811
    dialog = window.shortcuts_dialog()
    rows = [tuple(dialog.table.item(r, c).text() for c in range(3)) for r in range(dialog.table.rowCount())]
    keys = {k: (what, where) for k, what, where in rows}
    assert keys["F1"] == ("Help for this screen", "menu")
    assert keys["Ctrl+Shift+E"] == ("Export the slice table as CSV", "Slices")
    assert keys["Esc"] == ("Cancel the drift computation", "Drift")
    assert all(what for _, what, _ in rows)
    menu_keys = [k for k, _, where in rows if where == "menu"]
    assert len(menu_keys) == len(set(menu_keys)) > 15
    dialog.close()


def test_about_shows_the_version_and_offers_about_qt(qtbot, window):  # noqa: F811
    from PySide6.QtWidgets import QLabel, QPushButton

    from app import __version__

    dialog = window.about()
    assert any(f"Lineproof {__version__}" in label.text() for label in dialog.findChildren(QLabel))
    libraries = [dialog.table.item(r, 0).text() for r in range(dialog.table.rowCount())]
    assert "duckdb" in libraries and "pyHanko" in libraries
    assert [b.text() for b in dialog.findChildren(QPushButton) if "Qt" in b.text()] == ["About &Qt"]
    dialog.close()


@pytest.mark.parametrize("screen", ["slices", "validation", "users"])
def test_help_for_other_screens_names_their_sections(screen: str):
    text = help_markdown(screen, screen)
    for heading in SCREEN_SECTIONS[screen]:
        assert f"## {heading}" in text
