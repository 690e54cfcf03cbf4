"""MORI's primary (``g1``) order and webhook routes.

``POST /api/v2/orders`` (uploads), ``/orders/with-urls`` (URL files, processed at once) and
``/orders/confirm`` take ``X-Idempotency-Key``; ``/api/v2/webhook`` holds one URL per account.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel
from starlette.responses import Response

from mori.emulator import validation
from mori.emulator.orders import NewFile
from mori.emulator.routing import Account, Emu, confirm, idempotent, new_order, reply
from mori.models import WebhookInfo, WebhookSecret

router = APIRouter(prefix="/api/v2")


@router.post("/orders")
async def create_order(request: Request, emulator: Emu, account: Account) -> Response:
    """Create an order whose files are uploaded to presigned URLs."""

    def create(body: Any) -> BaseModel:
        spec = validation.create_request(body)
        files = [NewFile(f.file_name) for f in spec.files]
        order = new_order(request, emulator, account, spec.order_name, files)
        return emulator.created_order(order)

    return await idempotent(request, emulator, account, create)


@router.post("/orders/with-urls")
async def create_url_order(request: Request, emulator: Emu, account: Account) -> Response:
    """Create an order from public URLs; it starts processing at once."""

    def create(body: Any) -> BaseModel:
        spec = validation.url_request(body, emulator.config.url_allowlist)
        files = [NewFile(f.file_name, f.original_file_url) for f in spec.files]
        order = new_order(request, emulator, account, spec.order_name, files)
        emulator.start_processing(order)
        return emulator.created_order(order)

    return await idempotent(request, emulator, account, create)


@router.post("/orders/confirm")
async def confirm_order(request: Request, emulator: Emu, account: Account) -> Response:
    """Start processing a pending order whose files are all uploaded."""
    return await confirm(request, emulator, account)


@router.post("/webhook")
async def register_webhook(request: Request, emulator: Emu, account: Account) -> Response:
    """Register (or replace) the account's webhook URL; answers a new signing secret."""
    url = validation.webhook_url(validation.parse_json(await request.body()))
    secret = emulator.webhooks.register(account, url)
    return reply(emulator, WebhookSecret(secret=secret))


@router.get("/webhook")
async def get_webhook(emulator: Emu, account: Account) -> Response:
    """The account's webhook URL (``null`` when none is registered)."""
    info = WebhookInfo(url=emulator.webhooks.url(account))
    return reply(emulator, info.model_dump(by_alias=True))


@router.delete("/webhook")
async def delete_webhook(emulator: Emu, account: Account) -> Response:
    """Remove the account's webhook URL."""
    emulator.webhooks.delete(account)
    return reply(emulator, None, "webhook deleted")
