"""The emulator's HTTP API: MORI's primary (G1) endpoints, presigned storage and admin stats.

Routes: ``/api/v2/*`` (Bearer auth, per-key rate limit), ``/_s3/upload/{fileKey}`` and
``/_s3/result/{orderId}.zip`` (presigned, no auth, not rate limited) and ``/_emulator/stats``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.responses import Response

from mori.emulator import validation
from mori.emulator.config import EmulatorConfig
from mori.emulator.core import Emulator
from mori.emulator.guards import StoredResponse
from mori.emulator.middleware import FaultMiddleware
from mori.emulator.orders import NewFile, Order
from mori.emulator.presign import RESULT, UPLOAD, S3Error
from mori.emulator.responses import ApiError, dumps, json_response, success, timestamp
from mori.models import ConfirmedOrder, DownloadInfo, WebhookInfo, WebhookSecret

log = logging.getLogger(__name__)

IDEMPOTENCY_HEADER = "X-Idempotency-Key"
REPLAY_HEADER = "Idempotent-Replayed"


def create_app(config: EmulatorConfig, emulator: Emulator | None = None) -> FastAPI:
    """The emulator as an ASGI app; its state is ``app.state.emulator``."""
    emulator = emulator or Emulator(config)
    app = FastAPI(title="MORI API emulator", docs_url=None, redoc_url=None)
    app.state.emulator = emulator
    app.add_middleware(FaultMiddleware, emulator=emulator)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(S3Error, _s3_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
    app.include_router(api)
    app.include_router(storage)
    app.include_router(admin)
    return app


def emulator_of(request: Request) -> Emulator:
    """The emulator serving ``request``."""
    emulator: Emulator = request.app.state.emulator
    return emulator


async def authorize(request: Request) -> str:
    """The request's API key: 401 if missing or unknown, 429 over the rate limit."""
    emulator = emulator_of(request)
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or token not in emulator.config.api_keys:
        raise ApiError(401, "UNAUTHORIZED", "missing or invalid API key")
    retry_after = emulator.limiter.hit(token)
    if retry_after is not None:
        emulator.stats.incr("rate_limited")
        raise ApiError(
            429,
            "RATE_LIMIT_EXCEEDED",
            f"rate limit of {emulator.config.rpm} requests per minute exceeded",
            {"Retry-After": str(retry_after)},
        )
    return token


Emu = Annotated[Emulator, Depends(emulator_of)]
ApiKey = Annotated[str, Depends(authorize)]

api = APIRouter(prefix="/api/v2")
storage = APIRouter(prefix="/_s3")
admin = APIRouter(prefix="/_emulator")


# -- orders -----------------------------------------------------------------------------------


@api.post("/orders")
async def create_order(request: Request, emulator: Emu, api_key: ApiKey) -> Response:
    """Create an order whose files are uploaded to presigned URLs."""

    def create(body: Any) -> dict[str, Any]:
        spec = validation.create_request(body)
        files = [NewFile(f.file_name) for f in spec.files]
        order = _new_order(request, emulator, api_key, spec.order_name, files)
        return success(emulator.created_order(order))

    return await _idempotent(request, emulator, api_key, create)


@api.post("/orders/with-urls")
async def create_url_order(request: Request, emulator: Emu, api_key: ApiKey) -> Response:
    """Create an order from public URLs; it starts processing at once."""

    def create(body: Any) -> dict[str, Any]:
        spec = validation.url_request(body, emulator.config.url_allowlist)
        files = [NewFile(f.file_name, f.original_file_url) for f in spec.files]
        order = _new_order(request, emulator, api_key, spec.order_name, files)
        _start_processing(emulator, order)
        return success(emulator.created_order(order))

    return await _idempotent(request, emulator, api_key, create)


@api.post("/orders/confirm")
async def confirm_order(request: Request, emulator: Emu, api_key: ApiKey) -> Response:
    """Start processing a pending order whose files are all uploaded."""

    def confirm(body: Any) -> dict[str, Any]:
        spec = validation.confirm_request(body)
        order = _find(emulator, api_key, spec.order_id)
        emulator.orders.confirm(order)
        _start_processing(emulator, order)
        return success(ConfirmedOrder(order_id=order.order_id, status="inProgress"))

    return await _idempotent(request, emulator, api_key, confirm)


@api.get("/orders/{order_id}")
async def get_order(order_id: str, emulator: Emu, api_key: ApiKey) -> Response:
    """An order's information."""
    order = _find(emulator, api_key, order_id)
    return json_response(success(emulator.order_info(order)))


@api.get("/orders/{order_id}/download")
async def download_order(order_id: str, emulator: Emu, api_key: ApiKey) -> Response:
    """A presigned URL of a complete order's result archive."""
    order = _find(emulator, api_key, order_id)
    status = emulator.orders.status(order)
    if status == "expired":
        raise ApiError(410, "ORDER_EXPIRED", f"the results of order {order_id} have expired")
    if status != "complete":
        raise ApiError(
            409,
            "INVALID_ORDER_STATUS",
            f"order {order_id} is {status}; results can be downloaded once it is complete",
        )
    url, expires = emulator.download_url(order)
    return json_response(success(DownloadInfo(download_url=url, expires_at=timestamp(expires))))


# -- webhook registration ---------------------------------------------------------------------


