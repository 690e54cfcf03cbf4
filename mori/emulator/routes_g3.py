"""The newer (``g3``) order and webhook routes.

``POST /api/v2/orders/anti-ai`` takes files to upload and files by URL in one order (``pending``
with upload URLs, or ``inProgress`` at once when every file has a URL);
``/orders/anti-ai/confirm`` starts a pending one. Both read ``idempotencyKey`` from the body.
``/api/v2/orders/webhooks`` keeps several webhooks per account.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel
from starlette.responses import Response

from mori.emulator import validation
from mori.emulator.delivery import Registration
from mori.emulator.orders import NewFile
from mori.emulator.responses import ApiError
from mori.emulator.routing import Account, Emu, confirm, idempotent, new_order, reply

router = APIRouter(prefix="/api/v2")


@router.post("/orders/anti-ai")
async def create_order(request: Request, emulator: Emu, account: Account) -> Response:
    """Create an order of uploaded and URL files; URL-only orders start processing at once."""

    def create(body: Any) -> BaseModel:
        spec = validation.mixed_request(body, emulator.config.url_allowlist)
        files = [NewFile(f.file_name, f.original_file_url) for f in spec.files]
        order = new_order(request, emulator, account, spec.order_name, files)
        if order.status == "inProgress":
            emulator.start_processing(order)
        return emulator.created_order(order)

    return await idempotent(request, emulator, account, create)


@router.post("/orders/anti-ai/confirm")
async def confirm_order(request: Request, emulator: Emu, account: Account) -> Response:
    """Start processing a pending order whose upload files are all uploaded."""
    return await confirm(request, emulator, account)


@router.post("/orders/webhooks")
async def add_webhook(request: Request, emulator: Emu, account: Account) -> Response:
    """Add a webhook; the answer holds its secret, shown this once."""
    body = validation.json_object(await request.body())
    url = validation.webhook_url(body)
    registration = emulator.webhooks.add(account, url, validation.webhook_name(body))
    data = {"id": registration.webhook_id, "name": registration.name}
    return reply(emulator, {**data, "secret": registration.secret})


@router.get("/orders/webhooks")
async def list_webhooks(emulator: Emu, account: Account) -> Response:
    """The account's webhooks (without their secrets)."""
    return reply(emulator, [_listed(r) for r in emulator.webhooks.listed(account)])


@router.delete("/orders/webhooks/{webhook_id}")
async def delete_webhook(webhook_id: str, emulator: Emu, account: Account) -> Response:
    """Delete one of the account's webhooks (404 ``WEBHOOK_NOT_FOUND`` if it has no such one)."""
    known = webhook_id.isascii() and webhook_id.isdigit()
    if not (known and emulator.webhooks.remove(account, int(webhook_id))):
        raise ApiError(404, "WEBHOOK_NOT_FOUND", f"webhook {webhook_id} not found")
    return reply(emulator, {"id": int(webhook_id)})


def _listed(registration: Registration) -> dict[str, Any]:
    """A webhook as listed: id, name and URL."""
    return {"id": registration.webhook_id, "name": registration.name, "url": registration.url}
