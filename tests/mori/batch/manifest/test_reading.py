"""Reading manifests: every format, local and S3, and every whole-manifest error."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from mori.batch.manifest import ManifestError, load, read_manifest
from mori.batch.manifest.reading import PARSERS, checked_frame, manifest_format
from mori.batch.storage import Storage
from tests.support.images import write_image, write_manifest

from .support import MANIFEST_KINDS, DenyingStorage, load_rows, manifest_error, only


def test_manifest_not_found(tmp_path: Path) -> None:
    err = manifest_error(tmp_path / "missing.csv")
    assert err.code == "MANIFEST_NOT_FOUND"
    assert "missing.csv" in err.message


def test_manifest_is_a_folder(tmp_path: Path) -> None:
    (tmp_path / "dir.csv").mkdir()
    assert manifest_error(tmp_path / "dir.csv").code == "MANIFEST_NOT_FOUND"


def test_unreadable_manifest(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m.csv", [{"source": "a.jpg"}])
    storage = DenyingStorage(manifest, PermissionError(13, "Permission denied"))
    assert manifest_error(manifest, storage).code == "MANIFEST_UNREADABLE"


@pytest.mark.parametrize("kind", MANIFEST_KINDS)
def test_manifest_without_source_column(tmp_path: Path, kind: str) -> None:
    path = write_manifest(tmp_path / f"m.{kind}", [{"path": "a.jpg", "id": "1"}])
    err = manifest_error(path)
    assert err.code == "MANIFEST_MISSING_COLUMN"
    assert "path" in err.message  # names the columns it did find


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("m.csv", b""),
        ("m.csv", b"  \n\n"),
        ("m.csv", b"source\n"),
        ("m.csv", b"source,id,extra\n"),
        ("m.jsonl", b""),
        ("m.parquet", b""),
        ("m.xlsx", b" \n"),  # empty before its type is even looked at
    ],
)
def test_empty_manifest(tmp_path: Path, name: str, content: bytes) -> None:
    (tmp_path / name).write_bytes(content)
    assert manifest_error(tmp_path / name).code == "MANIFEST_EMPTY"


def test_parquet_with_no_rows_is_empty(tmp_path: Path) -> None:
    pd.DataFrame({"source": pd.Series([], dtype=str)}).to_parquet(tmp_path / "m.parquet")
    assert manifest_error(tmp_path / "m.parquet").code == "MANIFEST_EMPTY"


def test_parquet_with_integer_source_is_the_wrong_schema(tmp_path: Path) -> None:
    pd.DataFrame({"source": [1, 2, 3]}).to_parquet(tmp_path / "m.parquet")
    err = manifest_error(tmp_path / "m.parquet")
    assert err.code == "MANIFEST_WRONG_SCHEMA"
    assert "int" in err.message


@pytest.mark.parametrize("name", ["m.xlsx", "m.yaml", "m.zip"])
def test_unsupported_manifest_type(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_bytes(b"source\na.jpg\n")
    assert manifest_error(tmp_path / name).code == "MANIFEST_UNSUPPORTED_FORMAT"


@pytest.mark.parametrize(
    ("name", "content"), [("m.parquet", b"PAR1 this is not parquet"), ("m.jsonl", b"{not json\n")]
)
def test_unparseable_manifest(tmp_path: Path, name: str, content: bytes) -> None:
    (tmp_path / name).write_bytes(content)
    assert manifest_error(tmp_path / name).code == "MANIFEST_UNREADABLE"


def test_csv_with_a_utf8_bom(tmp_path: Path) -> None:
    write_image(tmp_path / "a.jpg")
    (tmp_path / "m.csv").write_bytes("\ufeffsource,id\na.jpg,first\n".encode())
    item = only(load(str(tmp_path / "m.csv"), Storage()))
    assert item.ok, item.error_message
    assert item.caller_id == "first"
    assert item.extra == {}


@pytest.mark.parametrize(
    ("uri", "suffix"),
    [
        ("/data/m.csv", ".csv"),
        ("/data/M.CSV", ".csv"),
        ("/data/manifest", ""),
        ("/data/m.txt", ".txt"),
        ("/data/m.tsv", ".tsv"),
        ("/data/m.parquet", ".parquet"),
        ("/data/m.pq", ".pq"),
        ("/data/m.jsonl", ".jsonl"),
        ("/data/m.ndjson", ".ndjson"),
        ("/data/m.json", ".json"),
        ("s3://bucket/in/m.Parquet", ".parquet"),
        ("s3://bucket/in/m.csv?versionId=3", ".csv"),
    ],
)
def test_manifest_format_comes_from_the_suffix(uri: str, suffix: str) -> None:
    assert manifest_format(uri) == suffix
    assert suffix in PARSERS


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("m.tsv", b"source\tid\na.jpg\tx\n"),
        ("m.json", b'[{"source": "a.jpg", "id": "x"}]'),
        ("m.ndjson", b'{"source": "a.jpg", "id": "x"}\n'),
        ("m.txt", b"source,id\na.jpg,x\n"),
        ("manifest", b"source,id\na.jpg,x\n"),
    ],
)
def test_other_spellings_of_the_formats(tmp_path: Path, name: str, content: bytes) -> None:
    write_image(tmp_path / "a.jpg")
    (tmp_path / name).write_bytes(content)
    item = only(load(str(tmp_path / name), Storage()))
    assert item.ok, item.error_message
    assert (item.caller_id, item.file_name) == ("x", "a.jpg")


def test_checked_frame_cleans_column_names() -> None:
    frame = pd.DataFrame({" \ufeffsource ": ["a.jpg"], 7: ["x"]})
    checked = checked_frame(frame, "m.csv")
    assert list(checked.columns) == ["source", "7"]
    with pytest.raises(ManifestError) as info:
        checked_frame(pd.DataFrame({"source": []}), "m.csv")
    assert info.value.code == "MANIFEST_EMPTY"


@pytest.mark.parametrize("kind", MANIFEST_KINDS)
def test_id_file_name_and_extra_columns(tmp_path: Path, kind: str) -> None:
    write_image(tmp_path / "a.jpg", seed=1)
    write_image(tmp_path / "b.png", "PNG", seed=2)
    rows = [
        {"source": "a.jpg", "id": "cust-1", "file_name": "renamed.jpg", "album": "x", "rank": "3"},
        {"source": "b.png", "id": "cust-2", "file_name": "", "album": "y", "rank": "4"},
    ]
    items = load_rows(tmp_path, rows, kind=kind)
    assert all(it.ok for it in items)
    assert [it.caller_id for it in items] == ["cust-1", "cust-2"]
    assert [it.file_name for it in items] == ["renamed.jpg", "b.png"]  # empty -> the base name
    assert [it.extra for it in items] == [{"album": "x", "rank": "3"}, {"album": "y", "rank": "4"}]


def test_parquet_extra_columns_keep_their_types(tmp_path: Path) -> None:
    write_image(tmp_path / "a.jpg")
    pd.DataFrame({"source": ["a.jpg"], "count": [7], "score": [0.5]}).to_parquet(
        tmp_path / "m.parquet"
    )
    item = only(load(str(tmp_path / "m.parquet"), Storage()))
    assert item.extra == {"count": 7, "score": 0.5}
    assert isinstance(item.extra["count"], int)
    assert isinstance(item.extra["score"], float)


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_s3_manifest(tmp_path: Path, s3: Any, kind: str) -> None:
    local = write_manifest(tmp_path / f"m.{kind}", [{"source": "https://cdn.example.com/a.jpg"}])
    uri = s3.put(f"batch/manifest.{kind}", local.read_bytes())
    frame = read_manifest(uri, s3.storage)
    assert list(frame["source"]) == ["https://cdn.example.com/a.jpg"]


def test_s3_manifest_not_found(s3: Any) -> None:
    err = manifest_error(f"s3://{s3.bucket}/nope.csv", s3.storage)
    assert err.code == "MANIFEST_NOT_FOUND"


def test_manifest_reading_is_independent_of_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_image(tmp_path / "batch" / "a.jpg")
    manifest = write_manifest(tmp_path / "batch" / "m.csv", [{"source": "a.jpg"}])
    monkeypatch.chdir(tmp_path)
    item = only(load(os.path.relpath(manifest), Storage()))
    assert item.ok and item.location == str((tmp_path / "batch" / "a.jpg").resolve())
