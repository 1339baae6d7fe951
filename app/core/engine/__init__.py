"""Row work and engines: where the prediction log's rows are reduced to summaries.

Every analysis reduces rows to small summaries in SQL (per slice and score bin: confusion counts; per slice,
window and feature: bin counts) and works on the summaries after that. This package holds that step for logs
that stay where they live: an attached log (a hive-partitioned Parquet lake, registered without copying) read
by DuckDB on this PC or by Apache Spark where the cluster is. The summary queries are written once, in DuckDB's
dialect, and transpiled (SQLGlot) for Spark; only their results come back.
"""
