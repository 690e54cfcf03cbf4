"""Write a run's audit tables (hive-partitioned Parquet, atomic files)."""

from __future__ import annotations

from datetime import date
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from mori.batch.audit import write_table
from mori.batch.storage import Storage


@task(name="write-audit", cache_policy=NO_CACHE)
def write_audit(
    storage: Storage,
    audit_uri: str,
    run_id: str,
    run_date: date,
    tables: dict[str, list[dict[str, Any]]],
) -> list[str]:
    """One Parquet file per table for this run; returns their URIs."""
    return [
        write_table(storage, audit_uri, name, rows, run_id, run_date)
        for name, rows in tables.items()
    ]
