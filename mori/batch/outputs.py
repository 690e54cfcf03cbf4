"""An order's outputs: check each file MORI returned against its source, then write it.

How much of an output is checked (:data:`Verification`, ``MORI_VERIFY_OUTPUTS``):

* ``header`` (the default): the image header is read. The output must be an image in a format
  MORI accepts, with its source's width and height. Damage inside the image data is not
  looked for: the bytes are the ones MORI stored (a zip result carries a CRC-32 of each file,
  which is checked when the file is read from it).
* ``decode``: every output is also decoded, so an image MORI returned damaged or cut short
  fails with ``OUTPUT_INVALID`` instead of being written.

Each output is hashed once (its SHA-256 goes to the ledger and the audit) and written
atomically (:meth:`~mori.batch.storage.Storage.write_bytes`).
"""

from __future__ import annotations

import posixpath

from mori.batch.archive import OutputError
from mori.batch.codes import ErrorCode
from mori.batch.ledger import ImageOutcome, Slot
from mori.batch.manifest import ImageFacts, RowError, inspect_image
from mori.batch.storage import Storage, join
from mori.settings import Verification

__all__ = ["CONTENT_TYPES", "Verification", "check_output", "content_type", "write_output"]

CONTENT_TYPES = {
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "tiff": "image/tiff",
    "bmp": "image/bmp",
}


def content_type(file_name: str) -> str | None:
    """The MIME type of an image file name's extension, if it is one MORI accepts."""
    return CONTENT_TYPES.get(posixpath.splitext(file_name)[1].lstrip(".").lower())


def check_output(slot: Slot, data: bytes, verification: Verification = "header") -> ImageFacts:
    """The facts of ``slot``'s output ``data``; :class:`RowError` when it does not pass."""
    try:
        facts = inspect_image(data, decode=verification == "decode")
    except RowError as exc:
        raise RowError(
            ErrorCode.OUTPUT_INVALID, f"MORI's output does not decode: {exc.message}"
        ) from exc
    if slot.width is not None and (facts.width, facts.height) != (slot.width, slot.height):
        raise RowError(
            ErrorCode.OUTPUT_DIMENSIONS,
            f"output is {facts.width}x{facts.height}, source is {slot.width}x{slot.height}",
        )
    return facts


def write_output(
    storage: Storage,
    slot: Slot,
    data: bytes | OutputError,
    outputs: str,
    verification: Verification = "header",
) -> ImageOutcome:
    """Check ``slot``'s output and write it under ``outputs``; the image's outcome to record.

    The file is named ``<stem>-<first 8 of the image key><ext>``, so images with the same file
    name never overwrite each other. An output that fails its check is not written.
    """
    try:
        if isinstance(data, OutputError):
            raise RowError(data.code, data.message)
        facts = check_output(slot, data, verification)
    except RowError as exc:
        return ImageOutcome(slot.image_key, None, None, exc.code, exc.message)
    stem, ext = posixpath.splitext(slot.file_name)
    uri = join(outputs, f"{stem}-{slot.image_key[:8]}{ext}")
    storage.write_bytes(uri, data, content_type(slot.file_name))
    return ImageOutcome(slot.image_key, uri, facts.sha256)
