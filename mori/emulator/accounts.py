"""Accounts: API keys, login accounts with their access tokens, and each account's usage.

An account is named by its API key: a configured key, or the key generated for a login account.
An access token from ``POST /api/v2/auth/login`` authenticates as its account's key, so orders,
idempotency keys, the rate limit and webhooks are the account's whichever credential is used.
Usage counts the files of the account's orders that were sent to processing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mori.emulator.responses import ApiError, iso

#: ``contract.planType`` of every account.
PLAN_TYPE = "free"


@dataclass(frozen=True)
class LoginAccount:
    """An account that logs in with an email and a password."""

    user_id: int
    email: str
    password: str = field(repr=False)
    api_key: str = field(repr=False)
    migration_key: str = field(repr=False)


@dataclass(frozen=True)
class _Session:
    """What an access token stands for, and until when (config clock, epoch seconds)."""

    account: str = field(repr=False)
    expires_at: float


class Accounts:
    """Authenticates Bearer values, issues access tokens and counts usage. Thread-safe."""

    def __init__(
        self,
        api_keys: frozenset[str],
        logins: Mapping[str, str],
        token_ttl: float,
        usage_limit: int,
        clock: Callable[[], float],
    ) -> None:
        self._clock = clock
        self._token_ttl = token_ttl
        self.usage_limit = usage_limit
        self._plan_start = clock()
        self._logins = {
            email.strip().lower(): LoginAccount(
                user_id=user_id,
                email=email.strip(),
                password=password,
                api_key="mori_" + secrets.token_hex(20),
                migration_key="mig_" + secrets.token_hex(16),
            )
            for user_id, (email, password) in enumerate(sorted(logins.items()), start=1)
        }
        self._labels = {key: _key_label(key) for key in api_keys}
        self._labels.update({a.api_key: a.email for a in self._logins.values()})
        self._lock = threading.Lock()
        self._sessions: dict[str, _Session] = {}
        self._usage: Counter[str] = Counter()

    def login(self, email: str, password: str) -> tuple[str, LoginAccount]:
        """A new access token for the account, and the account; 401 on a wrong email/password."""
        account = self._logins.get(email.strip().lower())
        if account is None or not hmac.compare_digest(
            account.password.encode("utf-8"), password.encode("utf-8")
        ):
            raise ApiError(401, "UNAUTHORIZED", "invalid email or password")
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._sessions[token] = _Session(account.api_key, self._clock() + self._token_ttl)
        return token, account

    def authenticate(self, bearer: str) -> str:
        """The account a Bearer value (API key or access token) stands for; 401 otherwise."""
        if bearer in self._labels:
            return bearer
        with self._lock:
            session = self._sessions.get(bearer)
        if session is None:
            raise ApiError(401, "UNAUTHORIZED", "missing or invalid API key")
        if self._clock() >= session.expires_at:
            raise ApiError(401, "UNAUTHORIZED", "the access token has expired; log in again")
        return session.account

    def usage(self, account: str) -> int:
        """Files of the account's orders sent to processing so far."""
        with self._lock:
            return self._usage[account]

    def add_usage(self, account: str, files: int) -> None:
        """Count ``files`` more files sent to processing."""
        with self._lock:
            self._usage[account] += files

    def check_quota(self, account: str, files: int) -> None:
        """403 ``USAGE_LIMIT_EXCEEDED`` if ``files`` more would take the account past its limit."""
        used = self.usage(account)
        if used + files > self.usage_limit:
            raise ApiError(
                403,
                "USAGE_LIMIT_EXCEEDED",
                f"usage limit of {self.usage_limit} files reached ({used} used, "
                f"this order has {files})",
            )

    def login_data(self, account: LoginAccount) -> dict[str, Any]:
        """The ``data`` of a successful login: the user and the contract."""
        return {
            "user": {
                "id": account.user_id,
                "email": account.email,
                "apiKey": account.api_key,
                "migrationKey": account.migration_key,
            },
            "contract": {
                "planType": PLAN_TYPE,
                "planStartDate": iso(self._plan_start),
                "planEndDate": None,
                "currentUsage": self.usage(account.api_key),
                "usageLimit": self.usage_limit,
            },
        }

    def usage_snapshot(self) -> dict[str, int]:
        """Usage per account, by a label that is not a secret (the email, or a key's digest)."""
        with self._lock:
            labelled = sorted((label, key) for key, label in self._labels.items())
            return {label: self._usage[key] for label, key in labelled}


def _key_label(key: str) -> str:
    """A name for an API-key account that does not reveal the key."""
    return "key:" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:12]
