"""Lineproof runs on disconnected shop-floor PCs: the inference runtimes' usage reporting stays off, and they write
nothing under the user's HOME (ONNX Runtime kept a device id in ~/.cache/Microsoft/DeveloperTools, OpenVINO a client
id and counters in ~/intel as soon as it was imported). Applied when `app` is imported, before either runtime is."""

from __future__ import annotations

import os


def quiet_runtimes() -> None:
    """Switch off ONNX Runtime's telemetry (its own variable) and decline OpenVINO's (its consent check says no)."""
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    try:
        from openvino_telemetry.utils.opt_in_checker import ConsentCheckResult, OptInChecker
    except ImportError:  # an installation without OpenVINO's telemetry package has nothing to switch off
        return
    # Declined consent: no client id, no statistics file, nothing sent. Its only other switches are a consent
    # file in HOME (which would itself be a write there) or CI=true in the environment of every process.
    OptInChecker.check = lambda self, *args, **kwargs: ConsentCheckResult.DECLINED
