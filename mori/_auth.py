"""Credentials: an API key, or an email and password exchanged for a cached access token.

With an API key every call sends ``Authorization: Bearer <key>``. With an email and password
(G1 integration guide) the client signs in at ``POST /api/v2/auth/login`` and sends the access
token instead. Tokens live in a :class:`TokenCache` shared by every client of the process with
the same base URL, email and password: one sign-in at a time per account (the others wait for
it), refreshed before expiry -- once less than ``min(5 min, 10 % of its life)`` is left, by the
client's clock -- and dropped when MORI answers 401 to it. Neither the password nor a token
appears in a message, a log record or a ``repr``.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import math
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import httpx
import pydantic

from mori import errors
from mori.errors import ConfigurationError
from mori.models import AccountUsage, LoginRequest, wire

__all__ = [
    "DEFAULT_TOKEN_LIFETIME",
    "LOGIN_PATH",
    "Auth",
    "AuthMode",
    "Login",
    "TokenCache",
    "parse_login",
    "sign_in",
]

LOGIN_PATH = "/auth/login"

#: How long a token lives when MORI does not say (the integration guide's 2 hours).
DEFAULT_TOKEN_LIFETIME = 2 * 60 * 60.0
#: Refresh once less than this much of a token's life is left (or 10 % of it, if less).
REFRESH_MARGIN = 5 * 60.0
REFRESH_FRACTION = 0.1

AuthMode = Literal["api_key", "token", "none"]


@dataclass(frozen=True)
class Login:
    """What a sign-in returned: the token, its lifetime in seconds and the account's usage."""

    token: str
    lifetime: float
    usage: AccountUsage | None

    def __repr__(self) -> str:
        return f"Login(token=***, lifetime={self.lifetime:g}, usage={self.usage!r})"


class _Slot:
    """One account's cached token (guarded by its own lock: one sign-in at a time)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.token: str | None = None
        self.refresh_at = -math.inf
        self.usage: AccountUsage | None = None

    def store(self, login: Login, now: float) -> None:
        """Keep ``login``'s token until ``now`` plus its life, minus the refresh margin."""
        margin = min(REFRESH_MARGIN, REFRESH_FRACTION * login.lifetime)
        self.token = login.token
        self.refresh_at = now + login.lifetime - margin
        self.usage = login.usage if login.usage is not None else self.usage


class TokenCache:
    """Access tokens by (base URL, email, password), shared by the clients of a process.

    Refresh times are kept in the clock of the client that signed in: clients sharing a cache
    share a clock (``time.monotonic`` unless a test injects its own, with its own cache).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: dict[tuple[str, str, str], _Slot] = {}
        self._salt = os.urandom(16)  # the password is keyed by an HMAC, never kept as is

    def slot(self, base_url: str, email: str, password: str) -> _Slot:
        """The slot of one account (created on first use)."""
        digest = hmac.new(self._salt, password.encode(), hashlib.sha256).hexdigest()
        key = (base_url.rstrip("/"), email.strip().lower(), digest)
        with self._lock:
            return self._slots.setdefault(key, _Slot())


#: The process-wide cache every client uses unless given its own.
PROCESS_TOKENS = TokenCache()


class Auth:
    """One client's credentials: the ``Authorization`` header to send, refreshed as needed."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str | None,
        email: str | None,
        password: str | None,
        generation: str,
        cache: TokenCache,
        clock: Callable[[], float],
    ) -> None:
        self._api_key = api_key or None
        self._email = email or None
        self._password = password or None
        self._clock = clock
        self._slot: _Slot | None = None
        self.mode: AuthMode = "api_key" if self._api_key else "none"
        if self._api_key is None and (email or password):
            if not (email and password):
                missing = "MORI_PASSWORD" if email else "MORI_EMAIL"
                raise ConfigurationError(f"an email/password login needs {missing} as well")
            if generation != "g1":
                raise ConfigurationError(
                    f"API generation {generation} has no email/password login: set MORI_API_KEY"
                    " (or MORI_API_GENERATION=g1 for a server with /api/v2/auth/login)"
                )
            self.mode = "token"
            self._slot = cache.slot(base_url, email, password)

    def header(self, login: Callable[[], Login]) -> dict[str, str]:
        """The ``Authorization`` header, signing in with ``login`` first when the token is
        missing or due for refresh."""
        if self._api_key is not None:
            return {"Authorization": f"Bearer {self._api_key}"}
        if self._slot is None:
            return {}
        slot = self._slot
        with slot.lock:
            if slot.token is None or self._clock() >= slot.refresh_at:
                result = login()
                slot.store(result, self._clock())
            return {"Authorization": f"Bearer {slot.token}"}

    def invalidate(self, header: Mapping[str, str]) -> bool:
        """Forget the token ``header`` carried (MORI refused it); ``False`` with an API key."""
        if self._slot is None:
            return False
        with self._slot.lock:
            if header.get("Authorization") == f"Bearer {self._slot.token}":
                self._slot.token = None
        return True

    def expire(self) -> None:
        """Drop the cached token, so the next call signs in again."""
        if self._slot is not None:
            with self._slot.lock:
                self._slot.token = None

    def login_fields(self) -> tuple[str, str]:
        """The email and password to sign in with (only in ``token`` mode)."""
        if self._email is None or self._password is None:
            raise ConfigurationError("no email and password to sign in with")
        return self._email, self._password

    def usage(self) -> AccountUsage | None:
        """The account usage of the last sign-in (``None`` without one)."""
        return self._slot.usage if self._slot is not None else None

    def secrets(self) -> tuple[str | None, ...]:
        """Every credential to mask in messages: the key, the password, the current token."""
        token = self._slot.token if self._slot is not None else None
        return (self._api_key, self._password, token)

    def __repr__(self) -> str:
        return f"Auth(mode={self.mode!r})"


