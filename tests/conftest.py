"""Shared fixtures: an empty project, and a small sample project built once per session."""

from __future__ import annotations

import functools
import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from app.core.store.project import Project  # noqa: E402
from tests.helpers import pin_self_signed_identities  # noqa: E402

SAMPLE_TEST_SCALE = 0.05  # ~100k predictions: every story of the sample, built in ~20 s


@pytest.fixture(autouse=True)
def pinned_test_identities(request, monkeypatch):
    """Tests stand for a site that pins its people's certificates on this PC (lineproof trust add): a self-signed
    identity made in a test is pinned as an anchor when it is created. Tests of unanchored identities opt out
    with @pytest.mark.unpinned."""
    if not request.node.get_closest_marker("unpinned"):
        pin_self_signed_identities(monkeypatch)
    yield


class _MemoRuntimeCheck:
    """model_import's isolated runtime check remembered per (model file bytes, limits, probe command).

    The check starts a child that imports ONNX Runtime and OpenVINO (~0.7 s) and answers from the file's bytes
    alone; tests import the same few small models hundreds of times. Not remembered: failures (a refused file is
    checked every time), files with external data (their answer depends on other files), and any run under a
    replaced probe command (tests of the check itself), which is part of the key."""

    def __init__(self, real) -> None:
        self.real, self.answers = real, {}

    def __call__(self, model_path, **limits):
        import hashlib
        import json

        from app.core.models import runtime_probe

        data = Path(model_path).read_bytes()
        if b"location" in data:  # external data: the answer depends on files beside this one
            return self.real(model_path, **limits)
        key = (hashlib.sha256(data).hexdigest(), json.dumps(limits, sort_keys=True), runtime_probe.probe_command)
        if key not in self.answers:
            self.answers[key] = self.real(model_path, **limits)
        return dict(self.answers[key])


class _MemoPkcs12:
    """cryptography's pkcs12 module with load_key_and_certificates remembered per (file bytes, passphrase).

    Opening a PKCS#12 file runs its key derivation on purpose slowly (~0.16 s here), and a governance test unlocks
    the same few identities dozens of times. The result is a pure function of the bytes and the passphrase, so
    remembering it changes no outcome: a wrong passphrase still raises (exceptions are not remembered), and a
    rewritten file has other bytes."""

    def __init__(self, real) -> None:
        self._real = real
        self.load_key_and_certificates = functools.lru_cache(maxsize=512)(real.load_key_and_certificates)

    def __getattr__(self, name: str):
        return getattr(self._real, name)


@pytest.fixture(autouse=True, scope="session")
def remembered_pure_slow_calls():
    """Tests reuse an identity's unlocked key and a model file's runtime check instead of deriving them again
    (see _MemoPkcs12 and _MemoRuntimeCheck): both answers are pure functions of what the key is made of."""
    from app.core.governance import identity
    from app.core.models import model_import

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(identity, "pkcs12", _MemoPkcs12(identity.pkcs12))
        mp.setattr(model_import, "check_runtimes_isolated", _MemoRuntimeCheck(model_import.check_runtimes_isolated))
        yield


@pytest.fixture
def empty_project(tmp_path: Path):
    """A new project with the default slice dimensions, open for writing."""
    project = Project.create(tmp_path / "proj", "Test project", site="T1")
    yield project
    project.close()


@pytest.fixture
def window(qtbot, tmp_path: Path):
    """The main window, shown, with its settings in a file of the test's own; closed and dropped afterwards."""
    import gc

    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from app.views.main_window import MainWindow

    win = MainWindow(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(win)
    win.show()
    yield win
    win.close_project(force=True)
    win.deleteLater()
    QApplication.processEvents()
    gc.collect()  # drop the window's Python wrappers while Qt is still up, not at interpreter exit


@pytest.fixture(scope="session")
def sample_folder(tmp_path_factory) -> Path:
    """The sample project at test scale (read it, or copy it with `sample_copy` to change it)."""
    from app.sample.build import build_sample

    folder = tmp_path_factory.mktemp("sample") / "weld"
    build_sample(folder, scale=SAMPLE_TEST_SCALE)
    return folder


@pytest.fixture
def sample_copy(sample_folder: Path, tmp_path: Path) -> Path:
    """A private copy of the sample project that a test may change."""
    dest = tmp_path / "weld-copy"
    shutil.copytree(sample_folder, dest)
    return dest


# PySide6 (6.x) can abort while the interpreter tears down after many windows were created and deleted in one
# process ("bool_dealloc: deallocating True or False", a refcount error inside the binding, seen here once a
# session opens a dozen main windows). It happens after the last test and the summary, so it says nothing about
# the tests; but it would turn a green run into exit code 134. Leave with the session's own status instead.
_SESSION: dict[str, int] = {}


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _SESSION["status"] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    if "status" in _SESSION:
        import sys

        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_SESSION["status"])