@api.post("/webhook")
async def register_webhook(request: Request, emulator: Emu, api_key: ApiKey) -> Response:
    """Register (or replace) the key's webhook URL; answers a new signing secret."""
    url = validation.webhook_url(validation.parse_json(await request.body()))
    secret = emulator.webhooks.register(api_key, url)
    return json_response(success(WebhookSecret(secret=secret)))


@api.get("/webhook")
async def get_webhook(emulator: Emu, api_key: ApiKey) -> Response:
    """The key's webhook URL (``null`` when none is registered)."""
    info = WebhookInfo(url=emulator.webhooks.url(api_key))
    return json_response(success(info.model_dump(by_alias=True)))


@api.delete("/webhook")
async def delete_webhook(emulator: Emu, api_key: ApiKey) -> Response:
    """Remove the key's webhook URL."""
    emulator.webhooks.delete(api_key)
    return json_response(success(None, "webhook deleted"))


# -- presigned storage ------------------------------------------------------------------------


@storage.put("/upload/{file_key:path}")
async def upload_file(file_key: str, request: Request, emulator: Emu) -> Response:
    """Store one file's bytes (presigned PUT, like S3)."""
    query = request.query_params
    emulator.presigner.check("PUT", UPLOAD, file_key, query.get("expires"), query.get("sig"))
    emulator.orders.check_upload(file_key)
    data = await request.body()
    content_type = request.headers.get("content-type", "application/octet-stream")
    await run_in_threadpool(emulator.storage.put, file_key, data, content_type)
    emulator.orders.accept_upload(file_key)
    emulator.stats.incr("uploads")
    return Response(status_code=200, headers={"ETag": f'"{hashlib.md5(data).hexdigest()}"'})


@storage.get("/result/{name}")
async def get_result(name: str, request: Request, emulator: Emu) -> Response:
    """Serve a complete order's result zip (presigned GET, like S3)."""
    query = request.query_params
    emulator.presigner.check("GET", RESULT, name, query.get("expires"), query.get("sig"))
    order = emulator.orders.by_id(name.removesuffix(".zip"))
    if order is None or emulator.orders.status(order) != "complete":
        raise S3Error("NoSuchKey", "The specified key does not exist.", 404)
    data = await run_in_threadpool(emulator.storage.get, order.result_key)
    emulator.stats.incr("downloads")
    return Response(data, media_type="application/zip")


# -- admin ------------------------------------------------------------------------------------


@admin.get("/stats")
async def stats(emulator: Emu) -> Response:
    """Counters for tests, benchmarks and the demo (no auth)."""
    return json_response(emulator.stats.snapshot())


# -- helpers ----------------------------------------------------------------------------------


async def _idempotent(
    request: Request,
    emulator: Emulator,
    api_key: str,
    action: Callable[[Any], dict[str, Any]],
) -> Response:
    """Run ``action`` on the JSON body once per idempotency key; replay its answer after."""
    raw = await request.body()
    key = request.headers.get(IDEMPOTENCY_HEADER) or validation.body_idempotency_key(raw)
    if not key:
        raise ApiError(
            400, "IDEMPOTENCY_KEY_REQUIRED", f"the {IDEMPOTENCY_HEADER} header is required"
        )

    def compute() -> StoredResponse:
        return StoredResponse(200, dumps(action(validation.parse_json(raw))))

    stored, replayed = emulator.idempotency.run((api_key, request.url.path, key), compute)
    if replayed:
        emulator.stats.incr("idempotent_replays")
    headers = {REPLAY_HEADER: "true"} if replayed else None
    return Response(stored.body, stored.status, headers, media_type="application/json")


def _new_order(
    request: Request,
    emulator: Emulator,
    api_key: str,
    name: str | None,
    files: list[NewFile],
) -> Order:
    """Create and count a new order."""
    order = emulator.orders.create(
        api_key,
        validation.order_name(name, emulator.config.clock()),
        str(request.base_url),
        files,
    )
    emulator.stats.incr("orders_created")
    return order


def _start_processing(emulator: Emulator, order: Order) -> None:
    """Count the order as confirmed and hand it to the processing workers."""
    emulator.stats.incr("orders_confirmed")
    emulator.processor.submit(order)


def _find(emulator: Emulator, api_key: str, order_id: str) -> Order:
    """The key's order, or 404 ``ORDER_NOT_FOUND``."""
    order = emulator.orders.get(api_key, order_id)
    if order is None:
        raise ApiError(404, "ORDER_NOT_FOUND", f"order {order_id} not found")
    return order


async def _api_error(request: Request, exc: Exception) -> Response:
    """Render an :class:`ApiError`."""
    assert isinstance(exc, ApiError)
    return exc.response()


async def _s3_error(request: Request, exc: Exception) -> Response:
    """Render an :class:`S3Error` as S3 does (XML)."""
    assert isinstance(exc, S3Error)
    return Response(exc.xml(), exc.status, media_type="application/xml")


async def _validation_error(request: Request, exc: Exception) -> Response:
    """FastAPI's own parameter validation, as ``INVALID_REQUEST``."""
    return validation.invalid(f"invalid request: {exc}").response()


async def _http_error(request: Request, exc: Exception) -> Response:
    """Unknown routes and methods, in MORI's envelope."""
    assert isinstance(exc, HTTPException)
    code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(exc.status_code, "HTTP_ERROR")
    return ApiError(exc.status_code, code, str(exc.detail)).response()


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    """Anything unexpected: 500 ``INTERNAL_ERROR`` (logged)."""
    log.error("unexpected emulator error", exc_info=exc)
    return ApiError(500, "INTERNAL_ERROR", "internal server error").response()