def _number(value: object) -> float | None:
    """A finite number given as a number or a numeric string."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _lifetime(data: Mapping[str, Any], headers: Mapping[str, str]) -> float:
    """The token's life in seconds from ``expiresIn`` or ``expiresAt`` (body, then headers)."""
    for source in (data, headers):
        seconds = _number(source.get("expiresIn"))
        if seconds is not None and seconds > 0:
            return seconds
        at = source.get("expiresAt")
        if at is not None:
            remaining = _until(at, headers.get("Date"))
            if remaining is not None and remaining > 0:
                return remaining
    return DEFAULT_TOKEN_LIFETIME


def _until(at: object, date: str | None) -> float | None:
    """Seconds from the server's ``Date`` (else now) to ``at`` (ISO-8601 or epoch seconds/ms)."""
    now = datetime.now(UTC)
    if date:
        with contextlib.suppress(TypeError, ValueError, IndexError):
            now = parsedate_to_datetime(date)
    epoch = _number(at)
    try:
        if epoch is not None:
            when = datetime.fromtimestamp(epoch / 1000 if epoch > 1e11 else epoch, UTC)
        elif isinstance(at, str):
            when = datetime.fromisoformat(at.replace("Z", "+00:00"))
        else:
            return None
    except (ValueError, OverflowError, OSError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when - now).total_seconds()


def _usage(contract: object) -> AccountUsage | None:
    """``data.contract`` as :class:`AccountUsage`, dropping any field that does not parse."""
    if not isinstance(contract, dict):
        return None
    kept: dict[str, Any] = {}
    for field in AccountUsage.model_fields.values():
        alias = field.alias or ""
        if alias in contract:
            try:
                AccountUsage.model_validate({alias: contract[alias]})
            except pydantic.ValidationError:
                continue
            kept[alias] = contract[alias]
    return AccountUsage.model_validate(kept)


def parse_login(data: Any, headers: Mapping[str, str]) -> Login | None:
    """The token (``accessToken`` header, else ``data.accessToken``), its life and the usage;
    ``None`` when the answer holds no token."""
    fields = data if isinstance(data, dict) else {}
    token = headers.get("accessToken") or fields.get("accessToken")
    if not isinstance(token, str) or not token.strip():
        return None
    token = token.strip()
    if token.lower().startswith("bearer "):
        token = token[7:].strip()
    return Login(token, _lifetime(fields, headers), _usage(fields.get("contract")))


def sign_in(
    auth: Auth,
    send: Callable[[dict[str, Any]], httpx.Response],
    read: Callable[[httpx.Response], Any],
) -> Login:
    """``POST /api/v2/auth/login`` through ``send``, its answer's ``data`` through ``read``.

    A refused sign-in (400, 401, 403, or 404 with an error code) is
    :class:`~mori.errors.AuthenticationError`; an answer without a token is
    :class:`~mori.errors.UnexpectedResponseError`.
    """
    email, password = auth.login_fields()
    response = send(wire(LoginRequest.model_validate({"email": email, "password": password})))
    try:
        data = read(response)
    except errors.APIStatusError as exc:
        if exc.status_code in (400, 401, 403) or (exc.status_code == 404 and exc.code):
            raise errors.AuthenticationError(
                f"MORI refused the sign-in ({exc.detail_message}): check MORI_EMAIL and"
                " MORI_PASSWORD",
                status_code=exc.status_code,
                code=exc.code,
                endpoint="login",
            ) from None
        raise
    login = parse_login(data, response.headers)
    if login is None:
        raise errors.UnexpectedResponseError(
            "the sign-in answer holds no access token (accessToken header or data field)",
            endpoint="login",
            status_code=response.status_code,
        )
    return login
