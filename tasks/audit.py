"""Write a run's audit tables (hive-partitioned Parquet, atomic files)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date

from prefect import task
from prefect.cache_policies import NO_CACHE

from mori.batch.audit import AuditRow, RunRow, write_table
from mori.batch.storage import Storage
from mori.batch.stream import RunAudit

#: A run's rows per table, by row type (a table with no rows is still written, empty).
AuditTables = Mapping[type[AuditRow], Sequence[AuditRow]]


@task(name="write-audit", cache_policy=NO_CACHE)
def write_audit(
    storage: Storage, audit_uri: str, run_id: str, run_date: date, tables: AuditTables
) -> list[str]:
    """One Parquet file per table for this run; returns their URIs."""
    return [
        write_table(storage, audit_uri, rows, run_id, run_date, row_type)
        for row_type, rows in tables.items()
    ]


@task(name="write-audit", cache_policy=NO_CACHE)
def publish_audit(
    audit: RunAudit, storage: Storage, audit_uri: str, run_date: date, run: RunRow
) -> list[str]:
    """A ``protect`` run's tables, written as it went, copied to the audit with its ``runs``
    row; returns their URIs."""
    return audit.publish(storage, audit_uri, run_date, run)
