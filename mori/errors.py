"""The MORI SDK's exception tree.

Every error the SDK raises derives from :class:`MoriError`::

    MoriError
    ├── TransportError            network failure, no HTTP answer (connect, read, reset); retryable
    │   └── TimeoutError          the request timed out; retryable
    ├── APIStatusError            MORI answered non-2xx or ``success: false``; carries status, code,
    │   │                         message and the idempotency key that was sent
    │   ├── BadRequestError       400 (validation: MORI's ``code`` says what); never retried
    │   ├── AuthenticationError   401; never retried
    │   ├── NotFoundError         404 (e.g. ``ORDER_NOT_FOUND``)
    │   ├── ConflictError         409 (e.g. ``INVALID_ORDER_STATUS``)
    │   ├── GoneError             410 (``ORDER_EXPIRED``)
    │   ├── RateLimitedError      429 (``RATE_LIMIT_EXCEEDED``); carries ``retry_after`` seconds
    │   └── ServerError           5xx and 408; retryable
    ├── PresignedURLError         a presigned S3 PUT/GET failed with a status
    │   └── URLExpiredError       403 from S3: the URL's signature has expired
    └── SignatureVerificationError a webhook body did not match its ``X-Mori-Signature``

``retryable`` on each error says whether the same request, with the same idempotency key, may
succeed when sent again. Messages never contain the API key or a presigned URL's query string.
"""

from __future__ import annotations


class MoriError(Exception):
    """Base class of every error raised by the MORI SDK."""

    retryable: bool = False


class TransportError(MoriError):
    """The request got no HTTP answer (connection refused, reset, closed without a response)."""

    retryable = True


class TimeoutError(TransportError):
    """The request did not complete within the timeout."""


class APIStatusError(MoriError):
    """MORI answered with a non-2xx status, or with ``"success": false``."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        code: str | None = None,
        idempotency_key: str | None = None,
        endpoint: str | None = None,
    ) -> None:
        self.message = message
        self.status_code = status_code
        self.code = code
        self.idempotency_key = idempotency_key
        self.endpoint = endpoint
        where = f" on {endpoint}" if endpoint else ""
        super().__init__(f"HTTP {status_code} {code or '-'}{where}: {message}")


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


class PresignedURLError(MoriError):
    """A PUT or GET on a presigned storage URL failed with an HTTP status."""

    def __init__(self, message: str, *, status_code: int) -> None:
        self.status_code = status_code
        super().__init__(message)
        self.retryable = status_code >= 500 or status_code in (408, 429)


class URLExpiredError(PresignedURLError):
    """403 from storage: the presigned URL expired; ask MORI for a fresh one (no retry helps)."""


class SignatureVerificationError(MoriError):
    """A webhook body's HMAC did not match its signature header (or the header was missing)."""


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
