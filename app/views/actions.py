"""The window's menus and shortcuts as data (napari's app-model actions): what each entry says, which window
method it runs, its keys, and when it is enabled. The window builds its menus from these; tests read them without
a window (no two share a shortcut, every one names a method that exists)."""

from __future__ import annotations

from dataclasses import dataclass

from app.views.screen_stack import LABELS, NAMES

# When an action is enabled: always, with a project open, with one open for writing, signed in or out.
ALWAYS, PROJECT, WRITABLE, SIGNED_OUT, SIGNED_IN = "", "project", "writable", "signed_out", "signed_in"
RECENT = "recent"  # where File > Open recent (a submenu filled from the settings) goes
SEPARATOR = None


@dataclass(frozen=True)
class ActionSpec:
    """One menu entry: the window's attribute is act_<key>; `slot` is a window method called without arguments,
    or 'show_screen:<name>'. `shortcut` is a key text ("Ctrl+I") or 'std:<QKeySequence.StandardKey name>'."""

    key: str
    text: str
    slot: str
    shortcut: str = ""
    tip: str = ""
    needs: str = ALWAYS


FILE_MENU: tuple[ActionSpec | str | None, ...] = (
    ActionSpec("new", "&New project…", "new_project_dialog", "std:New", "Create an empty project folder"),
    ActionSpec("open", "&Open project…", "open_project_dialog", "std:Open", "Open a project folder"),
    ActionSpec("open_ro", "Open project &read-only…", "open_read_only_dialog", "Ctrl+Shift+O",
               "Open a project without the right to change it"),
    RECENT,
    ActionSpec("sample", "Open &sample project", "open_sample", "",
               "Open the weld-seam demo (built on first use, ~30 s)"),
    SEPARATOR,
    ActionSpec("import", "&Import predictions…", "import_predictions_dialog", "Ctrl+I",
               "Import a prediction log (CSV or Parquet)", WRITABLE),
    ActionSpec("labels", "Import &labels…", "import_labels_dialog", "Ctrl+L",
               "Import ground-truth labels that arrived later", WRITABLE),
    ActionSpec("dataset", "Register &dataset…", "register_dataset_dialog", "",
               "Add a Parquet file as a held-out, reference or training dataset", WRITABLE),
    SEPARATOR,
    ActionSpec("packet", "&Export signed packet…", "export_packet_dialog", "Ctrl+E",
               "Build and sign the validation and approval packet (PDF)", WRITABLE),
    ActionSpec("verify", "&Verify packet…", "verify_packet_dialog", "Ctrl+Shift+V",
               "Check a packet's signatures and evidence, offline"),
    SEPARATOR,
    ActionSpec("export_project", "E&xport project…", "export_project_dialog", "",
               "Write the project to one .lpz archive (USB stick)", PROJECT),
    ActionSpec("import_project", "Im&port project…", "import_project_dialog", "",
               "Check an .lpz archive and unpack it into a new folder"),
    SEPARATOR,
    ActionSpec("sign_in", "&Sign in…", "sign_in_dialog", "",
               "Work as a registered user: changes are audited under your name", SIGNED_OUT),
    ActionSpec("sign_out", "Sign &out", "sign_out", "", "Stop working as that user", SIGNED_IN),
    SEPARATOR,
    ActionSpec("close", "&Close project", "close_project", "std:Close", "Close the project (unsaved edits are asked about)", PROJECT),
    ActionSpec("quit", "&Quit", "close", "std:Quit", "Close the window"),
)

VIEW_MENU: tuple[ActionSpec | str | None, ...] = (
    ActionSpec("refresh", "&Refresh", "refresh", "std:Refresh", "Recompute the current screen from the project",
               PROJECT),
    ActionSpec("time_range", "&Time range…", "focus_time_range", "Ctrl+T",
               "Choose the time range that Slices, Drift, Alerts and Reviews follow"),
    SEPARATOR,
    # "&&": a single & in a menu text is the mnemonic marker ("Users & roles" would read "Users _roles").
    *(ActionSpec(f"show_{name}", label.replace("&", "&&"), f"show_screen:{name}",
                 f"Ctrl+{(i + 1) % 10}" if i < 10 else "", f"Show the {label} screen")
      for i, (name, label) in enumerate(zip(NAMES, LABELS, strict=True))),
)

HELP_MENU: tuple[ActionSpec | str | None, ...] = (
    ActionSpec("help", "&Help for this screen", "help_for_screen", "std:HelpContents",
               "The manual's part for the screen in front of you, and the glossary (offline)"),
    ActionSpec("shortcuts", "&Keyboard shortcuts", "shortcuts_dialog", "", "Every shortcut of the menus and the screens"),
    SEPARATOR,
    ActionSpec("about", "&About Lineproof", "about", "", "Version, licences of the bundled libraries, About Qt"),
)

MENUS: tuple[tuple[str, tuple[ActionSpec | str | None, ...]], ...] = (
    ("&File", FILE_MENU), ("&View", VIEW_MENU), ("&Help", HELP_MENU))


def all_actions() -> list[ActionSpec]:
    """Every action of every menu, in menu order."""
    return [a for _title, items in MENUS for a in items if isinstance(a, ActionSpec)]


def enabled(spec: ActionSpec, has_project: bool, writable: bool, signed_in: bool) -> bool:
    """Whether an action can run in this state of the window."""
    return {ALWAYS: True, PROJECT: has_project, WRITABLE: writable, SIGNED_OUT: has_project and not signed_in,
            SIGNED_IN: signed_in}[spec.needs]


def disabled_tip(spec: ActionSpec) -> str:
    """What the tooltip says while the action is disabled: what to do first."""
    return {WRITABLE: "Open a project for writing first", PROJECT: "Open a project first",
            SIGNED_OUT: "Open a project first", SIGNED_IN: "Sign in first"}.get(spec.needs, spec.tip)
