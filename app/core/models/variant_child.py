"""Child process that makes a cheaper variant of a model with OpenVINO and NNCF (`python -m
app.core.models.variant_child JOB.json`). It runs apart so that Cancel can stop it at once and a model that crashes the
converter cannot take the application with it. It writes the IR and prints one JSON line: the versions that made it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

TABLE_ROWS_PER_ITEM = 1000


def rows_per_item(model, count: int) -> int:
    """Calibration rows per NNCF item: one image per item, but table rows in batches of up to TABLE_ROWS_PER_ITEM.

    NNCF sets an activation's range from the mean over items of each item's min and max. An image holds thousands
    of values, so its extremes are the distribution's; a table row holds a dozen, so one row per item clipped the
    sample MLP's standardised inputs at +-1.9 std, where the defects are (recall -0.09 to -0.23 on every line). A
    batch of rows per item gives the tails back; several batches still average out a single wild row."""
    shapes = [p.get_partial_shape() for p in model.inputs]
    table = len(shapes) == 1 and shapes[0].rank.is_static and shapes[0].rank.get_length() == 2 \
        and shapes[0][0].is_dynamic
    return min(max(count, 1), TABLE_ROWS_PER_ITEM) if table else 1


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
        step = rows_per_item(model, count)
        items = [{name: data[name][i:i + step] for name in names} for i in range(0, count, step)]
        # Weights in 7 bits on every layer (NNCF's overflow fix; its default covers the first layer only). CPUs
        # without VNNI (AVX2, AVX-512 before Cascade Lake) add u8 x s8 products in pairs into int16, which
        # saturates: on an AVX2 PC the default INT8 test MLP agreed with its parent on 97.0% of decisions, against
        # 99.8% for the same IR with OpenVINO's INT8 kernels off. With 7-bit weights the variant computes the same
        # on every x86 CPU, so a validation run on one PC holds for the other PCs of the plant.
        advanced = nncf.AdvancedQuantizationParameters(overflow_fix=nncf.OverflowFix.ENABLE)
        quantized = nncf.quantize(model, nncf.Dataset(items), subset_size=len(items), advanced_parameters=advanced)
        ov.save_model(quantized, job["out"], compress_to_fp16=False)
        versions["nncf"] = nncf.__version__
    sys.stdout.write(json.dumps(versions) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
