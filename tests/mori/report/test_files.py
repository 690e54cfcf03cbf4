"""Finding the audit's files and reading them by byte ranges (locally and from moto's S3)."""

from __future__ import annotations

import io
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mori.batch.storage import Storage
from mori.report.files import RangedObject, find_files, inspect, open_parquet, partition_date

from .helpers import write_audit


@pytest.mark.parametrize(
    ("rel", "want"),
    [
        ("/run_date=2026-03-01/r.parquet", "2026-03-01"),
        ("/x/run_date=2026-03-01/y/r.parquet", "2026-03-01"),
        ("/run_date=yesterday/r.parquet", None),
        ("/run_date=2026-02-30/r.parquet", None),
        ("/r.parquet", None),
        ("/run_date=2026-03-01", None),  # a folder name, not a file in one
    ],
)
def test_partition_date(rel: str, want: str | None) -> None:
    assert partition_date(rel) == want


def test_find_files_keeps_the_period_and_names_strays(tmp_path: Path) -> None:
    audit = tmp_path / "audit"
    write_audit(str(audit))
    (audit / "images" / "stray.parquet").write_bytes(b"")
    (audit / "images" / "run_date=2026-03-01" / ".r.parquet.x.tmp").write_bytes(b"")
    (audit / "images_old" / "run_date=2026-03-01").mkdir(parents=True)
    (audit / "images_old" / "run_date=2026-03-01" / "r.parquet").write_bytes(b"")
    problems: list[str] = []
    found = find_files(str(audit), "images", Storage(), None, problems)
    assert [(Path(u).name, d) for u, d in found] == [
        ("run-a.parquet", "2026-03-01"),
        ("run-b.parquet", "2026-03-01"),
        ("run-c.parquet", "2026-03-02"),
    ]
    assert len(problems) == 1 and "stray.parquet" in problems[0]
    since = find_files(str(audit), "images", Storage(), date(2026, 3, 2), [])
    assert [d for _, d in since] == ["2026-03-02"]  # the other day is not even looked at


def test_inspect_reads_the_footer_or_names_the_file(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.parquet", tmp_path / "bad.parquet"
    pq.write_table(pa.table({"a": [1, 2, 3]}), good)
    bad.write_bytes(b"PAR1 not really")
    problems: list[str] = []
    found = inspect(Storage(), str(good), "2026-01-01", problems)
    assert found is not None and found.rows == 3 and found.schema.names == ["a"]
    assert inspect(Storage(), str(bad), "2026-01-01", problems) is None
    assert len(problems) == 1 and "bad.parquet: unreadable" in problems[0]
    with found.open(Storage()) as parquet:  # opened again from the kept footer
        assert parquet.read().column("a").to_pylist() == [1, 2, 3]


def test_ranged_object_reads_like_a_file() -> None:
    data = bytes(range(256)) * 4
    requests: list[str] = []

    def get(byte_range: str) -> bytes:
        requests.append(byte_range)
        start, end = (int(x) for x in byte_range.removeprefix("bytes=").split("-"))
        return data[start : end + 1]

    ranged = RangedObject(get, len(data))
    assert ranged.seek(-10, io.SEEK_END) == len(data) - 10
    assert ranged.read() == data[-10:]
    assert ranged.read(5) == b""  # at the end: no request
    ranged.seek(100)
    assert ranged.read(3) == data[100:103] and ranged.tell() == 103
    buffer = bytearray(4)
    assert ranged.readinto(buffer) == 4 and bytes(buffer) == data[103:107]
    ranged.seek(2, io.SEEK_CUR)
    assert ranged.read(1) == data[109:110]
    assert requests == ["bytes=1014-1023", "bytes=100-102", "bytes=103-106", "bytes=109-109"]


class _Recording:
    """A boto3 S3 client that records every GetObject's arguments."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.gets: list[dict[str, Any]] = []

    def get_object(self, **kwargs: Any) -> Any:
        self.gets.append(kwargs)
        return self._client.get_object(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_s3_objects_are_read_by_ranges_only(s3_bucket: str) -> None:
    """Two columns of a large object: a few range requests, far fewer bytes than the object."""
    import boto3

    n = 200_000
    table = pa.table(
        {
            "small": pa.array(range(n)),
            "big": pa.array([f"https://cdn.example.com/{i:09d}/photo.jpg" for i in range(n)]),
            "other": pa.array([f"x{i}" for i in range(n)]),
        }
    )
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="none")
    uri = f"s3://{s3_bucket}/audit/images/run_date=2026-01-01/r.parquet"
    Storage().write_bytes(uri, buffer.getvalue())
    client = _Recording(boto3.client("s3"))
    storage = Storage(client)
    found = inspect(storage, uri, "2026-01-01", [])
    assert found is not None and found.rows == n and found.size == len(buffer.getvalue())
    client.gets.clear()
    with found.open(storage) as parquet:
        read = parquet.read(columns=["small", "other"])
    assert read.column("small").to_pylist() == list(range(n))
    assert all("Range" in get for get in client.gets) and 1 <= len(client.gets) <= 4
    fetched = sum(_length(get["Range"]) for get in client.gets)
    assert fetched < 0.5 * found.size  # the ``big`` column was never fetched
    with open_parquet(storage, uri, found.size) as again:  # without the kept footer
        assert again.metadata.num_rows == n


def _length(byte_range: str) -> int:
    start, end = (int(x) for x in byte_range.removeprefix("bytes=").split("-"))
    return end - start + 1
