"""Helpers shared by the manifest tests: load rows, compare items, the row-wise reference path."""

from __future__ import annotations

import dataclasses
import io
import random
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from mori import keys
from mori.batch.manifest import (
    Item,
    ManifestError,
    ValidationOptions,
    classify,
    fingerprint,
    items_from_frame,
    load,
    read_manifest,
)
from mori.batch.storage import Storage, parent
from tests.support.images import write_manifest

MANIFEST_KINDS = ("csv", "parquet", "jsonl")
FIELDS = [f.name for f in dataclasses.fields(Item)]


def load_rows(
    folder: Path,
    rows: list[dict[str, Any]],
    options: ValidationOptions | None = None,
    kind: str = "csv",
) -> list[Item]:
    """Write ``rows`` as a manifest in ``folder`` and load it."""
    manifest = write_manifest(folder / f"manifest.{kind}", rows)
    return load(str(manifest), Storage(), options)


def only(items: list[Item]) -> Item:
    """The one item of a one-row manifest."""
    assert len(items) == 1
    return items[0]


def classified(source: str, options: ValidationOptions | None = None) -> Item:
    """``source`` classified on its own (no I/O), as a row of a manifest in ``/tmp``."""
    item = Item(0, source)
    classify(item, "/tmp", options or ValidationOptions())
    return item


def manifest_error(uri: str | Path, storage: Storage | None = None) -> ManifestError:
    """The :class:`ManifestError` loading ``uri`` raises (its text starts with its code)."""
    with pytest.raises(ManifestError) as info:
        load(str(uri), storage or Storage())
    assert str(info.value).startswith(info.value.code + ": ")
    return info.value


def noisy_jpeg(seed: int = 1, size: int = 64) -> bytes:
    """A JPEG whose entropy-coded data is long enough that cutting it leaves a truncated image."""
    rng = random.Random(seed)
    img = Image.frombytes("RGB", (size, size), rng.randbytes(size * size * 3))
    buffer = io.BytesIO()
    img.save(buffer, format="JPEG")
    return buffer.getvalue()


def gif_bytes() -> bytes:
    """A small real GIF (a format MORI does not accept)."""
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (1, 2, 3)).save(buffer, format="GIF")
    return buffer.getvalue()


def row_wise(uri: str, options: ValidationOptions) -> list[Item]:
    """The reference: every row read as a record, classified, fingerprinted and keyed alone."""
    storage = Storage()
    items = items_from_frame(read_manifest(uri, storage))
    for item in items:
        classify(item, parent(uri), options)
    for item in items:
        fingerprint(item, storage, options)
    first_row: dict[str, int] = {}
    for item in items:
        if not item.ok or item.fingerprint is None:
            continue
        key = keys.image_key(item.fingerprint, options.processing_options)
        if key in first_row:
            item.fail(
                "DUPLICATE_ROW",
                f"same image as row {first_row[key]}; it is processed once, for that row",
            )
            continue
        first_row[key] = item.row_index
        item.image_key = key
    return items


def as_tuple(item: Item) -> tuple[Any, ...]:
    """The item's fields (``repr`` of the extra columns, so NaN equals NaN)."""
    return tuple(
        repr(dict(value)) if name == "extra" else value
        for name, value in ((f, getattr(item, f)) for f in FIELDS)
    )


def assert_same(fast: list[Item], slow: list[Item]) -> None:
    """Both lists hold the same items, field for field."""
    assert len(fast) == len(slow)
    for a, b in zip(fast, slow, strict=True):
        assert as_tuple(a) == as_tuple(b), (a.source, as_tuple(a), as_tuple(b))


class DenyingStorage(Storage):
    """Local storage that refuses to read one path with a given error."""

    def __init__(self, denied: Path, error: OSError) -> None:
        super().__init__()
        self.denied, self.error = str(denied), error

    def read_bytes(self, uri: str) -> bytes:
        if uri == self.denied:
            raise self.error
        return super().read_bytes(uri)
