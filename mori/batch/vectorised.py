"""Column-at-a-time checks for large manifests (Arrow compute, no Python loop per row).

:func:`mori.batch.manifest.load` validates a row with these only when the row is *plainly*
fine: a lower-case ``http(s)://`` URL on a public host name, with a path, no port, no fragment,
no ``%`` escapes, printable ASCII only, and a file name MORI accepts. For such a row the result
is provably what the row-wise :func:`~mori.batch.manifest.classify` gives (its normalised URL is
the URL itself; its file name is the last path segment or the ``file_name`` column); every
other row goes through ``classify`` unchanged, so errors, codes and messages never differ.

:func:`image_keys` is :func:`mori.keys.image_key` for many fingerprints at once: the same
UUIDv5 (SHA-1 of the namespace and name, version and variant bits set), formatted without
building a :class:`uuid.UUID` per key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from mori import keys
from mori.models import ALLOWED_EXTENSIONS

__all__ = [
    "MAX_PLAIN_NAME",
    "image_keys",
    "plain_names",
    "plain_url_mask",
    "url_basenames",
]

#: Longest file name (ASCII, so bytes) the vectorised check accepts; longer names go row-wise.
MAX_PLAIN_NAME = 255

_LABEL = r"[a-z0-9_-]+"
# Path: printable ASCII except '#', '%' and '?'. Query: printable ASCII except '#', non-empty.
_PATH = r"[\x21\x22\x24\x26-\x3e\x40-\x7e]"
_QUERY = r"[\x21\x22\x24-\x7e]"
#: Lower-case scheme and host (last label starts with a letter, so it is never an IP address
#: in any spelling), no user info, no port, a path, an optional non-empty query, no fragment.
PLAIN_URL = rf"^https?://(?:{_LABEL}\.)*[a-z][a-z0-9_-]*/{_PATH}*(?:\?{_QUERY}+)?$"
#: Host names :func:`mori.batch.manifest.classify` treats as internal (they go row-wise).
INTERNAL_HOST = rf"^https?://(?:{_LABEL}\.)*(?:localhost|{_LABEL}\.(?:local|internal|home\.arpa))/"
_EXTENSIONS = "|".join(sorted(ALLOWED_EXTENSIONS))
#: A file name that passes ``_check_file_name`` unchanged: printable ASCII without '"', '/'
#: or '\\', not starting with '.' or a space, ending in an accepted extension (any case).
PLAIN_NAME = (
    r"^[\x21\x23-\x2d\x30-\x5b\x5d-\x7e][\x20\x21\x23-\x2e\x30-\x5b\x5d-\x7e]*"
    rf"\.(?i:{_EXTENSIONS})$"
)


def plain_url_mask(sources: pa.Array | pa.ChunkedArray) -> pa.ChunkedArray:
    """Per row: ``True`` when the source is a plain public URL (see the module docstring)."""
    plain = pc.match_substring_regex(sources, PLAIN_URL)
    internal = pc.match_substring_regex(sources, INTERNAL_HOST)
    return pc.and_(pc.fill_null(plain, False), pc.invert(pc.fill_null(internal, False)))


def url_basenames(sources: pa.Array | pa.ChunkedArray) -> pa.ChunkedArray:
    """The last path segment of each URL (query dropped); meaningful for plain URLs only."""
    path = pc.list_element(pc.split_pattern(sources, "?", max_splits=1), 0)
    return pc.list_element(pc.split_pattern(path, "/", max_splits=1, reverse=True), 1)


def plain_names(names: pa.Array | pa.ChunkedArray) -> list[bool]:
    """Per name: ``True`` when it passes the file-name checks exactly as it is."""
    ok = pc.and_(
        pc.match_substring_regex(names, PLAIN_NAME),
        pc.less_equal(pc.utf8_length(names), MAX_PLAIN_NAME),
    )
    return pc.fill_null(ok, False).to_pylist()  # type: ignore[no-any-return]


_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}


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
