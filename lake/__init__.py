"""The batch lakehouse: Bronze Parquet → Silver (clean, deduplicated, Delta) → Gold (hourly
per-vehicle summaries, Delta). DuckDB does the work on one machine; the `deltalake` package writes
tables any Delta reader opens."""
