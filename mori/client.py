"""The MORI Anti-AI filter API client, for either API generation (G1 default, or G3).

:class:`MoriClient` is synchronous and safe to share between threads. Every API call sends
``Authorization: Bearer <key or access token>``, waits for the client-side rate limiter before
*each* attempt, is retried per the :class:`~mori.retry.RetryPolicy` with the same idempotency
key, and ends each attempt by a whole-call deadline (``timeout`` seconds for connect, send,
headers and body together). A non-2xx answer or ``success: false`` raises the
:mod:`mori.errors` class for the status, with MORI's code, message and field details; a 2xx
answer the SDK cannot read raises :class:`~mori.errors.UnexpectedResponseError`.

The same methods speak G1 or G3 (``generation``): paths, bodies and where the idempotency key
travels differ, the models the methods return do not (see :mod:`mori._dialects`).

Presigned storage URLs (:meth:`MoriClient.upload`, :meth:`MoriClient.download`) are called
without the Authorization header, are not rate-limited and have the same deadline; a 403 there
is :class:`~mori.errors.URLExpiredError`.

Secrets: the API key, the password, access tokens and presigned URLs' query strings never
appear in an exception message, in ``repr(client)`` or in a log record.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, Self

from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from mori import _parse, errors
from mori._base_client import BaseClient
from mori._dialects import FileLike, mixed, segment
from mori._preflight import run_preflight
from mori._redact import redact_url
from mori._stats import ClientStats
from mori.models import (
    AccountUsage,
    ConfirmedOrder,
    CreatedOrder,
    DownloadInfo,
    FileSpec,
    MixedFileSpec,
    OrderInfo,
    RegisteredWebhook,
    UrlFileSpec,
    WebhookInfo,
    WebhookSecret,
)
from mori.ratelimit import RateLimiter
from mori.settings import DEFAULT_API_URL, Settings

__all__ = ["DEFAULT_BASE_URL", "ClientStats", "MoriClient", "redact_url"]

DEFAULT_BASE_URL = DEFAULT_API_URL


class MoriClient(BaseClient):
    """Synchronous, thread-safe client of the MORI API (see the module docstring).

    Credentials: ``api_key``, or ``email`` + ``password`` (G1 only: signs in for an access
    token, cached per process in ``token_cache``); the key wins when both are given.
    ``timeout`` is the whole-call deadline of one attempt. ``retry=None`` disables retries.
    ``rate_limiter`` is any object with ``acquire() -> float``. ``transport`` replaces httpx's
    network transport (``httpx.MockTransport`` in tests; deadlines apply to the network only).
    ``sleep``, ``clock`` and ``rng`` drive retry delays, deadlines, token refresh and jitter.
    """

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> Self:
        """A client configured by ``settings`` (URL, credentials, generation, timeout and
        requests-per-minute budget); ``kwargs`` go to the constructor and win."""
        kwargs.setdefault("base_url", settings.api_url)
        kwargs.setdefault("api_key", Settings.secret(settings.api_key))
        kwargs.setdefault("email", settings.email)
        kwargs.setdefault("password", Settings.secret(settings.password))
        kwargs.setdefault("generation", settings.api_generation)
        kwargs.setdefault("timeout", settings.timeout_seconds)
        if "rate_limiter" not in kwargs:
            clock, sleep = kwargs.get("clock", time.monotonic), kwargs.get("sleep", time.sleep)
            rpm = settings.rpm
            kwargs["rate_limiter"] = RateLimiter(rpm, clock=clock, sleep=sleep) if rpm else None
        return cls(**kwargs)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **kwargs: Any) -> Self:
        """:meth:`from_settings` of the process environment's ``MORI_*`` variables, or of
        ``env`` alone when given (a mapping of the same variable names)."""
        settings = Settings() if env is None else settings_from_mapping(env)
        return cls.from_settings(settings, **kwargs)

    # -- account -------------------------------------------------------------------------------

    def account_usage(self, *, refresh: bool = False) -> AccountUsage | None:
        """The plan and usage MORI reported at the last sign-in (signing in first when there
        was none, or when ``refresh``); ``None`` with an API key, which reports no usage."""
        if self._auth.mode != "token":
            return None
        if refresh:
            self._auth.expire()
        self._with_retries("login", lambda _: self._auth.header(self._login))
        return self._auth.usage()

    def preflight(self) -> None:
        """Check, within seconds and without side effects at MORI, that the URL, credentials
        and API generation work; raise :class:`~mori.errors.PreflightError` (``cause``,
        ``fix``) otherwise. One attempt per request, no retries."""
        run_preflight(
            self._probe,
            base_url=self.base_url,
            generation=self.generation,
            auth_mode=self._auth.mode,
            timeout=self.timeout,
        )

    # -- orders --------------------------------------------------------------------------------

    def create_order(
        self,
        files: Sequence[str | FileSpec],
        *,
        idempotency_key: str,
        order_name: str | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> CreatedOrder:
        """Create a ``pending`` order with one presigned upload URL per file (G1
        ``POST /api/v2/orders``, G3 ``POST /api/v2/orders/anti-ai``).

        ``files`` are file names (with extension) or :class:`~mori.models.FileSpec`;
        ``order_name`` and ``options`` are sent only when given.
        """
        specs = [mixed(f if isinstance(f, str) else f.file_name) for f in files]
        path = self._dialect.create_path
        return self._create("create_order", path, specs, idempotency_key, order_name, options)

    def create_url_order(
        self,
        files: Sequence[UrlFileSpec | tuple[str, str]],
        *,
        idempotency_key: str,
        order_name: str | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> CreatedOrder:
        """Create an order MORI fills by fetching each public URL itself (no upload, no
        confirm): G1 ``POST /api/v2/orders/with-urls``, G3 the create call with
        ``originalFileUrl`` on every file. ``files`` are specs or ``(file_name, url)`` pairs."""
        specs = [mixed(f) for f in files]
        path = self._dialect.url_create_path
        return self._create("create_url_order", path, specs, idempotency_key, order_name, options)

    def create_mixed_order(
        self,
        files: Sequence[FileLike],
        *,
        idempotency_key: str,
        order_name: str | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> CreatedOrder:
        """G3 only: one order mixing uploads (a name or :class:`~mori.models.FileSpec`) and
        public URLs (``(file_name, url)`` or a spec with a URL). It is ``pending`` (upload,
        then confirm) unless every file has a URL."""
        if not self._dialect.key_in_body:
            raise errors.ConfigurationError(
                "create_mixed_order needs API generation g3 (MORI_API_GENERATION=g3)"
            )
        specs = [mixed(f) for f in files]
        path, endpoint = self._dialect.create_path, "create_mixed_order"
        return self._create(endpoint, path, specs, idempotency_key, order_name, options)

    def confirm_order(self, order_id: str, *, idempotency_key: str) -> ConfirmedOrder:
        """Start processing once every file is uploaded (G1 ``POST /api/v2/orders/confirm``,
        G3 ``POST /api/v2/orders/anti-ai/confirm``)."""
        _check_key("confirm_order", idempotency_key)
        body = self._dialect.confirm_body(order_id, idempotency_key)
        path = self._dialect.confirm_path
        data, status = self._api("POST", path, "confirm_order", json=body, key=idempotency_key)
        return _parse.validate(
            ConfirmedOrder, data, endpoint="confirm_order", status_code=status, key=idempotency_key
        )

    def get_order(self, order_id: str) -> OrderInfo:
        """``GET /api/v2/orders/{orderId}``: the order's status and details."""
        data, status = self._api("GET", f"/orders/{segment(order_id)}", "get_order")
        return _parse.validate(OrderInfo, data, endpoint="get_order", status_code=status)

    def get_download(self, order_id: str) -> DownloadInfo:
        """``GET /api/v2/orders/{orderId}/download``: a presigned URL of the processed result."""
        data, status = self._api("GET", f"/orders/{segment(order_id)}/download", "get_download")
        return _parse.validate(DownloadInfo, data, endpoint="get_download", status_code=status)

    # -- webhook endpoints ---------------------------------------------------------------------

    def register_webhook(self, url: str, *, name: str | None = None) -> WebhookSecret:
        """Point MORI's order events at ``url``; returns the signing secret (shown only once).

        G1 sets (or replaces) the account's one URL. G3 first deletes the webhooks already
        registered for ``url``, then creates one (``name`` is sent in G3 only), so either way
        one URL has one live secret.
        """
        return self._webhooks.register(url, name)

    def get_webhook(self) -> WebhookInfo:
        """The registered URL (``None`` when there is none); in G3, the newest webhook's."""
        return self._webhooks.get()

    def list_webhooks(self) -> list[RegisteredWebhook]:
        """Every registered webhook (G1: the account's one URL, or none)."""
        return self._webhooks.registered()

    def delete_webhook(self, url: str | None = None) -> None:
        """Unregister the webhooks whose URL is ``url``, or every webhook when ``url`` is
        ``None`` (G1: the account's one URL, left alone when ``url`` names another)."""
        self._webhooks.delete(url)

    # -- presigned storage URLs ----------------------------------------------------------------

    def upload(self, upload_url: str, data: bytes, *, content_type: str | None = None) -> None:
        """PUT ``data`` to a presigned ``upload_url`` (no Authorization header).

        Raises :class:`~mori.errors.URLExpiredError` on 403 (not retried) and
        :class:`~mori.errors.PresignedURLError` on other failing statuses (5xx retried).
        """
        headers = {"Content-Type": content_type} if content_type else {}

        def attempt(number: int) -> None:
            self._counters.add(request="upload")
            response = self._pools.send(
                "upload", "PUT", upload_url, number, headers=headers, content=data
            )
            _parse.check_presigned(response, "PUT", upload_url)

        self._with_retries("upload", attempt)

    def download(self, download_url: str) -> bytes:
        """GET a presigned ``download_url`` (no Authorization header); returns the body.

        Raises :class:`~mori.errors.URLExpiredError` on 403 and
        :class:`~mori.errors.PresignedURLError` on other failing statuses (5xx retried).
        """

        def attempt(number: int) -> bytes:
            self._counters.add(request="download")
            response = self._pools.send("download", "GET", download_url, number)
            _parse.check_presigned(response, "GET", download_url)
            return response.content

        return self._with_retries("download", attempt)

    # -- internals -----------------------------------------------------------------------------

    def _create(
        self,
        endpoint: str,
        path: str,
        specs: list[MixedFileSpec],
        key: str,
        order_name: str | None,
        options: Mapping[str, Any] | None,
    ) -> CreatedOrder:
        """One create call of any kind; its answer as :class:`CreatedOrder`."""
        _check_key(endpoint, key)
        body = self._dialect.create_body(specs, key, order_name, options)
        data, status = self._api("POST", path, endpoint, json=body, key=key)
        return _parse.validate(CreatedOrder, data, endpoint=endpoint, status_code=status, key=key)


class _MappingSettings(Settings):
    """:class:`Settings` read from the given values only (no environment, no dotenv)."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Only the constructor's values."""
        return (init_settings,)


def settings_from_mapping(env: Mapping[str, str]) -> Settings:
    """:class:`Settings` of ``env`` alone (``MORI_*`` names), the process environment unread."""
    fields: dict[str, str] = {}
    for name, value in env.items():
        if name.startswith("MORI_"):
            fields[name.removeprefix("MORI_").lower()] = value
        elif name == "XDG_STATE_HOME":
            fields[name] = value
    return _MappingSettings.model_validate(fields)


def _check_key(endpoint: str, key: str) -> None:
    """An idempotency key must be a non-blank string (checked before anything is sent)."""
    if not key or not key.strip():
        raise ValueError(f"{endpoint}: idempotency_key must not be empty")
