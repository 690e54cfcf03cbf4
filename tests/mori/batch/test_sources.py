"""A listed source as a run's items: the same items a manifest naming the objects gives, and
objects the ledger already read (same location, size, ETag or mtime) are not read again.

On moto's S3 server with more than 1,000 objects (several listing pages), GET requests counted
by a boto3 event hook; on a local folder, reads counted by the storage.
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import astuple
from pathlib import Path
from typing import Any

import pytest

from mori.batch import manifest
from mori.batch.ledger import Ledger
from mori.batch.listing import SourceSpec, pages, source_root
from mori.batch.manifest import Item, ValidationOptions
from mori.batch.sources import load_source
from mori.batch.storage import Storage
from tests.support.images import image_bytes, write_image, write_manifest
from tests.support.s3 import S3

OBJECTS = 1_050
OPTIONS = ValidationOptions()


class Requests:
    """S3 requests of one storage's client, by operation (a boto3 event hook)."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.counts: Counter[str] = Counter()
        storage.s3.meta.events.register("before-call.s3", self._count)

    def _count(self, model: Any, **_: Any) -> None:
        self.counts[model.name] += 1

    def take(self) -> Counter[str]:
        counts, self.counts = self.counts, Counter()
        return counts


@pytest.fixture(scope="module")
def bucket(moto_endpoint: str) -> Iterator[S3]:
    """1,050 small distinct images under ``uploads/`` (two listing pages), and a text file."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ENDPOINT_URL", moto_endpoint)
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        storage = Storage()
        name = f"sources-{uuid.uuid4().hex[:12]}"
        storage.s3.create_bucket(Bucket=name)
        s3 = S3(moto_endpoint, name, storage.s3, storage)
        with ThreadPoolExecutor(16) as pool:
            list(
                pool.map(
                    lambda i: s3.put(f"uploads/{i:04d}.png", image_bytes("PNG", seed=i)),
                    range(OBJECTS),
                )
            )
        s3.put("uploads/readme.txt", b"not an image")
        yield s3


def load(
    spec: SourceSpec, storage: Storage, ledger: Ledger | None, remember: bool = True
) -> list[Item]:
    return load_source(pages(spec, storage), storage, OPTIONS, ledger, remember=remember)


def facts(items: list[Item]) -> list[tuple[Any, ...]]:
    return [astuple(it)[:-1] for it in items]  # every field but the (empty) extra columns


def test_a_second_listing_downloads_nothing_and_a_changed_object_is_read_again(
    bucket: S3, ledger: Ledger
) -> None:
    requests = Requests(Storage())
    storage = requests.storage
    spec = SourceSpec(source_root(f"s3://{bucket.bucket}/uploads"))
    first = load(spec, storage, ledger)
    counts = requests.take()
    assert counts["GetObject"] == OBJECTS and counts["ListObjectsV2"] == 2
    assert len(first) == OBJECTS and all(it.ok and it.image_key for it in first)
    assert first[1].source == f"s3://{bucket.bucket}/uploads/0001.png"

    again = load(spec, storage, ledger)
    counts = requests.take()
    assert counts["GetObject"] == 0 and counts["HeadObject"] == 0, counts
    assert counts["ListObjectsV2"] == 2
    assert facts(again) == facts(first)

    original = bucket.client.get_object(Bucket=bucket.bucket, Key="uploads/0007.png")["Body"]
    bucket.put("uploads/0007.png", image_bytes("PNG", size=(9, 9), seed=7))
    try:
        changed = load(spec, storage, ledger)
        assert requests.take()["GetObject"] == 1
        differ = [i for i, (a, b) in enumerate(zip(first, changed, strict=True)) if a != b]
        assert differ == [7] and (changed[7].width, changed[7].height) == (9, 9)
        load(spec, storage, ledger)
        assert requests.take()["GetObject"] == 0  # the new version is remembered
    finally:
        bucket.put("uploads/0007.png", original.read())


def test_a_dry_run_reads_but_records_nothing(bucket: S3, ledger: Ledger) -> None:
    requests = Requests(Storage())
    spec = SourceSpec(source_root(f"s3://{bucket.bucket}/uploads"), include=("00*",))
    items = load(spec, requests.storage, ledger, remember=False)
    assert len(items) == 100 and requests.take()["GetObject"] == 100
    assert ledger.source_objects([it.source for it in items]) == {}
    load(spec, requests.storage, None, remember=False)  # no ledger at all: everything is read
    assert requests.take()["GetObject"] == 100


class CountingStorage(Storage):
    """Local reads, counted."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: Counter[str] = Counter()

    def read_bytes(self, uri: str) -> bytes:
        self.reads[uri] += 1
        return super().read_bytes(uri)


def test_a_local_folder_like_a_manifest_naming_its_files(tmp_path: Path, ledger: Ledger) -> None:
    folder = tmp_path / "photos"
    for i, fmt in enumerate(["JPEG", "PNG", "WEBP", "TIFF", "BMP"] * 4):
        write_image(folder / f"{i // 5}" / f"img-{i:02d}.{fmt.lower()}", fmt, seed=i)
    write_image(folder / "copy.jpeg", "JPEG", seed=0)  # the same image as 0/img-00.jpeg
    (folder / "empty.png").write_bytes(b"")
    storage = CountingStorage()
    spec = SourceSpec(source_root(str(folder)))
    items = load(spec, storage, ledger)
    named = write_manifest(tmp_path / "m.csv", [{"source": it.source} for it in items])
    expected = manifest.load(str(named), Storage(), OPTIONS)
    assert facts(items) == facts(expected)
    codes = Counter(it.error_code for it in items)
    assert codes == {None: 20, "DUPLICATE_ROW": 1, "EMPTY_FILE": 1}, codes
    assert sorted(storage.reads.values()) == [1] * 22  # every listed file, once

    storage.reads.clear()
    assert facts(load(spec, storage, ledger)) == facts(items)
    assert list(storage.reads) == [str(folder / "empty.png")]  # never recorded: no image
    touched = folder / "2" / "img-10.jpeg"
    os.utime(touched, ns=(touched.stat().st_atime_ns, touched.stat().st_mtime_ns + 10**9))
    storage.reads.clear()
    load(spec, storage, ledger)
    assert sorted(storage.reads) == sorted([str(touched), str(folder / "empty.png")])
