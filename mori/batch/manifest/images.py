"""Image bytes: read a file or S3 row, check that it is a whole image MORI accepts, fingerprint it.

The pixel limit is this module's own (:data:`MAX_IMAGE_PIXELS`), checked from the image header
before anything is decoded. Pillow's process-wide limit (``PIL.Image.MAX_IMAGE_PIXELS``) is
never changed: the accepted formats are opened with their own Pillow plugins, which skips the
check (and its warning) in ``Image.open``, and other formats are only named from their first
bytes. Where a plugin checks Pillow's limit itself, the result is a clean ``INVALID_IMAGE``
too: WebP refuses above twice Pillow's limit while opening, and a TIFF, whose decoder would
warn above Pillow's limit, is held to that limit here.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

from PIL import (
    BmpImagePlugin,
    Image,
    ImageFile,
    JpegImagePlugin,
    PngImagePlugin,
    TiffImagePlugin,
    WebPImagePlugin,
)

from mori import keys
from mori.batch.codes import ErrorCode
from mori.batch.manifest.model import MAX_FILE_BYTES, Item, RowError, ValidationOptions
from mori.batch.storage import NotFound, Storage

__all__ = [
    "MAX_IMAGE_PIXELS",
    "PIL_FORMATS",
    "ImageFacts",
    "fingerprint",
    "fingerprint_all",
    "inspect_image",
]

#: Pillow format name → the extension MORI accepts for it.
PIL_FORMATS: dict[str, str] = {
    "JPEG": "jpg",
    "PNG": "png",
    "WEBP": "webp",
    "TIFF": "tiff",
    "BMP": "bmp",
}
#: Most pixels an image may have (a decompression-bomb guard, above any real photo).
MAX_IMAGE_PIXELS = 180_000_000

Opener = Callable[[IO[bytes], str], ImageFile.ImageFile]
#: What Pillow's plugins raise for bytes that are not their format (as ``Image.open`` catches).
_NOT_THIS_FORMAT = (SyntaxError, IndexError, TypeError, struct.error)


@dataclass(frozen=True)
class ImageFacts:
    """What the pipeline checked about an image's bytes."""

    sha256: str
    size: int
    width: int
    height: int
    format: str


def inspect_image(
    data: bytes, max_bytes: int = MAX_FILE_BYTES, *, decode: bool = True
) -> ImageFacts:
    """Check that ``data`` is a whole image in a format MORI accepts; raise :class:`RowError`.

    ``decode=False`` reads the header only (format, dimensions, pixel limit): a damaged or
    truncated image body passes then.
    """
    if not data:
        raise RowError(ErrorCode.EMPTY_FILE, "the file is empty")
    if len(data) > max_bytes:
        raise RowError(
            ErrorCode.FILE_TOO_LARGE, f"{len(data):,} bytes is over the {max_bytes:,}-byte limit"
        )
    try:
        with _open(data) as img:
            fmt = img.format or ""
            if fmt not in PIL_FORMATS:
                raise _unsupported(fmt)
            width, height = img.size
            _check_pixels(fmt, width, height)
            if decode:
                _decode(img)
    except RowError:
        raise
    except Image.DecompressionBombError as exc:
        raise RowError(ErrorCode.INVALID_IMAGE, f"not a readable image: {exc}") from exc
    except (OSError, SyntaxError, ValueError, EOFError, *_NOT_THIS_FORMAT) as exc:
        raise RowError(ErrorCode.INVALID_IMAGE, f"image is damaged or truncated: {exc}") from exc
    return ImageFacts(keys.sha256_fingerprint(data)[7:], len(data), width, height, fmt)


def _decode(img: ImageFile.ImageFile) -> None:
    """Decode the image: a truncated or damaged file raises.

    A JPEG's every scan is still entropy-decoded, but at 1/8 scale: the inverse DCT, most of
    the CPU, shrinks 64x.
    """
    if img.format == "JPEG":
        img.draft(img.mode, (1, 1))
    img.load()


def _open(data: bytes) -> ImageFile.ImageFile:
    """``data`` opened (header read, nothing decoded) by the plugin its magic bytes name."""
    opener = _opener(data)
    if opener is None:
        raise _unsupported(_format_name(data))
    try:
        return opener(io.BytesIO(data), "")
    except _NOT_THIS_FORMAT as exc:
        raise RowError(ErrorCode.INVALID_IMAGE, f"not a readable image: {exc}") from exc


