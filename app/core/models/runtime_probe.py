"""Which runtimes can load a model, tried in a child process: a hostile or broken model file can make a runtime
allocate gigabytes or hang while loading, and that must not happen inside Lineproof (the GUI, or an import).

The parent runs `python -m app.core.models.runtime_probe` (`lineproof _runtime-check` in a frozen bundle), sends
the model path on stdin, watches memory and time with the benchmark's limits, and reads one JSON line back.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from app.core.errors import LineproofError, runtime_cause

TIMEOUT_S = 120.0  # processor seconds the runtimes may spend loading a file
WALL_FACTOR = 4  # a child that waits instead of working is stopped after this many times the limit, by the clock
MEMORY_SHARE = 0.75  # the benchmark's default limit: three quarters of this PC's memory


class RuntimeCheckError(LineproofError):
    """Loading the model to check it was stopped (memory or time limit, crash); nothing was imported."""


def check_runtimes(model_path: Path) -> dict[str, str]:
    """Try ONNX Runtime and OpenVINO on the model; 'ok' or the reason (with the unsupported operator named).

    Runs in the probe process only."""
    result: dict[str, str] = {}
    try:
        import onnxruntime as ort

        ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
        result["onnxruntime"] = "ok"
    except Exception as exc:
        result["onnxruntime"] = f"cannot load: {runtime_cause(str(exc), 200)}"
    try:
        import openvino as ov

        ov.Core().compile_model(str(model_path), "CPU")
        result["openvino"] = "ok"
    except Exception as exc:
        ops = re.findall(r"(?:ai\.onnx\.ml\.|ai\.onnx\.)?([A-Z][A-Za-z]+)", str(exc).split("operations:")[-1]) \
            if "operations:" in str(exc) else []
        result["openvino"] = f"not supported ({', '.join(dict.fromkeys(ops))})" if ops else \
            f"cannot compile: {runtime_cause(str(exc), 200)}"
    return result


def probe_command() -> list[str]:
    """How to start the probe, from a source checkout or from a frozen bundle."""
    if getattr(sys, "frozen", False):
        return [sys.executable, "_runtime-check"]
    return [sys.executable, "-m", "app.core.models.runtime_probe"]


def check_runtimes_isolated(model_path: Path, timeout_s: float = TIMEOUT_S, memory_mb: float | None = None
                            ) -> dict[str, str]:
    """check_runtimes in a child process under a memory and time limit; raises RuntimeCheckError when stopped.

    The time limit counts the child's processor time, not the clock: on a busy PC the same file took 120 s of wall
    time in one run and 124.6 s in another, so a wall-clock limit refused it once and accepted it once. Processor
    time is about the same however busy the PC is; a child that sleeps instead of working is stopped after
    WALL_FACTOR times the limit. Hitting a limit is a refusal ("not checked"), never "ok"."""
    import psutil

    limit = memory_mb or psutil.virtual_memory().total / 2**20 * MEMORY_SHARE
    name = Path(model_path).name
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(probe_command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True,
                                cwd=str(Path(__file__).resolve().parents[3]))
        out: list[str] = []
        reader = threading.Thread(target=lambda: out.append(proc.stdout.read()), daemon=True)
        reader.start()
        try:
            proc.stdin.write(json.dumps({"path": str(model_path)}))
            proc.stdin.close()
        except OSError:
            pass
        watched = psutil.Process(proc.pid)
        deadline = time.monotonic() + timeout_s * WALL_FACTOR
        try:
            while proc.poll() is None:
                try:
                    rss = watched.memory_info().rss / 2**20
                    times = watched.cpu_times()
                    cpu = times.user + times.system
                except psutil.Error:
                    rss, cpu = 0.0, 0.0
                if rss > limit:
                    raise RuntimeCheckError(f"Loading {name} to check it used more than {limit:,.0f} MB of memory "
                                            "and was stopped.", "The file is broken or hostile; nothing was "
                                                                 "imported.")
                if cpu > timeout_s:
                    raise RuntimeCheckError(f"Loading {name} to check it used more than {timeout_s:.0f} s of "
                                            "processor time and was stopped (not checked).",
                                            "The file is broken or hostile; nothing was imported.")
                if time.monotonic() > deadline:
                    raise RuntimeCheckError(f"Loading {name} to check it did not finish within "
                                            f"{timeout_s * WALL_FACTOR:.0f} s and was stopped (not checked).",
                                            "The file is broken or hostile; nothing was imported.")
                time.sleep(0.05)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        reader.join(timeout=10)
        err.seek(0)
        stderr = err.read()[-500:]
    text = (out[0] if out else "").strip().splitlines()
    if proc.returncode != 0 or not text:
        raise RuntimeCheckError(f"Loading {name} to check it crashed the checking process (exit "
                                f"{proc.returncode}).", f"The file is broken or hostile; nothing was imported. "
                                                        f"{stderr.strip().splitlines()[-1] if stderr.strip() else ''}")
    return json.loads(text[-1])


def main() -> int:
    """The probe process: read {"path": ...} from stdin, print the runtimes' answers as one JSON line."""
    from app.core.models.child_guard import exit_with_parent

    exit_with_parent()
    job = json.loads(sys.stdin.read())
    print(json.dumps(check_runtimes(Path(job["path"]))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
