"""Reading the audit back: older schema versions, odd files, type drift, and S3."""

from __future__ import annotations

import io
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mori.batch.audit import IMAGES_SCHEMA, RUNS_SCHEMA, SCHEMA_VERSION, write_table
from mori.batch.storage import Storage
from mori.report import build_report, load_audit, load_table, make_report
from mori.report.load import first_day

from .helpers import OLD_DAY, image, write_audit, write_old_partition


def test_an_older_schema_partition_still_reads(audit: Path) -> None:
    write_old_partition(str(audit), Storage())
    data = load_audit(str(audit))
    assert data.problems == []
    old = data.images[data.images["run_id"] == "run-old"]
    assert len(old) == 3 and set(old["schema_version"]) == {0}
    assert old["bytes"].isna().all() and old["output_uri"].isna().all()  # absent then: null
    assert list(data.images.columns[: len(IMAGES_SCHEMA)]) == IMAGES_SCHEMA.names
    assert set(data.images["schema_version"]) == {0, SCHEMA_VERSION}
    old_run = data.runs[data.runs["run_id"] == "run-old"].iloc[0]
    assert old_run["rows"] == 3 and pd.isna(old_run["api_requests"])

    report = build_report(data)
    row = report.per_run.set_index("run_id").loc["run-old"]
    assert (row["images"], row["processed"], row["failed"]) == (3, 2, 1)
    assert row["latency_p50_seconds"] == 30.0 and row["orders"] == 1
    assert pd.isna(row["api_requests"])
    assert row["failed_by_code"] == [("FILE_NOT_FOUND", 1)]
    day = report.per_day.set_index("run_date").loc[OLD_DAY]
    assert day["images"] == 3 and pd.isna(day["api_requests"])


def _write(path: Path, table: pa.Table) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def test_castable_type_drift_is_cast_to_the_current_types(tmp_path: Path) -> None:
    """An older writer's int32 counts and naive (UTC) microsecond times read as today's types."""
    audit = tmp_path / "audit"
    _write(
        audit / "images" / "run_date=2026-01-05" / "r.parquet",
        pa.table(
            {
                "run_id": ["r"],
                "status": ["processed"],
                "bytes": pa.array([12], pa.int32()),
                "created_at": pa.array([pd.Timestamp("2026-01-05 10:00:00")], pa.timestamp("us")),
                "completed_at": pa.array([pd.Timestamp("2026-01-05 10:00:07")], pa.timestamp("us")),
                "schema_version": pa.array([0], pa.int64()),
            }
        ),
    )
    table = load_table(str(audit), "images")
    assert table.num_rows == 1
    assert table.schema.field("bytes").type == pa.int64()
    assert table.schema.field("created_at").type == pa.timestamp("ms", tz="UTC")
    assert table.schema.field("schema_version").type == pa.int32()
    report = build_report(load_audit(str(audit)))
    assert report.per_run.iloc[0]["latency_p50_seconds"] == 7.0


def test_manifest_columns_vary_between_runs(tmp_path: Path) -> None:
    """Extra columns: kept, null where a run lacked them, text when runs disagree on the type."""
    audit, storage = str(tmp_path / "audit"), Storage()
    day = date(2026, 1, 1)
    rows_1 = [image("r1", 0, "processed", day, collection="spring", priority=1, score=0.5)]
    rows_2 = [image("r2", 0, "processed", day, collection=7, priority=2, score=3)]
    rows_3 = [image("r3", 0, "processed", day)]
    for run_id, rows in (("r1", rows_1), ("r2", rows_2), ("r3", rows_3)):
        write_table(storage, audit, rows, run_id, day)
    images = load_audit(audit).images.set_index("run_id")
    assert images.loc["r1", "collection"] == "spring" and images.loc["r2", "collection"] == "7"
    assert str(images["priority"].dtype) == "Int64" and images.loc["r2", "priority"] == 2
    assert pd.isna(images.loc["r3", "priority"])
    assert images.loc["r2", "score"] == 3.0 and pd.isna(images.loc["r3", "collection"])


def test_odd_files_are_left_out_and_named(audit: Path) -> None:
    folder = audit / "images" / "run_date=2026-03-01"
    (folder / ".run-x.parquet.abc.tmp").write_bytes(b"half a file")  # an interrupted write
    (folder / "notes.txt").write_text("not a table")
    (folder / "broken.parquet").write_bytes(b"PAR1 this is not parquet")
    (audit / "images" / "stray.parquet").write_bytes((folder / "run-a.parquet").read_bytes())
    (audit / "images" / "run_date=yesterday").mkdir()
    (audit / "images" / "run_date=yesterday" / "x.parquet").write_bytes(b"")
    data = load_audit(str(audit))
    assert len(data.problems) == 3, data.problems
    assert any("broken.parquet" in p and "unreadable" in p for p in data.problems)
    assert any("stray.parquet" in p and "run_date" in p for p in data.problems)
    assert any("run_date=yesterday" in p for p in data.problems)
    assert len(data.images) == 15  # the three runs, nothing more, nothing twice
    assert "notes.txt" not in " ".join(data.problems)


def test_a_column_that_does_not_cast_is_nulled_and_reported(tmp_path: Path) -> None:
    audit = tmp_path / "audit"
    _write(
        audit / "runs" / "run_date=2026-01-05" / "r.parquet",
        pa.table({"run_id": ["r"], "api_requests": ["many"], "rows": pa.array([2], pa.int64())}),
    )
    data = load_audit(str(audit))
    assert pd.isna(data.runs.iloc[0]["api_requests"]) and data.runs.iloc[0]["rows"] == 2
    assert any("api_requests" in p for p in data.problems)
    assert list(data.runs.columns[: len(RUNS_SCHEMA)]) == RUNS_SCHEMA.names


def test_first_day() -> None:
    assert first_day(None) is None
    assert first_day(1, date(2026, 3, 2)) == date(2026, 3, 2)
    assert first_day(7, date(2026, 3, 2)) == date(2026, 2, 24)
    with pytest.raises(ValueError):
        first_day(0)


def test_s3_audit_through_moto(s3_bucket: str) -> None:
    audit = f"s3://{s3_bucket}/team/audit"
    storage = Storage()
    write_audit(audit, storage, old=True)
    # a sibling prefix that merely starts like a table must not be read as part of it
    sibling = f"s3://{s3_bucket}/team/audit/images_backup/run_date=2026-03-01/x.parquet"
    storage.write_bytes(sibling, b"")
    report, files = make_report(audit, storage=storage)
    assert files.out_uri == f"s3://{s3_bucket}/team/report"
    assert report.problems == [] and report.totals()["images"] == 18
    assert report.per_run.set_index("run_id").loc["run-a", "api_retries"] == 3
    summary = pq.read_table(io.BytesIO(storage.read_bytes(files.summary)))
    assert summary.num_rows == 4 + 3  # four runs, three days
    names = {uri.rsplit("/", 1)[-1] for uri in storage.list(files.out_uri)}
    assert {"report.html", "summary.parquet", "latency.png", "failed_rows.csv"} <= names
