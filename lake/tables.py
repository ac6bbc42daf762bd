"""Where the lake's tables are, from config: Bronze (the pipeline's Parquet) and the Delta tables."""

from __future__ import annotations

from dataclasses import dataclass

from lake.silver import LakePaths


@dataclass(frozen=True)
class LakeTables:
    bronze: str
    silver: str
    silver_rejected: str
    gold: str
    ledger: str
    audit: str

    @classmethod
    def from_config(cls, config) -> LakeTables:  # a fleet.config.PlatformConfig
        lake = config.lake
        return cls(config.pipeline.bronze_path, lake.silver_path, lake.silver_rejected_path, lake.gold_path,
                   lake.ledger_path, lake.audit_path)

    def silver_paths(self) -> LakePaths:
        return LakePaths(self.bronze, self.silver, self.silver_rejected, self.ledger)


def dates(table_uri: str) -> list[str]:
    """The `date` partitions a table holds, from its log (none if there is no such table)."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        return sorted({partition["date"] for partition in DeltaTable(table_uri).partitions()})
    except TableNotFoundError:
        return []
