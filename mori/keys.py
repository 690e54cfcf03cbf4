"""Deterministic identities: fingerprints, image keys and idempotency keys.

Every key is a UUIDv5 in the project namespace :data:`NAMESPACE`, so the same input gives the
same key on every machine, in every run, after any crash:

==================  ========================================================================
key                 derivation (``\\n``-joined name hashed with uuid5 under ``NAMESPACE``)
==================  ========================================================================
fingerprint         ``sha256:<hex of the bytes>`` for files, ``url:<normalised URL>`` for URLs
image key           ``image``, fingerprint, canonical JSON of the processing options
order key           ``order``, the sorted image keys of the chunk[, ``gen=<n>`` if n > 0]
                    -- sent as ``X-Idempotency-Key`` on create / create-with-urls
confirm key         ``confirm``, the order key -- sent as ``X-Idempotency-Key`` on confirm
==================  ========================================================================

The generation ``n`` is bumped only when an order must be replaced (its upload URLs expired
before it was confirmed): the old, never-confirmed order is abandoned and the new one gets a
fresh key. Changing a derivation re-processes every image, so these strings are frozen.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

#: The project's uuid5 namespace (itself uuid5 of a URL we own the meaning of). Frozen.
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://morimori.app/mori-pipeline")

_DEFAULT_PORTS = {"http": 80, "https": 443}


def sha256_fingerprint(data: bytes) -> str:
    """The fingerprint of a file's bytes."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def normalise_url(url: str) -> str:
    """Lower-case scheme and host, drop a default port, the fragment and user info; ``/`` path."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    port = parts.port
    netloc = host if port is None or port == _DEFAULT_PORTS.get(scheme) else f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))


def url_fingerprint(url: str) -> str:
    """The fingerprint of a public URL (MORI fetches it, so its identity is its address)."""
    return "url:" + normalise_url(url)


def canonical_options(options: Mapping[str, Any] | None) -> str:
    """Options as canonical JSON (sorted keys, no spaces); ``{}`` when there are none."""
    return json.dumps(dict(options or {}), sort_keys=True, separators=(",", ":"))


def _uuid5(*parts: str) -> str:
    return str(uuid.uuid5(NAMESPACE, "\n".join(parts)))


def image_key(fingerprint: str, options: Mapping[str, Any] | None = None) -> str:
    """The identity of one image processed with the given options."""
    return _uuid5("image", fingerprint, canonical_options(options))


def order_key(image_keys: Iterable[str], generation: int = 0) -> str:
    """The idempotency key of the order holding exactly these images (order-insensitive)."""
    parts = ["order", *sorted(image_keys)]
    if generation:
        parts.append(f"gen={generation}")
    return _uuid5(*parts)


def confirm_key(order_key_: str) -> str:
    """The idempotency key of the confirm call of an order."""
    return _uuid5("confirm", order_key_)
