"""Read, validate, fingerprint and key a manifest, or the listing of a folder or S3 prefix."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from mori.batch import manifest
from mori.batch.ledger import open_ledger
from mori.batch.listing import SourceSpec, pages
from mori.batch.manifest import Item, ManifestError, ValidationOptions
from mori.batch.sources import load_source
from mori.batch.storage import Storage


@task(name="load-manifest", cache_policy=NO_CACHE)
def load_manifest(
    uri: str, storage: Storage, options: ValidationOptions
) -> list[Item] | ManifestError:
    """One validated, fingerprinted item per manifest row (bad rows carry their error).

    A whole-manifest problem is returned, not raised: the flow ends ``Failed`` with its one-line
    message and nothing written, instead of a traceback.
    """
    try:
        return manifest.load(uri, storage, options)
    except ManifestError as exc:
        return exc


@task(name="list-source", cache_policy=NO_CACHE)
def list_source(
    spec: SourceSpec, storage: Storage, options: ValidationOptions, ledger_location: str
) -> list[Item] | ManifestError:
    """One validated, fingerprinted item per object of a listed folder or ``s3://`` prefix.

    Objects the ledger records as read before (same location, size, ETag or mtime) are not read
    again; the others are, and recorded. A source that cannot be listed is returned as a
    :class:`ManifestError` before the ledger is opened (so none is created for it).
    """
    try:
        listed = pages(spec, storage)
        with open_ledger(ledger_location) as ledger:
            return load_source(listed, storage, options, ledger)
    except ManifestError as exc:
        return exc
