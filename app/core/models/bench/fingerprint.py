"""The hardware and software a benchmark ran on, so results from two PCs can be told apart and compared."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import socket
from typing import Any

import psutil

from app.core.models.bench.devices import onnxruntime_providers, openvino_devices

# Fields that identify the machine; current frequency and free memory change from run to run.
_IDENTITY = ("cpu_model", "physical_cores", "logical_cores", "ram_gb", "os", "onnxruntime", "openvino",
             "ov_devices")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _runtime_versions() -> dict[str, Any]:
    info: dict[str, Any] = {}
    try:
        import onnxruntime as ort

        info["onnxruntime"] = ort.__version__
        info["ort_providers"] = list(onnxruntime_providers())
    except Exception as exc:  # a broken runtime is part of the fingerprint, not a crash
        info["onnxruntime"] = f"unavailable: {exc}"
    devices = openvino_devices()
    try:
        import openvino as ov

        info["openvino"] = ov.__version__ if devices else "unavailable"
    except Exception as exc:
        info["openvino"] = f"unavailable: {exc}"
    info["ov_devices"] = devices
    return info


def hardware_fingerprint() -> dict[str, Any]:
    """CPU, cores, frequency, memory, OS, host and runtime versions, plus a short id of the stable part."""
    freq = psutil.cpu_freq()
    info: dict[str, Any] = {
        "host": socket.gethostname(),
        "cpu_model": _cpu_model(),
        "physical_cores": psutil.cpu_count(logical=False) or os.cpu_count(),
        "logical_cores": psutil.cpu_count(logical=True) or os.cpu_count(),
        "cpu_mhz_max": round(freq.max, 0) if freq and freq.max else None,
        "cpu_mhz_now": round(freq.current, 0) if freq and freq.current else None,
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(terse=True),
        "python": platform.python_version(),
        **_runtime_versions(),
    }
    stable = json.dumps({k: info.get(k) for k in _IDENTITY}, sort_keys=True)
    info["fingerprint_id"] = hashlib.sha256(stable.encode()).hexdigest()[:16]
    return info
