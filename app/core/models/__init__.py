"""Model versions: safe import, registry and stages, benchmarks, offline validation."""
