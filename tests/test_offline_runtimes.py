"""On an offline PC the runtimes report nothing and write nothing under HOME (#26): ONNX Runtime kept a device id
in ~/.cache/Microsoft/DeveloperTools, OpenVINO a client id and counters in ~/intel, NNCF the same."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import tiny_onnx_model

RUN = """
import numpy as np
import {first}
import onnxruntime as ort, openvino as ov
ort.InferenceSession({model!r}).run(None, {{'x': np.ones((1, 3), np.float32)}})
ov.Core().compile_model({model!r}, 'CPU')(np.ones((1, 3), np.float32))
try:
    import nncf  # the variants extra reports through the same telemetry
except ImportError:
    pass
"""


def _home_after(tmp_path: Path, first: str) -> list[str]:
    home = tmp_path / f"home-{first.replace('.', '-')}"
    home.mkdir()
    model = str(tiny_onnx_model(tmp_path))
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "ORT_DISABLE_TELEMETRY")} | {"HOME": str(home)}
    subprocess.run([sys.executable, "-c", RUN.format(first=first, model=model)], check=True, env=env,
                   cwd=Path(__file__).parents[1], capture_output=True)
    return sorted(str(p.relative_to(home)) for p in home.rglob("*"))


def test_lineproof_leaves_home_untouched_and_the_bare_runtimes_would_not(tmp_path: Path) -> None:
    assert _home_after(tmp_path, "app") == []
    bare = _home_after(tmp_path, "numpy")  # the same work without Lineproof: the test can see what it prevents
    assert any("onnxruntime" in p for p in bare) and any(p.startswith("intel") for p in bare), bare
