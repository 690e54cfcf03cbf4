"""Read, validate, fingerprint and key a manifest."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from mori.batch import manifest
from mori.batch.manifest import Item, ManifestError, ValidationOptions
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
