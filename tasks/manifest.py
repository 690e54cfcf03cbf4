"""Read, validate, fingerprint and key a run's rows: a manifest's, or a listed folder's objects.

Each row is filed by its image key in the run's local working folder (see
:mod:`mori.batch.stream`), so a run of any size holds a bounded part of it at a time.
"""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from mori.batch.ledger import open_ledger
from mori.batch.listing import SourceSpec, pages
from mori.batch.manifest import ManifestError, ValidationOptions
from mori.batch.sources import source_pages
from mori.batch.storage import Storage
from mori.batch.stream import Survey, survey_items, survey_manifest


@task(name="load-manifest", cache_policy=NO_CACHE)
def load_manifest(
    uri: str, storage: Storage, options: ValidationOptions, folder: Path
) -> Survey | ManifestError:
    """Every row of the manifest validated, fingerprinted and keyed (bad rows carry their
    error), filed in ``folder``.

    A whole-manifest problem is returned, not raised: the flow ends ``Failed`` with its one-line
    message and nothing written, instead of a traceback.
    """
    try:
        return survey_manifest(uri, storage, options, folder)
    except ManifestError as exc:
        return exc


@task(name="list-source", cache_policy=NO_CACHE)
def list_source(
    spec: SourceSpec,
    storage: Storage,
    options: ValidationOptions,
    ledger_location: str,
    folder: Path,
) -> Survey | ManifestError:
    """One validated, fingerprinted, keyed row per object of a listed folder or ``s3://``
    prefix, filed in ``folder``.

    Objects the ledger records as read before (same location, size, ETag or mtime) are not read
    again; the others are, and recorded. A source that cannot be listed is returned as a
    :class:`ManifestError` before the ledger is opened (so none is created for it).
    """
    try:
        listed = pages(spec, storage)
        with open_ledger(ledger_location) as ledger:
            return survey_items(source_pages(listed, storage, options, ledger), options, folder)
    except ManifestError as exc:
        return exc