def _opener(data: bytes) -> Opener | None:
    """The Pillow plugin for the accepted format ``data`` starts like (JPEG's may open MPO)."""
    if data.startswith(b"\xff\xd8\xff"):
        return JpegImagePlugin.jpeg_factory
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return PngImagePlugin.PngImageFile
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return WebPImagePlugin.WebPImageFile
    if data.startswith(tuple(TiffImagePlugin.PREFIXES)):
        return TiffImagePlugin.TiffImageFile
    if data.startswith(b"BM"):
        return BmpImagePlugin.BmpImageFile
    return None


def _format_name(data: bytes) -> str:
    """The name of the (unaccepted) format Pillow recognises by ``data``'s first bytes, or ``""``.

    Only the plugins' prefix checks run: nothing is opened, so no size check warns.
    """
    Image.init()
    prefix = data[:16]
    for name in Image.ID:
        accept = Image.OPEN[name][1]
        verdict = accept(prefix) if accept is not None else False
        if verdict and not isinstance(verdict, str):
            return name
    return ""


def _unsupported(fmt: str) -> RowError:
    """The error for bytes in a format MORI does not accept (``""``: none recognised)."""
    if not fmt:
        return RowError(ErrorCode.INVALID_IMAGE, "not a readable image: no image format recognised")
    return RowError(
        ErrorCode.UNSUPPORTED_FORMAT,
        f"the bytes are {fmt}, not one MORI accepts (JPEG, PNG, WEBP, TIFF, BMP)",
    )


def _check_pixels(fmt: str, width: int, height: int) -> None:
    """``RowError`` when the image has more pixels than the limit for its format.

    Pillow's TIFF decoder checks the size against Pillow's own limit again, so a TIFF is held to
    that one too (when it is lower), which keeps Pillow from warning.
    """
    limit = MAX_IMAGE_PIXELS
    if fmt == "TIFF" and Image.MAX_IMAGE_PIXELS is not None:
        limit = min(limit, Image.MAX_IMAGE_PIXELS)
    pixels = max(1, width) * max(1, height)
    if pixels > limit:
        raise RowError(
            ErrorCode.INVALID_IMAGE,
            f"{width}x{height} is {pixels:,} pixels, over the {limit:,}-pixel limit",
        )


def fingerprint(item: Item, storage: Storage, options: ValidationOptions) -> None:
    """Read a file or S3 row's bytes, check them and set its fingerprint; URL rows need no I/O."""
    if not item.ok or item.kind == "url":
        return
    assert item.location is not None
    try:
        data = _read_source(item.location, storage, options.max_file_bytes)
        facts = inspect_image(data, options.max_file_bytes)
    except RowError as exc:
        item.fail(exc.code, exc.message)
        return
    item.sha256, item.bytes = facts.sha256, facts.size
    item.width, item.height, item.format = facts.width, facts.height, facts.format
    item.fingerprint = "sha256:" + facts.sha256


def fingerprint_all(items: list[Item], storage: Storage, options: ValidationOptions) -> None:
    """:func:`fingerprint` each item in turn (one thread-pool task for a batch of small files)."""
    for item in items:
        fingerprint(item, storage, options)


def _read_source(location: str, storage: Storage, max_bytes: int) -> bytes:
    """The bytes at ``location``; a missing, oversized or unreadable file as :class:`RowError`."""
    try:
        if storage.size(location) > max_bytes:
            raise RowError(
                ErrorCode.FILE_TOO_LARGE, f"the file is over the {max_bytes:,}-byte limit"
            )
        return storage.read_bytes(location)
    except NotFound as exc:
        raise RowError(ErrorCode.FILE_NOT_FOUND, "no file at the source path") from exc
    except IsADirectoryError as exc:
        raise RowError(ErrorCode.INVALID_SOURCE, "the source is a folder, not a file") from exc
    except PermissionError as exc:
        raise RowError(ErrorCode.FILE_UNREADABLE, "permission denied reading the file") from exc
    except OSError as exc:
        raise RowError(
            ErrorCode.FILE_UNREADABLE, f"cannot read the file: {exc.strerror or exc}"
        ) from exc
