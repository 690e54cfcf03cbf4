"""Manifests: read them, validate every row, fingerprint every image.

A manifest (CSV, Parquet or JSONL; local or ``s3://``) has one row per image. Column ``source``
is required: a local path (relative to the manifest's folder, or absolute), ``s3://bucket/key``
or an ``http(s)://`` URL. Optional ``id`` and ``file_name``; any other column is carried into
the audit untouched.

A whole-manifest problem raises :class:`ManifestError` (one clear line, nothing processed). A bad
row never raises: it becomes an :class:`Item` with an ``error_code`` and ``error_message``, and
the rest of the batch goes on.

The modules, one concern each: :mod:`~.reading` (bytes → frame), :mod:`~.model` (``Item``,
``RowError``, ``ValidationOptions``), :mod:`~.rows` (row-wise validation), :mod:`~.urlguard`
(which URLs may be sent to MORI), :mod:`~.masking` (credentials hidden where URLs are shown),
:mod:`~.fastpath` and :mod:`~.frames` (the column-wise path for large manifests),
:mod:`~.images` (image bytes and their fingerprints), :mod:`~.keying` (image keys, duplicates).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from mori.batch.manifest.frames import validated_items
from mori.batch.manifest.images import (
    MAX_IMAGE_PIXELS,
    PIL_FORMATS,
    ImageFacts,
    fingerprint,
    fingerprint_all,
    inspect_image,
)
from mori.batch.manifest.keying import assign_keys, image_keys
from mori.batch.manifest.masking import mask_url
from mori.batch.manifest.model import (
    MAX_FILE_BYTES,
    MAX_FILE_NAME_BYTES,
    RESERVED_COLUMNS,
    Item,
    RowError,
    SourceKind,
    ValidationOptions,
)
from mori.batch.manifest.reading import ManifestError, read_manifest
from mori.batch.manifest.rows import classify, items_from_frame
from mori.batch.manifest.urlguard import check_url
from mori.batch.storage import Storage, parent

__all__ = [
    "MAX_FILE_BYTES",
    "MAX_FILE_NAME_BYTES",
    "MAX_IMAGE_PIXELS",
    "PIL_FORMATS",
    "RESERVED_COLUMNS",
    "ImageFacts",
    "Item",
    "ManifestError",
    "RowError",
    "SourceKind",
    "ValidationOptions",
    "assign_keys",
    "check_url",
    "classify",
    "fingerprint",
    "fingerprint_items",
    "image_keys",
    "inspect_image",
    "items_from_frame",
    "load",
    "mask_url",
    "read_manifest",
    "validated_items",
]


def load(uri: str, storage: Storage, options: ValidationOptions | None = None) -> list[Item]:
    """Read, validate, fingerprint and key a manifest: one :class:`Item` per row."""
    options = options or ValidationOptions()
    items = validated_items(read_manifest(uri, storage), parent(uri), options)
    fingerprint_items(items, storage, options)
    assign_keys(items, options)
    return items


def fingerprint_items(items: list[Item], storage: Storage, options: ValidationOptions) -> None:
    """Read and fingerprint every valid file and S3 row of ``items``, on a thread pool."""
    files = [it for it in items if it.error_code is None and it.kind == "file"]
    objects = [[it] for it in items if it.error_code is None and it.kind == "s3"]
    if files or objects:
        # Local files go in batches per thread-pool task (a future per small local read costs
        # about as much as the read); S3 objects one per task, as their latency dominates.
        size = max(1, min(64, len(files) // (4 * options.threads)))
        batches = [files[i : i + size] for i in range(0, len(files), size)] + objects
        with ThreadPoolExecutor(max_workers=options.threads) as pool:
            for _ in pool.map(lambda batch: fingerprint_all(batch, storage, options), batches):
                pass
