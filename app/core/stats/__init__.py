"""Statistics with no knowledge of projects: confidence intervals and tail probabilities (polars/numpy)."""
