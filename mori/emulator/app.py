"""The emulator's HTTP API: MORI's order endpoints of one generation, presigned storage, admin.

Routes: ``/api/v2/auth/login``; ``/api/v2/*`` (Bearer auth, per-account rate limit) of the
configured generation (:mod:`mori.emulator.routes_g1` or :mod:`mori.emulator.routes_g3`) and the
order and download routes both share; ``/_s3/upload/{fileKey}`` and
``/_s3/result/{orderId}.zip`` (presigned, no auth, not rate limited); ``/_emulator/stats``.
Routes of the other generation answer 404 ``NOT_FOUND`` in the error envelope.
"""

from __future__ import annotations

import hashlib
import logging

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.responses import Response

from mori.emulator import routes_g1, routes_g3, validation
from mori.emulator.config import EmulatorConfig, Generation
from mori.emulator.core import Emulator
from mori.emulator.middleware import FaultMiddleware
from mori.emulator.presign import RESULT, UPLOAD, S3Error
from mori.emulator.responses import ApiError, json_response, timestamp
from mori.emulator.routing import Account, Emu, emulator_of, find, reply
from mori.models import DownloadInfo

log = logging.getLogger(__name__)

ACCESS_TOKEN_HEADER = "accessToken"
_ROUTERS: dict[Generation, APIRouter] = {"g1": routes_g1.router, "g3": routes_g3.router}


def create_app(config: EmulatorConfig, emulator: Emulator | None = None) -> FastAPI:
    """The emulator as an ASGI app; its state is ``app.state.emulator``."""
    emulator = emulator or Emulator(config)
    generation = emulator.config.generation
    app = FastAPI(title="MORI API emulator", docs_url=None, redoc_url=None)
    app.state.emulator = emulator
    app.add_middleware(FaultMiddleware, emulator=emulator)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(S3Error, _s3_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
    for other, router in _ROUTERS.items():  # first, so no shared route answers for them
        if other != generation:
            _refuse_routes(app, router)
    app.include_router(_ROUTERS[generation])
    app.include_router(api)
    app.include_router(storage)
    app.include_router(admin)
    return app


api = APIRouter(prefix="/api/v2")
storage = APIRouter(prefix="/_s3")
admin = APIRouter(prefix="/_emulator")


# -- login and the routes of both generations -------------------------------------------------


@api.post("/auth/login")
async def login(request: Request, emulator: Emu) -> Response:
    """Log in with email and password: the access token in a header, the user and contract."""
    email, password = validation.login_request(validation.parse_json(await request.body()))
    token, account = emulator.accounts.login(email, password)
    data = emulator.accounts.login_data(account)
    return reply(emulator, data, "login successful", {ACCESS_TOKEN_HEADER: token})


@api.get("/orders/{order_id}")
async def get_order(order_id: str, emulator: Emu, account: Account) -> Response:
    """An order's information."""
    return reply(emulator, emulator.order_info(find(emulator, account, order_id)))


@api.get("/orders/{order_id}/download")
async def download_order(order_id: str, emulator: Emu, account: Account) -> Response:
    """A presigned URL of a complete order's result archive."""
    order = find(emulator, account, order_id)
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
    return reply(emulator, DownloadInfo(download_url=url, expires_at=timestamp(expires)))


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
    return json_response(emulator.snapshot())


# -- routes of the other generation and errors ------------------------------------------------


def _refuse_routes(app: FastAPI, router: APIRouter) -> None:
    """Answer every route of ``router`` with 404 ``NOT_FOUND``."""
    for route in router.routes:
        if isinstance(route, APIRoute):
            app.add_api_route(
                route.path, _not_served, methods=list(route.methods or ()), include_in_schema=False
            )


async def _not_served(request: Request) -> Response:
    """A route of the other API generation."""
    raise ApiError(
        404,
        "NOT_FOUND",
        f"{request.method} {request.url.path} is not part of this API "
        f"(it serves {_generation(request)})",
    )


def _generation(request: Request) -> Generation:
    """The generation whose envelope an error of ``request`` is rendered in."""
    return emulator_of(request).config.generation


async def _api_error(request: Request, exc: Exception) -> Response:
    """Render an :class:`ApiError`."""
    assert isinstance(exc, ApiError)
    return exc.response(_generation(request))


async def _s3_error(request: Request, exc: Exception) -> Response:
    """Render an :class:`S3Error` as S3 does (XML)."""
    assert isinstance(exc, S3Error)
    return Response(exc.xml(), exc.status, media_type="application/xml")


async def _validation_error(request: Request, exc: Exception) -> Response:
    """FastAPI's own parameter validation, as ``INVALID_REQUEST``."""
    return validation.invalid(f"invalid request: {exc}").response(_generation(request))


async def _http_error(request: Request, exc: Exception) -> Response:
    """Unknown routes and methods, in MORI's envelope."""
    assert isinstance(exc, HTTPException)
    code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(exc.status_code, "HTTP_ERROR")
    return ApiError(exc.status_code, code, str(exc.detail)).response(_generation(request))


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    """Anything unexpected: 500 ``INTERNAL_ERROR`` (logged)."""
    log.error("unexpected emulator error", exc_info=exc)
    return ApiError(500, "INTERNAL_ERROR", "internal server error").response(_generation(request))
