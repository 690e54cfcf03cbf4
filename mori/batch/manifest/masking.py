"""Credentials hidden where URLs are shown: user info and credential-like query parameters.

A presigned S3, GCS or Azure URL carries its signature (and often a session token) in the
query; an API URL may carry ``token=`` or ``api_key=``. :func:`mask_url` keeps the URL
readable (scheme, host, path, every parameter name, in order) and replaces those values with
``***``. It is for display only (audit ``source`` column, UI tables, reprs): what is fetched
keeps the real URL.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

__all__ = ["CREDENTIAL_PARAMETERS", "MASK", "mask_url"]

MASK = "***"

#: Query (or fragment) parameter names whose values are masked, compared after percent-decoding
#: and ignoring ASCII case. Azure SAS's ``sig`` is its signature; its ``se``, ``sp``, ``sv``,
#: ``sr`` (expiry, permissions, version, resource) are not secrets and stay readable.
CREDENTIAL_PARAMETERS = frozenset(
    {
        # AWS S3 presigned URLs (SigV4, and SigV2's Signature / AWSAccessKeyId)
        "x-amz-signature",
        "x-amz-credential",
        "x-amz-security-token",
        "awsaccesskeyid",
        # Google Cloud Storage signed URLs (V4, and V2's Signature / GoogleAccessId)
        "x-goog-signature",
        "x-goog-credential",
        "googleaccessid",
        # Azure SAS, CloudFront and generic signatures
        "signature",
        "sig",
        # tokens, keys and passwords
        "token",
        "access_token",
        "id_token",
        "refresh_token",
        "session_token",
        "auth_token",
        "private_token",
        "auth",
        "key",
        "api_key",
        "api-key",
        "apikey",
        "x-api-key",
        "access_key",
        "secret_key",
        "password",
        "passwd",
        "pwd",
        "secret",
        "client_secret",
    }
)


def mask_url(url: str) -> str:
    """``url`` for display: ``user:password@`` as ``***@``, credential-like values as ``***``.

    Parameter names, their order and everything else stay as written; a URL with nothing to
    mask is returned as it is. Never raises, whatever the input.
    """
    head, hash_sign, fragment = url.partition("#")
    base, question_mark, query = head.partition("?")
    masked = "".join(
        (
            _without_user_info(base),
            question_mark,
            _masked_parameters(query),
            hash_sign,
            _masked_parameters(fragment),
        )
    )
    return url if masked == url else masked


def is_credential_parameter(name: str) -> bool:
    """``True`` when a parameter called ``name`` (as written in the URL) holds a credential."""
    decoded = unquote(name)
    return decoded.isascii() and decoded.lower() in CREDENTIAL_PARAMETERS


def _without_user_info(base: str) -> str:
    """``scheme://user:password@host/path`` as ``scheme://***@host/path`` (``//`` optional)."""
    scheme = _SCHEME.match(base)
    if scheme is None:
        return base
    rest = base[scheme.end() :]
    authority_at = len(rest) - len(rest.lstrip("/\\"))
    authority = rest[authority_at:].partition("/")[0]
    if "@" not in authority:
        return base
    host, after = authority.rsplit("@", 1)[1], rest[authority_at + len(authority) :]
    return f"{scheme.group()}{rest[:authority_at]}{MASK}@{host}{after}"


def _masked_parameters(text: str) -> str:
    """``a=1&token=x`` as ``a=1&token=***``: values of credential-like names masked.

    ``&``, ``;`` and a further ``?`` all count as separators here: a server reads at most as
    many parameters, so no value it takes for a credential is shown.
    """
    if "=" not in text:
        return text
    parts = _SEPARATOR.split(text)  # parameters at even positions, separators between
    for n in range(0, len(parts), 2):
        name, equals, value = parts[n].partition("=")
        if equals and value and is_credential_parameter(name):
            parts[n] = f"{name}={MASK}"
    return "".join(parts)


_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]+:")  # two letters at least: C:\ is a drive
_SEPARATOR = re.compile(r"([&;?])")
