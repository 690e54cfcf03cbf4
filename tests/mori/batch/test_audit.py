"""Audit tables: hive-partitioned Parquet, written atomically, readable by pandas and pyarrow."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
from pyarrow import fs as pafs

from mori.batch import storage as storage_module
from mori.batch.audit import (
    IMAGES_SCHEMA,
    ORDERS_SCHEMA,
    RUNS_SCHEMA,
    SCHEMA_VERSION,
    SCHEMAS,
    ImageRow,
    OrderRow,
    RunRow,
    from_record,
    table_uri,
    write_table,
)
from mori.batch.storage import Storage

RUN_DATE = date(2026, 2, 19)


def image_row(n: int, **extra: Any) -> ImageRow:
    return from_record(
        ImageRow,
        {
            "run_id": "run-1",
            "manifest_uri": "/data/m.csv",
            "row_index": n,
            "source": f"img/{n}.jpg",
            "id": f"cust-{n}",
            "file_name": f"{n}.jpg",
            "image_key": f"key-{n}",
            "sha256": f"{n:064x}",
            "bytes": 1000 + n,
            "width": 10 + n,
            "height": 20 + n,
            "order_key": "ok-1",
            "order_id": "ord-1",
            "status": "processed" if n % 2 == 0 else "failed",
            "error_code": None if n % 2 == 0 else "INVALID_IMAGE",
            "error_message": None if n % 2 == 0 else "damaged",
            "attempts": 1,
            "output_uri": f"out/{n}.jpg",
            "output_sha256": f"{n + 1:064x}",
            "created_at": "2026-02-19T11:50:00.000+00:00",
            "confirmed_at": "2026-02-19T13:51:00.123+02:00",  # another offset: stored as UTC
            "completed_at": "2026-02-19T12:00:00.000Z",
            "downloaded_at": None,
            "recorded_at": "2026-02-19T12:01:00.500+00:00",
            **extra,
        },
    )


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def read_dataset(root: Path | str, filesystem: Any = None) -> pa.Table:
    return pads.dataset(str(root), partitioning="hive", filesystem=filesystem).to_table()


def test_writes_one_hive_partitioned_file_atomically(tmp_path: Path, storage: Storage) -> None:
    audit = tmp_path / "audit"
    uri = write_table(storage, str(audit), [image_row(0), image_row(1)], "run-1", RUN_DATE)
    assert uri == str(audit / "images" / "run_date=2026-02-19" / "run-1.parquet")
    assert uri == table_uri(str(audit), "images", RUN_DATE, "run-1")
    assert files_under(audit) == ["images/run_date=2026-02-19/run-1.parquet"]  # no temp files


def test_readable_by_pyarrow_dataset_and_pandas(tmp_path: Path, storage: Storage) -> None:
    audit = tmp_path / "audit"
    rows = [image_row(n) for n in range(3)]
    write_table(storage, str(audit), rows, "run-1", RUN_DATE)

    table = read_dataset(audit / "images")
    assert table.num_rows == 3
    assert set(table.column("run_date").to_pylist()) == {str(RUN_DATE)}
    frame = pd.read_parquet(audit / "images")
    assert frame.sort_values("row_index")["source"].tolist() == [r.source for r in rows]
    assert frame["schema_version"].unique().tolist() == [SCHEMA_VERSION]


def test_schema_columns_and_types(tmp_path: Path, storage: Storage) -> None:
    uri = write_table(storage, str(tmp_path), [image_row(0)], "run-1", RUN_DATE)
    schema = pq.read_schema(uri)
    assert schema.names == IMAGES_SCHEMA.names
    for fld in IMAGES_SCHEMA:
        assert schema.field(fld.name).type == fld.type, fld.name
    for name in ("created_at", "confirmed_at", "completed_at", "downloaded_at", "recorded_at"):
        assert schema.field(name).type.tz == "UTC"


def test_timestamps_are_stored_in_utc(tmp_path: Path, storage: Storage) -> None:
    uri = write_table(storage, str(tmp_path), [image_row(0)], "run-1", RUN_DATE)
    row = pq.read_table(uri).to_pylist()[0]
    assert row["created_at"] == datetime(2026, 2, 19, 11, 50, tzinfo=UTC)
    assert row["confirmed_at"] == datetime(2026, 2, 19, 11, 51, 0, 123_000, tzinfo=UTC)
    assert row["completed_at"] == datetime(2026, 2, 19, 12, 0, tzinfo=UTC)
    assert row["downloaded_at"] is None


def test_values_round_trip_and_missing_columns_are_null(tmp_path: Path, storage: Storage) -> None:
    sparse = ImageRow(run_id="run-1", row_index=4, status="pending", source="x.jpg")
    rows = [image_row(0), sparse]
    uri = write_table(storage, str(tmp_path), rows, "run-1", RUN_DATE)
    got = pq.read_table(uri).to_pylist()
    timestamps = {f.name for f in IMAGES_SCHEMA if pa.types.is_timestamp(f.type)}
    for name in IMAGES_SCHEMA.names:
        if name in timestamps or name == "schema_version":
            continue
        assert got[0][name] == getattr(rows[0], name), name
    assert got[1]["status"] == "pending"
    assert all(got[1][n] is None for n in ("sha256", "bytes", "order_id", "created_at"))
    assert [r["schema_version"] for r in got] == [SCHEMA_VERSION] * 2


def test_extra_manifest_columns_are_kept(tmp_path: Path, storage: Storage) -> None:
    rows = [
        image_row(0, album="summer", rank=3, score=0.5, flag=True, note=None),
        image_row(1, album="winter", rank=4, score=None, flag=False, note=None),
    ]
    uri = write_table(storage, str(tmp_path), rows, "run-1", RUN_DATE)
    table = pq.read_table(uri)
    assert table.schema.names[: len(IMAGES_SCHEMA)] == IMAGES_SCHEMA.names
    assert pa.types.is_string(table.schema.field("album").type)
    assert pa.types.is_integer(table.schema.field("rank").type)
    assert pa.types.is_floating(table.schema.field("score").type)
    assert pa.types.is_boolean(table.schema.field("flag").type)
    assert pa.types.is_string(table.schema.field("note").type)  # all null -> text, not null type
    assert table.column("album").to_pylist() == ["summer", "winter"]
    assert table.column("rank").to_pylist() == [3, 4]
    assert table.column("flag").to_pylist() == [True, False]


@pytest.mark.parametrize(
    "values", [[3, "large"], [1.5, "n/a"], [{"a": 1}, {"a": 2}], [[1, 2], [3]]], ids=str
)
def test_mixed_or_nested_extra_columns_become_strings(
    tmp_path: Path, storage: Storage, values: list[Any]
) -> None:
    rows = [image_row(n, tag=v) for n, v in enumerate(values)]
    uri = write_table(storage, str(tmp_path), rows, "run-1", RUN_DATE)
    table = pq.read_table(uri)
    assert table.schema.field("tag").type == pa.string()
    assert all(isinstance(v, str) for v in table.column("tag").to_pylist())


def test_rewriting_a_run_replaces_its_rows(tmp_path: Path, storage: Storage) -> None:
    audit = str(tmp_path / "audit")
    write_table(storage, audit, [image_row(n) for n in range(3)], "run-1", RUN_DATE)
    final = [image_row(n, status="processed") for n in range(3)]
    write_table(storage, audit, final, "run-1", RUN_DATE)
    write_table(storage, audit, [image_row(9, run_id="run-2")], "run-2", RUN_DATE)
    table = read_dataset(Path(audit) / "images")
    assert table.num_rows == 4
    run1 = [r for r in table.to_pylist() if r["run_id"] == "run-1"]
    assert sorted(r["row_index"] for r in run1) == [0, 1, 2]
    assert {r["status"] for r in run1} == {"processed"}
    assert files_under(Path(audit)) == [
        "images/run_date=2026-02-19/run-1.parquet",
        "images/run_date=2026-02-19/run-2.parquet",
    ]


def test_runs_on_other_days_go_to_their_own_partition(tmp_path: Path, storage: Storage) -> None:
    audit = tmp_path / "audit"
    write_table(storage, str(audit), [image_row(0)], "run-1", RUN_DATE)
    write_table(storage, str(audit), [image_row(1)], "run-2", date(2026, 3, 1))
    table = read_dataset(audit / "images")
    by_date = {r["row_index"]: str(r["run_date"]) for r in table.to_pylist()}
    assert by_date == {0: "2026-02-19", 1: "2026-03-01"}
    only_march = pads.dataset(str(audit / "images"), partitioning="hive").to_table(
        filter=pads.field("run_date") == "2026-03-01"
    )
    assert only_march.column("row_index").to_pylist() == [1]


def test_a_failed_write_leaves_the_previous_file_whole(
    tmp_path: Path, storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    audit = tmp_path / "audit"
    uri = write_table(storage, str(audit), [image_row(0)], "run-1", RUN_DATE)
    before = Path(uri).read_bytes()

    def broken_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(storage_module.os, "replace", broken_replace)
    with pytest.raises(OSError):
        write_table(storage, str(audit), [image_row(n) for n in range(5)], "run-1", RUN_DATE)
    monkeypatch.undo()
    assert Path(uri).read_bytes() == before
    assert files_under(audit) == ["images/run_date=2026-02-19/run-1.parquet"]


def test_orders_table(tmp_path: Path, storage: Storage) -> None:
    rows = [
        {
            "run_id": "run-1",
            "order_key": "ok-1",
            "order_id": "ord-1",
            "kind": "upload",
            "generation": 1,
            "status": "processed",
            "file_count": 2,
            "processed": 2,
            "failed": 0,
            "attempts": 1,
            "replaced_order_keys": ["ok-0"],
            "planned_at": "2026-02-19T11:49:00.000+00:00",
            "downloaded_at": "2026-02-19T12:02:00.000+00:00",
        },
        {"run_id": "run-1", "order_key": "ok-2", "status": "pending", "replaced_order_keys": []},
    ]
    uri = write_table(storage, str(tmp_path), [OrderRow(**r) for r in rows], "run-1", RUN_DATE)
    table = pq.read_table(uri)
    assert table.schema.names == ORDERS_SCHEMA.names
    assert all(table.schema.field(f.name).type == f.type for f in ORDERS_SCHEMA)
    assert table.column("replaced_order_keys").to_pylist() == [["ok-0"], []]
    assert table.column("generation").to_pylist() == [1, 0]


def test_runs_table(tmp_path: Path, storage: Storage) -> None:
    row = {
        "run_id": "run-1",
        "manifest_uri": "m.csv",
        "started_at": "2026-02-19T11:00:00.000+00:00",
        "finished_at": "2026-02-19T11:05:00.000+00:00",
        "wall_seconds": 300.0,
        "rows": 10,
        "processed": 7,
        "skipped": 1,
        "failed": 1,
        "pending": 1,
        "orders": 1,
        "api_requests": 12,
        "api_retries": 2,
        "rate_limited": 0,
    }
    uri = write_table(storage, str(tmp_path), [RunRow(**row)], "run-1", RUN_DATE)
    table = pq.read_table(uri)
    assert table.schema.names == RUNS_SCHEMA.names
    got = table.to_pylist()[0]
    assert {k: got[k] for k in row if not k.endswith("_at")} == {
        k: v for k, v in row.items() if not k.endswith("_at")
    }


def test_every_table_carries_the_schema_version() -> None:
    for schema in SCHEMAS.values():
        assert schema.field("schema_version").type == pa.int32()
        assert schema.field("run_id").type == pa.string()


def test_write_to_s3(s3: Any) -> None:
    audit = f"s3://{s3.bucket}/audit"
    rows = [image_row(n, album="a") for n in range(3)]
    uri = write_table(s3.storage, audit, rows, "run-1", RUN_DATE)
    assert uri == f"{audit}/images/run_date=2026-02-19/run-1.parquet"
    write_table(s3.storage, audit, rows[:2], "run-1", RUN_DATE)  # replaces
    assert s3.storage.list(audit) == [uri]
    head = s3.client.head_object(
        Bucket=s3.bucket, Key="audit/images/run_date=2026-02-19/run-1.parquet"
    )
    assert head["ContentType"] == "application/vnd.apache.parquet"

    endpoint = urlsplit(s3.endpoint)
    filesystem = pafs.S3FileSystem(
        access_key=os.environ["AWS_ACCESS_KEY_ID"],
        secret_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        region="us-east-1",
        scheme=endpoint.scheme,
        endpoint_override=endpoint.netloc,
    )
    table = read_dataset(f"{s3.bucket}/audit/images", filesystem)
    assert sorted(table.column("row_index").to_pylist()) == [0, 1]
    assert set(table.column("run_date").to_pylist()) == {"2026-02-19"}
    assert table.schema.field("created_at").type == pa.timestamp("ms", tz="UTC")
