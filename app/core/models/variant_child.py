"""Child process that makes a cheaper variant of a model with OpenVINO and NNCF (`python -m
app.core.models.variant_child JOB.json`). It runs apart so that Cancel can stop it at once and a model that crashes the
converter cannot take the application with it. It writes the IR and prints one JSON line: the versions that made it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(job_path: str) -> int:
    """Read the job, convert, save the IR, report."""
    job = json.loads(Path(job_path).read_text(encoding="utf-8"))
    import openvino as ov

    model = ov.Core().read_model(job["source"])
    versions = {"openvino": ov.__version__}
    if job["method"] == "fp16":
        ov.save_model(model, job["out"], compress_to_fp16=True)
    else:
        import nncf
        import numpy as np

        data = np.load(job["calibration"])
        names = [p.get_any_name() for p in model.inputs]
        count = len(data[names[0]])
        # One sample per item: NNCF's statistics collectors see each calibration row once.
        samples = [{name: data[name][i:i + 1] for name in names} for i in range(count)]
        quantized = nncf.quantize(model, nncf.Dataset(samples), subset_size=count)
        ov.save_model(quantized, job["out"], compress_to_fp16=False)
        versions["nncf"] = nncf.__version__
    sys.stdout.write(json.dumps(versions) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
