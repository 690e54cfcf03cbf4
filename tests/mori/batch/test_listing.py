"""Listing a folder or an S3 prefix: what is listed (filters, skipped folders, links), in which
order, a page at a time, and the one-line errors of a source that cannot be listed."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mori.batch.listing import SourceSpec, check_source, pages, source_root
from mori.batch.manifest import ManifestError
from mori.batch.storage import Storage
from tests.support.images import image_bytes
from tests.support.s3 import S3

OLD = datetime(2020, 1, 1, tzinfo=UTC)


def listed(spec: SourceSpec, storage: Storage, page_size: int = 1000) -> list[str]:
    return [obj.relative for page in pages(spec, storage, page_size) for obj in page]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A folder of images, other files, a hidden folder, the run's output, and links."""
    root = tmp_path / "photos"
    for relative in (
        "a.jpg",
        "b.PNG",
        "notes.txt",
        "sub/c.webp",
        "sub/deeper/d.bmp",
        ".cache/e.jpg",
        "output/f.jpg",
        "z/g.tiff",
    ):
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(image_bytes("PNG"))
    (root / "link.jpg").symlink_to(root / "a.jpg")
    (root / "linked").symlink_to(root / "sub", target_is_directory=True)
    os.utime(root / "z" / "g.tiff", (OLD.timestamp(), OLD.timestamp()))
    return root


@pytest.mark.parametrize(
    ("include", "exclude", "expected"),
    [
        ((), (), ["a.jpg", "b.PNG", "sub/c.webp", "sub/deeper/d.bmp", "z/g.tiff"]),
        (("sub/*",), (), ["sub/c.webp", "sub/deeper/d.bmp"]),
        (("*.txt", "*.jpg"), (), ["a.jpg", "notes.txt"]),
        ((), ("*/deeper/*", "z/*"), ["a.jpg", "b.PNG", "sub/c.webp"]),
        (("*.png",), (), []),  # globs are case-sensitive
    ],
)
def test_local_filters(
    tree: Path, include: tuple[str, ...], exclude: tuple[str, ...], expected: list[str]
) -> None:
    spec = SourceSpec(str(tree), include, exclude, skip=(str(tree / "output"),))
    assert listed(spec, Storage()) == expected


def test_local_objects_carry_size_mtime_and_absolute_location(tree: Path) -> None:
    spec = SourceSpec(str(tree), modified_since=datetime(2021, 1, 1), skip=(str(tree / "output"),))
    objects = [obj for page in pages(spec, Storage()) for obj in page]
    assert [o.relative for o in objects] == ["a.jpg", "b.PNG", "sub/c.webp", "sub/deeper/d.bmp"]
    first = objects[0]
    stat = (tree / "a.jpg").stat()
    assert first.location == str(tree / "a.jpg")
    assert (first.size, first.version) == (stat.st_size, str(stat.st_mtime_ns))


def test_pages_have_the_size_asked_for(tree: Path) -> None:
    sizes = [len(page) for page in pages(SourceSpec(str(tree)), Storage(), page_size=2)]
    assert sizes == [2, 2, 2]  # output/ is listed when the run does not skip it


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_a_local_source_that_is_no_folder(tmp_path: Path, kind: str) -> None:
    source = tmp_path / "photos"
    if kind == "file":
        source.write_text("x")
    with pytest.raises(ManifestError) as caught:
        pages(SourceSpec(source_root(str(source))), Storage())
    assert caught.value.code == "SOURCE_NOT_FOUND" and str(source) in caught.value.message
    with pytest.raises(ManifestError):
        check_source(str(source), Storage())


def test_s3_prefix_filters_and_pages(s3: S3) -> None:
    for key in ("in/a.jpg", "in/b.webp", "in/c.txt", "in/out/d.jpg", "in/sub/e.PNG", "other/f.jpg"):
        s3.put(key, image_bytes("PNG"))
    s3.put("in/folder/", b"")
    root = source_root(f"s3://{s3.bucket}/in")
    assert root == f"s3://{s3.bucket}/in/"
    calls: list[str] = []
    s3.storage.s3.meta.events.register(
        "before-call.s3.ListObjectsV2", lambda **kw: calls.append("list")
    )
    spec = SourceSpec(root, skip=(f"s3://{s3.bucket}/in/out",))
    got = [o for page in pages(spec, s3.storage, page_size=2) for o in page]
    assert [o.relative for o in got] == ["a.jpg", "b.webp", "sub/e.PNG"]
    assert got[0].location == f"s3://{s3.bucket}/in/a.jpg"
    assert got[0].version.startswith('"') and got[0].size == len(image_bytes("PNG"))
    assert len(calls) == 3  # 6 keys under in/, two per request
    whole = SourceSpec(source_root(f"s3://{s3.bucket}"), exclude=("in/*",))
    assert listed(whole, s3.storage) == ["other/f.jpg"]


def test_a_missing_bucket_is_one_line(s3: S3) -> None:
    for check in (
        lambda: pages(SourceSpec("s3://no-such-bucket-here/x/"), s3.storage),
        lambda: check_source("s3://no-such-bucket-here/x/", s3.storage),
    ):
        with pytest.raises(ManifestError) as caught:
            check()
        assert caught.value.code == "SOURCE_NOT_FOUND"
        assert "s3://no-such-bucket-here/x/" in str(caught.value)
