"""The deterministic "weld-seam inspection" sample project (needs the `sample` extra: scikit-learn, skl2onnx)."""
