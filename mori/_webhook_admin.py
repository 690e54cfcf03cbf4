"""Registering webhook endpoints at MORI, in either generation.

G1 has one webhook URL per account (``POST``/``GET``/``DELETE /api/v2/webhook``); G3 has any
number, each with an id (``POST``/``GET /api/v2/orders/webhooks``,
``DELETE /api/v2/orders/webhooks/{id}``). :class:`WebhookAdmin` gives both the same verbs:
register (G3: replacing the webhooks of the same URL, so one URL has one live secret), get the
URL, list, and delete by URL or all.
"""

from __future__ import annotations

import contextlib
from typing import Any, Protocol

from mori import _parse, errors
from mori._dialects import Dialect
from mori.models import RegisteredWebhook, WebhookInfo, WebhookSecret

__all__ = ["ApiCall", "WebhookAdmin"]


class ApiCall(Protocol):
    """The client's retried API call: returns the answer's ``data`` and HTTP status."""

    def __call__(
        self,
        method: str,
        path: str,
        endpoint: str,
        *,
        json: dict[str, Any] | None = None,
        key: str | None = None,
    ) -> tuple[Any, int]: ...


def _items(data: Any) -> list[Any]:
    """The list in a G3 list answer: the data itself, or under ``webhooks``/``items``/``data``."""
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        for name in ("webhooks", "items", "data"):
            if isinstance(data.get(name), list):
                return list(data[name])
    return []


def _newest(hooks: list[RegisteredWebhook]) -> RegisteredWebhook | None:
    """The webhook with the highest numeric id, else the last one listed."""
    if not hooks:
        return None
    if all(h.id is not None and h.id.isdigit() for h in hooks):
        return max(hooks, key=lambda h: int(h.id or 0))
    return hooks[-1]


class WebhookAdmin:
    """Webhook registration calls of one client's generation."""

    def __init__(self, dialect: Dialect, api: ApiCall) -> None:
        self._dialect = dialect
        self._api = api

    def register(self, url: str, name: str | None) -> WebhookSecret:
        """Register ``url``; returns its signing secret."""
        if self._dialect.many_webhooks:
            self.delete(url)
        body = self._dialect.webhook_body(url, name)
        data, status = self._api("POST", self._dialect.webhook_path, "register_webhook", json=body)
        return _parse.validate(WebhookSecret, data, endpoint="register_webhook", status_code=status)

    def get(self) -> WebhookInfo:
        """The registered URL (G3: the newest webhook's), ``None`` when there is none."""
        if not self._dialect.many_webhooks:
            data, status = self._api("GET", self._dialect.webhook_path, "get_webhook")
            return _parse.validate(WebhookInfo, data, endpoint="get_webhook", status_code=status)
        newest = _newest(self._list_g3("get_webhook"))
        return WebhookInfo(url=newest.url if newest is not None else None)

    def registered(self) -> list[RegisteredWebhook]:
        """Every registered webhook."""
        if self._dialect.many_webhooks:
            return self._list_g3("list_webhooks")
        url = self.get().url
        return [RegisteredWebhook(url=url)] if url else []

    def delete(self, url: str | None) -> None:
        """Delete the webhooks of ``url``, or all of them when ``url`` is ``None``."""
        if not self._dialect.many_webhooks:
            if url is None or self.get().url == url:
                self._api("DELETE", self._dialect.webhook_path, "delete_webhook")
            return
        for hook in self._list_g3("delete_webhook"):
            if hook.id is not None and (url is None or hook.url == url):
                with contextlib.suppress(errors.NotFoundError):  # deleted meanwhile: fine
                    path = self._dialect.webhook_item_path(hook.id)
                    self._api("DELETE", path, "delete_webhook")

    def _list_g3(self, endpoint: str) -> list[RegisteredWebhook]:
        data, status = self._api("GET", self._dialect.webhook_path, endpoint)
        return [
            _parse.validate(RegisteredWebhook, item, endpoint=endpoint, status_code=status)
            for item in _items(data)
            if isinstance(item, dict)
        ]
