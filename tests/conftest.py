"""Shared fixtures: an empty project, and a small sample project built once per session."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from app.core.store.project import Project  # noqa: E402

SAMPLE_TEST_SCALE = 0.05  # ~100k predictions: every story of the sample, built in ~20 s


@pytest.fixture
def empty_project(tmp_path: Path):
    """A new project with the default slice dimensions, open for writing."""
    project = Project.create(tmp_path / "proj", "Test project", site="T1")
    yield project
    project.close()


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
