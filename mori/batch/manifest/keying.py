"""Image keys for a whole manifest at once, and the ``DUPLICATE_ROW`` check they make possible.

:func:`image_keys` is :func:`mori.keys.image_key` for many fingerprints at once: the same
UUIDv5 (SHA-1 of the namespace and name, version and variant bits set), formatted without
building a :class:`uuid.UUID` per key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from mori import keys
from mori.batch.manifest.model import Item, ValidationOptions

__all__ = ["assign_keys", "image_keys"]

_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}


def assign_keys(items: Iterable[Item], options: ValidationOptions) -> None:
    """Derive image keys; a second row with the same image is a ``DUPLICATE_ROW``."""
    todo = [it for it in items if it.error_code is None and it.fingerprint is not None]
    derived = image_keys((it.fingerprint or "" for it in todo), options.processing_options)
    first_row: dict[str, int] = {}
    for item, key in zip(todo, derived, strict=True):
        if key in first_row:
            item.fail(
                "DUPLICATE_ROW",
                f"same image as row {first_row[key]}; it is processed once, for that row",
            )
            continue
        first_row[key] = item.row_index
        item.image_key = key


def image_keys(fingerprints: Iterable[str], options: Mapping[str, Any] | None = None) -> list[str]:
    """``[keys.image_key(fp, options) for fp in fingerprints]``, about twice as fast."""
    head = hashlib.sha1(keys.NAMESPACE.bytes + b"image\n")
    tail = ("\n" + keys.canonical_options(options)).encode()
    variant = _VARIANT
    out: list[str] = []
    append = out.append
    for fingerprint in fingerprints:
        digest = head.copy()
        digest.update(fingerprint.encode())
        digest.update(tail)
        x = digest.hexdigest()
        append(f"{x[:8]}-{x[8:12]}-5{x[13:16]}-{variant[x[16]]}{x[17:20]}-{x[20:32]}")
    return out
