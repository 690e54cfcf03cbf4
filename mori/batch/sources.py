"""A listed source (a folder or an ``s3://`` prefix) as a run's items, one per object.

Each listed object becomes an :class:`~mori.batch.manifest.Item` exactly as a manifest row
naming it would (``source`` is its absolute path or ``s3://`` URI): validated, fingerprinted,
keyed. The ledger's ``source_objects`` table spares the reads: an object listed with the same
location, size and version (ETag or mtime) as one read before takes its fingerprint and image
facts from there and is not downloaded; any other object is read, and what it gave is recorded
(unless the caller only looks, as a dry run does).

The listing arrives a page at a time (:func:`mori.batch.listing.pages`); each page is checked
against the ledger, read and recorded before the next is listed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from mori.batch.ledger import Ledger, SourceObject
from mori.batch.listing import ListedObject
from mori.batch.manifest import Item, ValidationOptions, assign_keys, classify, fingerprint_items
from mori.batch.storage import Storage, parent

__all__ = ["load_source", "source_pages"]


def load_source(
    listed: Iterable[list[ListedObject]],
    storage: Storage,
    options: ValidationOptions,
    ledger: Ledger | None,
    *,
    remember: bool = True,
) -> list[Item]:
    """One validated, fingerprinted, keyed item per listed object, in listing order.

    ``listed`` is :func:`mori.batch.listing.pages` of the source. ``ledger`` (``None``: none
    exists yet) says which objects were read before; with ``remember`` the objects read now are
    recorded in it. Raises :class:`~mori.batch.manifest.ManifestError` when a page of the
    source cannot be listed.
    """
    items = [
        item
        for page in source_pages(listed, storage, options, ledger, remember=remember)
        for item in page
    ]
    assign_keys(items, options)
    return items


def source_pages(
    listed: Iterable[list[ListedObject]],
    storage: Storage,
    options: ValidationOptions,
    ledger: Ledger | None,
    *,
    remember: bool = True,
) -> Iterator[list[Item]]:
    """:func:`load_source` a page at a time, without image keys (so without ``DUPLICATE_ROW``:
    that needs every page): each page's items validated and fingerprinted, row numbers going on
    from page to page."""
    first = 0
    for page in listed:
        page_items = [_item(first + i, obj, options) for i, obj in enumerate(page)]
        known = ledger.source_objects([obj.location for obj in page]) if ledger else {}
        unread: list[tuple[Item, ListedObject]] = []
        for item, obj in zip(page_items, page, strict=True):
            row = known.get(obj.location)
            if not item.ok:
                continue
            if row is not None and row.same_object(obj.size, obj.version):
                _from_ledger(item, row, options)
            if item.fingerprint is None:
                unread.append((item, obj))
        fingerprint_items([item for item, _ in unread], storage, options)
        if ledger is not None and remember:
            ledger.remember_source_objects(_read(unread))
        first += len(page_items)
        yield page_items


def _item(row_index: int, obj: ListedObject, options: ValidationOptions) -> Item:
    """The item a manifest row naming ``obj`` would give (validated, not yet read)."""
    item = Item(row_index, obj.location)
    classify(item, parent(obj.location), options)
    return item


def _from_ledger(item: Item, row: SourceObject, options: ValidationOptions) -> None:
    """Take what an earlier read of the same object gave (unless it is over today's limit)."""
    if row.size > options.max_file_bytes:
        return
    item.fingerprint, item.sha256, item.bytes = row.fingerprint, row.fingerprint[7:], row.size
    item.width, item.height, item.format = row.width, row.height, row.format


def _read(unread: Sequence[tuple[Item, ListedObject]]) -> list[SourceObject]:
    """The ledger rows of the objects read successfully (and not changed since listed)."""
    return [
        SourceObject(
            obj.location,
            obj.size,
            obj.version,
            item.fingerprint,
            item.width,
            item.height,
            item.format,
        )
        for item, obj in unread
        if item.ok and item.fingerprint is not None and item.bytes == obj.size
    ]
