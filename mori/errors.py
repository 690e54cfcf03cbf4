"""The MORI SDK's exception tree.

Every error the SDK raises derives from :class:`MoriError`::

    MoriError
    ├── TransportError            network failure, no HTTP answer (connect, read, reset); retryable
    │   └── TimeoutError          the request missed its whole-call deadline; retryable
    ├── APIStatusError            MORI answered non-2xx or ``success: false``; carries status, code,
    │   │                         message, field ``details`` and the idempotency key that was sent
    │   ├── BadRequestError       400 (validation: MORI's ``code`` says what); never retried
    │   ├── AuthenticationError   401, or a rejected email/password login; never retried
    │   ├── NotFoundError         404 (e.g. ``ORDER_NOT_FOUND``)
    │   ├── ConflictError         409 (e.g. ``INVALID_ORDER_STATUS``)
    │   ├── GoneError             410 (``ORDER_EXPIRED``)
    │   ├── RateLimitedError      429 (``RATE_LIMIT_EXCEEDED``); carries ``retry_after`` seconds
    │   └── ServerError           5xx and 408; retryable
    ├── UnexpectedResponseError   a 2xx answer the SDK cannot understand; never retried (after a
    │                             create or confirm, MORI may have acted: resume with the same key)
    ├── PresignedURLError         a presigned S3 PUT/GET failed with a status
    │   └── URLExpiredError       403 from S3: the URL's signature has expired
    ├── ConfigurationError        the client's settings cannot work (e.g. a login in G3)
    ├── PreflightError            MORI is unusable as configured; carries ``cause`` and ``fix``
    ├── SignatureVerificationError a webhook body did not match its signature header
    └── InvalidEventError         a verified webhook body is not a MORI event

``retryable`` on each error says whether the same request, with the same idempotency key, may
succeed when sent again. Messages never contain the API key, the password, an access token or a
presigned URL's query string.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

#: What :class:`PreflightError` found wrong.
PreflightCause = Literal[
    "dns",
    "refused",
    "tls",
    "timeout",
    "unauthorized",
    "forbidden",
    "wrong_generation",
    "unexpected",
]


class MoriError(Exception):
    """Base class of every error raised by the MORI SDK."""

    retryable: bool = False


class TransportError(MoriError):
    """The request got no HTTP answer (connection refused, reset, closed without a response).

    ``reason`` names the failure when it is known: ``dns``, ``refused``, ``tls`` or ``timeout``.
    """

    retryable = True

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        self.reason = reason
        super().__init__(message)


class TimeoutError(TransportError):
    """The request did not complete within the timeout."""


@dataclass(frozen=True, slots=True)
class ErrorDetail:
    """One problem MORI named in an error body's ``errors`` (e.g. a field that failed)."""

    message: str | None = None
    property_name: str | None = None
    code: str | None = None

    def __str__(self) -> str:
        text = self.message or self.code or "invalid"
        return f"{self.property_name}: {text}" if self.property_name else text


class APIStatusError(MoriError):
    """MORI answered with a non-2xx status, or with ``"success": false``.

    ``message`` is MORI's top-level message, ``details`` the problems it listed under
    ``errors``; :attr:`detail_message` joins both (what an audit row should say).
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        code: str | None = None,
        idempotency_key: str | None = None,
        endpoint: str | None = None,
        details: Sequence[ErrorDetail] = (),
    ) -> None:
        self.message = message
        self.status_code = status_code
        self.code = code
        self.idempotency_key = idempotency_key
        self.endpoint = endpoint
        self.details = list(details)
        where = f" on {endpoint}" if endpoint else ""
        super().__init__(f"HTTP {status_code} {code or '-'}{where}: {self.detail_message}")

    @property
    def detail_message(self) -> str:
        """MORI's message followed by every detail: ``"Bad Request: files[0].fileName: ..."``."""
        details = "; ".join(str(d) for d in self.details)
        if not details:
            return self.message
        return f"{self.message}: {details}" if self.message else details


class BadRequestError(APIStatusError):
    """400: the request was invalid; MORI's ``code`` says why. Not retryable."""


class AuthenticationError(APIStatusError):
    """401: the API key is missing or unknown."""


class NotFoundError(APIStatusError):
    """404: the order does not exist (or belongs to another key)."""


class ConflictError(APIStatusError):
    """409: the order is not in a state that allows this call."""


class GoneError(APIStatusError):
    """410: the order's results have expired."""


class RateLimitedError(APIStatusError):
    """429: the plan's request budget is exhausted; wait ``retry_after`` seconds if given."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: object) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kw)  # type: ignore[arg-type]


class ServerError(APIStatusError):
    """5xx (or 408): MORI failed or timed out on its side; retryable."""

    retryable = True


class UnexpectedResponseError(MoriError):
    """MORI answered 2xx with a body the SDK cannot understand (no body values in the message).

    Not retryable. After a create or a confirm MORI may have acted, so the caller should keep
    the operation resumable: sending it again later with the same ``idempotency_key`` replays it.
    """

    code = "INVALID_RESPONSE"

    def __init__(
        self,
        message: str,
        *,
        endpoint: str,
        status_code: int,
        idempotency_key: str | None = None,
    ) -> None:
        self.message = message
        self.endpoint = endpoint
        self.status_code = status_code
        self.idempotency_key = idempotency_key
        super().__init__(f"HTTP {status_code} {self.code} on {endpoint}: {message}")


class PresignedURLError(MoriError):
    """A PUT or GET on a presigned storage URL failed with an HTTP status."""

    def __init__(self, message: str, *, status_code: int) -> None:
        self.status_code = status_code
        super().__init__(message)
        self.retryable = status_code >= 500 or status_code in (408, 429)


class URLExpiredError(PresignedURLError):
    """403 from storage: the presigned URL expired; ask MORI for a fresh one (no retry helps)."""


class ConfigurationError(MoriError, ValueError):
    """The client's settings cannot work (missing half of a login, a login in generation g3)."""


class PreflightError(MoriError):
    """MORI cannot be used as configured: ``cause`` says what failed, ``fix`` what to change.

    ``passing`` is true when the probe met a fault a later attempt may not meet (a timeout, a
    dropped connection, a 429 or a 5xx): the configuration itself may well be right.
    """

    def __init__(
        self, message: str, *, cause: PreflightCause, fix: str, passing: bool = False
    ) -> None:
        self.cause: PreflightCause = cause
        self.fix = fix
        self.passing = passing
        super().__init__(f"{message} ({cause}): {fix}")


class SignatureVerificationError(MoriError):
    """A webhook body's HMAC did not match its signature header (or the header was missing)."""


class InvalidEventError(MoriError, ValueError):
    """A webhook body (already verified) is not a MORI event the SDK can read."""


STATUS_ERRORS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    404: NotFoundError,
    408: ServerError,
    409: ConflictError,
    410: GoneError,
    429: RateLimitedError,
}


def error_class_for(status_code: int) -> type[APIStatusError]:
    """The :class:`APIStatusError` subclass for an HTTP status."""
    if status_code >= 500:
        return ServerError
    return STATUS_ERRORS.get(status_code, APIStatusError)
