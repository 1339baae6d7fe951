"""What this PC can run models on, asked once per process (importing OpenVINO and starting its Core takes
~0.5 s)."""

from __future__ import annotations

from functools import cache


@cache
def openvino_devices() -> dict[str, str]:
    """OpenVINO device -> full name ({} when OpenVINO cannot start here)."""
    try:
        import openvino as ov

        core = ov.Core()
        return {d: str(core.get_property(d, "FULL_DEVICE_NAME")) for d in core.available_devices}
    except Exception:  # a broken or missing OpenVINO is reported by the benchmark itself
        return {}


@cache
def onnxruntime_providers() -> tuple[str, ...]:
    """ONNX Runtime execution providers present (the Azure one is not a device)."""
    import onnxruntime as ort

    return tuple(p for p in ort.get_available_providers() if p != "AzureExecutionProvider")
