"""Pieces every route module shares: the request's emulator and account, the generation's
envelope, idempotent execution and order bookkeeping."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from pydantic import BaseModel
from starlette.responses import Response

from mori.emulator import validation
from mori.emulator.core import Emulator
from mori.emulator.guards import StoredResponse
from mori.emulator.orders import NewFile, Order
from mori.emulator.responses import ApiError, answer, dumps, json_response
from mori.models import ConfirmedOrder

IDEMPOTENCY_HEADER = "X-Idempotency-Key"
REPLAY_HEADER = "Idempotent-Replayed"
BODY_IDEMPOTENCY_KEY = "idempotencyKey"


def emulator_of(request: Request) -> Emulator:
    """The emulator serving ``request``."""
    emulator: Emulator = request.app.state.emulator
    return emulator


async def authorize(request: Request) -> str:
    """The request's account (an API key): 401 if unknown or expired, 429 over the rate limit."""
    emulator = emulator_of(request)
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise ApiError(401, "UNAUTHORIZED", "missing or invalid API key")
    account = emulator.accounts.authenticate(token)
    retry_after = emulator.limiter.hit(account)
    if retry_after is not None:
        emulator.stats.incr("rate_limited")
        raise ApiError(
            429,
            "RATE_LIMIT_EXCEEDED",
            f"rate limit of {emulator.config.rpm} requests per minute exceeded",
            {"Retry-After": str(retry_after)},
        )
    return account


Emu = Annotated[Emulator, Depends(emulator_of)]
Account = Annotated[str, Depends(authorize)]


def reply(
    emulator: Emulator,
    data: BaseModel | dict[str, Any] | list[Any] | None,
    message: str = "ok",
    headers: dict[str, str] | None = None,
) -> Response:
    """A 200 answer in the envelope of the emulator's generation."""
    return json_response(answer(emulator.config.generation, data, message), headers=headers)


async def idempotent(
    request: Request,
    emulator: Emulator,
    account: str,
    action: Callable[[Any], BaseModel],
) -> Response:
    """Run ``action`` on the JSON body once per idempotency key; replay its answer after.

    ``g1`` takes the key from ``X-Idempotency-Key`` (else the body's ``idempotencyKey``);
    ``g3`` only from the body's ``idempotencyKey``.
    """
    raw = await request.body()
    generation = emulator.config.generation
    body: dict[str, Any] | None = None
    if generation == "g3":
        body = validation.json_object(raw)
        key = _body_key(body)
    else:
        key = _header_key(request, raw)

    def compute() -> StoredResponse:
        parsed = body if body is not None else validation.parse_json(raw)
        return StoredResponse(200, dumps(answer(generation, action(parsed))))

    stored, replayed = emulator.idempotency.run((account, request.url.path, key), compute)
    if replayed:
        emulator.stats.incr("idempotent_replays")
    headers = {REPLAY_HEADER: "true"} if replayed else None
    return Response(stored.body, stored.status, headers, media_type="application/json")


def _body_key(body: dict[str, Any]) -> str:
    """The body's ``idempotencyKey`` (``g3``), or 400 ``IDEMPOTENCY_KEY_REQUIRED``."""
    key = validation.idempotency_key_of(body)
    if not key:
        raise ApiError(
            400,
            "IDEMPOTENCY_KEY_REQUIRED",
            f"the body's {BODY_IDEMPOTENCY_KEY} is required",
            errors={"propertyName": BODY_IDEMPOTENCY_KEY, "message": "is required"},
        )
    return key


def _header_key(request: Request, raw: bytes) -> str:
    """The ``X-Idempotency-Key`` header, else the body's key (``g1``); 400 if neither."""
    key = request.headers.get(IDEMPOTENCY_HEADER) or validation.body_idempotency_key(raw)
    if not key:
        raise ApiError(
            400, "IDEMPOTENCY_KEY_REQUIRED", f"the {IDEMPOTENCY_HEADER} header is required"
        )
    return key


def new_order(
    request: Request,
    emulator: Emulator,
    account: str,
    name: str | None,
    files: list[NewFile],
) -> Order:
    """Create and count a new order (403 when it would pass an enforced usage limit)."""
    if emulator.config.enforce_usage_limit:
        emulator.accounts.check_quota(account, len(files))
    order = emulator.orders.create(
        account,
        validation.order_name(name, emulator.config.clock()),
        str(request.base_url),
        files,
    )
    emulator.stats.incr("orders_created")
    return order


def find(emulator: Emulator, account: str, order_id: str) -> Order:
    """The account's order, or 404 ``ORDER_NOT_FOUND``."""
    order = emulator.orders.get(account, order_id)
    if order is None:
        raise ApiError(404, "ORDER_NOT_FOUND", f"order {order_id} not found")
    return order


async def confirm(request: Request, emulator: Emulator, account: str) -> Response:
    """Start processing a pending order whose upload files are all uploaded (both generations'
    confirm routes; the idempotency key comes as each generation sends it)."""

    def action(body: Any) -> BaseModel:
        spec = validation.confirm_request(body)
        order = find(emulator, account, spec.order_id)
        emulator.orders.confirm(order)
        emulator.start_processing(order)
        return ConfirmedOrder(order_id=order.order_id, status="inProgress")

    return await idempotent(request, emulator, account, action)
