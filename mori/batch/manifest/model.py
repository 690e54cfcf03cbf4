"""The row model: an :class:`Item` per manifest row, :class:`RowError`, the validator's options."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal

import pandas as pd

from mori.batch.manifest.masking import mask_url

SourceKind = Literal["file", "s3", "url"]

#: Largest image the pipeline sends (ASSUMED: MORI's limit is undocumented).
MAX_FILE_BYTES = 30 * 1024 * 1024
#: Longest file name (in UTF-8 bytes) MORI is sent; file systems and S3 keys agree on 255.
MAX_FILE_NAME_BYTES = 255
#: The columns the pipeline reads itself; every other column is carried into the audit.
RESERVED_COLUMNS = ("source", "id", "file_name")


class RowError(Exception):
    """One row is bad; ``code`` is stable, ``message`` says what to fix."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")


@dataclass(slots=True)
class Item:
    """One manifest row after validation and fingerprinting.

    ``source`` is the row as shown (audit, UI): credentials in a URL are masked. ``location`` is
    what is read or sent to MORI: the resolved path, the ``s3://`` URI or the normalised URL.
    """

    row_index: int
    source: str
    caller_id: str | None = None
    file_name: str | None = None
    kind: SourceKind | None = None
    location: str | None = None  # resolved path, s3:// URI or normalised URL
    fingerprint: str | None = None
    sha256: str | None = None
    bytes: int | None = None
    width: int | None = None
    height: int | None = None
    format: str | None = None
    image_key: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    #: The manifest's other columns, for the audit (read-only when it comes from ``load``).
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """``True`` when the row passed validation."""
        return self.error_code is None

    def fail(self, code: str, message: str) -> None:
        """Mark the row bad."""
        self.error_code, self.error_message = code, message

    def __repr__(self) -> str:
        """The fields, with a URL's credentials masked (a presigned URL's signature stays out)."""
        shown = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("location", "fingerprint") and self.kind == "url" and value:
                value = mask_url(value)
            shown.append(f"{f.name}={value!r}")
        return f"Item({', '.join(shown)})"


@dataclass(frozen=True)
class ValidationOptions:
    """What the validator accepts."""

    max_file_bytes: int = MAX_FILE_BYTES
    #: ``host`` or ``host:port`` values of private/loopback addresses that URL rows may name
    #: anyway (the demo serves its URL rows from 127.0.0.1). Empty by default: internal
    #: addresses are never handed to MORI's fetcher.
    allowed_private_hosts: frozenset[str] = frozenset()
    processing_options: Mapping[str, Any] | None = None
    threads: int = 8


def cell_text(value: Any) -> str | None:
    """A manifest cell as stripped text; ``None`` for a missing or blank cell."""
    if value.__class__ is str:  # the common case first (a million ids)
        return value.strip() or None
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    text = str(value).strip()
    return text or None
