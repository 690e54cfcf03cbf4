"""Preflight: every cause with a scripted transport, the network causes for real."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from mori import errors
from mori._auth import TokenCache
from mori.client import MoriClient
from mori.retry import RetryPolicy

from .servers import JSONServer, PlainReplyServer, closed_port

MakeClient = Callable[..., MoriClient]

NOT_FOUND = httpx.Response(404, json={"success": False, "code": "ORDER_NOT_FOUND", "message": "x"})
KEY_REQUIRED = httpx.Response(400, json={"code": "IDEMPOTENCY_KEY_REQUIRED", "message": "key"})
ROUTE_UNKNOWN = httpx.Response(404, json={"detail": "Not Found"})


class Routes:
    """Answers by (method, path); records every request."""

    def __init__(self, answers: dict[tuple[str, str], httpx.Response]) -> None:
        self.answers = answers
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answers.get((request.method, request.url.path), ROUTE_UNKNOWN)


def mori(generation: str = "g1", **overrides: httpx.Response) -> Routes:
    """A healthy MORI of ``generation``; ``get=``/``confirm=``/``login=`` replace an answer."""
    confirm = "/api/v2/orders/confirm" if generation == "g1" else "/api/v2/orders/anti-ai/confirm"
    answers = {
        ("GET", "/api/v2/orders/0"): overrides.get("get", NOT_FOUND),
        ("POST", confirm): overrides.get("confirm", KEY_REQUIRED),
        ("POST", "/api/v2/auth/login"): overrides.get(
            "login", httpx.Response(200, json={"data": {}}, headers={"accessToken": "tok"})
        ),
    }
    return Routes(answers)


@pytest.mark.parametrize("generation", ["g1", "g3"])
@pytest.mark.parametrize(
    "get",
    [NOT_FOUND, httpx.Response(200, json={"data": {"orderId": "0", "status": "pending"}})],
    ids=["404", "200"],
)
def test_a_healthy_mori_passes(
    make_client: MakeClient, generation: str, get: httpx.Response
) -> None:
    routes = mori(generation, get=get)
    make_client(routes, generation=generation).preflight()
    get_req, confirm_req = routes.requests
    assert get_req.headers["Authorization"] == "Bearer sk-SECRET"
    assert json.loads(confirm_req.content) == {}
    assert "X-Idempotency-Key" not in confirm_req.headers


def test_confirm_answering_order_not_found_is_fine(make_client: MakeClient) -> None:
    make_client(mori(confirm=NOT_FOUND)).preflight()


R = httpx.Response


@pytest.mark.parametrize(
    ("overrides", "cause", "fix", "passing"),
    [
        ({"get": R(401, json={"code": "UNAUTHORIZED"})}, "unauthorized", "MORI_API_KEY", False),
        ({"get": R(403, json={"code": "FORBIDDEN"})}, "forbidden", "MORI_API_KEY", False),
        ({"confirm": ROUTE_UNKNOWN}, "wrong_generation", "MORI_API_GENERATION=g3", False),
        ({"confirm": R(405)}, "wrong_generation", "MORI_API_GENERATION=g3", False),
        ({"confirm": R(401)}, "unauthorized", "MORI_API_KEY", False),
        ({"get": R(404, text="<html>nope</html>")}, "unexpected", "MORI_API_URL", False),
        ({"get": R(503)}, "unexpected", "later", True),
        ({"get": R(429)}, "unexpected", "wait", True),
        ({"get": R(302)}, "unexpected", "MORI_API_URL", False),
    ],
    ids=["401", "403", "g3-server", "405", "confirm-401", "not-mori", "503", "429", "redirect"],
)
def test_causes(
    make_client: MakeClient,
    overrides: dict[str, httpx.Response],
    cause: str,
    fix: str,
    passing: bool,
) -> None:
    routes = mori(**overrides)
    with pytest.raises(errors.PreflightError) as info:
        make_client(routes, retry=RetryPolicy()).preflight()
    assert (info.value.cause, fix in info.value.fix) == (cause, True)
    assert info.value.passing is passing  # a fault a later attempt may not meet
    assert len(routes.requests) <= 2  # one attempt each, no retries
    assert "SECRET" not in str(info.value)


def test_a_g3_client_on_a_g1_server(make_client: MakeClient) -> None:
    with pytest.raises(errors.PreflightError) as info:
        make_client(mori("g1"), generation="g3").preflight()
    assert (info.value.cause, info.value.fix) == ("wrong_generation", "set MORI_API_GENERATION=g1")


@pytest.mark.parametrize(
    ("login", "cause", "fix", "passing"),
    [
        (
            httpx.Response(401, json={"code": "INVALID_CREDENTIALS"}),
            "unauthorized",
            "MORI_EMAIL",
            False,
        ),
        (httpx.Response(200, json={"data": {}}), "unexpected", "MORI_API_URL", False),
        (httpx.Response(500), "unexpected", "later", True),
    ],
    ids=["refused", "no-token", "500"],
)
def test_sign_in_failures(
    make_client: MakeClient, login: httpx.Response, cause: str, fix: str, passing: bool
) -> None:
    routes = mori(login=login)
    client = make_client(
        routes, api_key=None, email="a@b.c", password="pw-SECRET", token_cache=TokenCache()
    )
    with pytest.raises(errors.PreflightError) as info:
        client.preflight()
    assert info.value.cause == cause and fix in info.value.fix
    assert info.value.passing is passing
    assert [r.url.path for r in routes.requests] == ["/api/v2/auth/login"]
    assert "SECRET" not in str(info.value)


def test_a_token_client_signs_in_first(make_client: MakeClient) -> None:
    routes = mori()
    client = make_client(
        routes, api_key=None, email="a@b.c", password="pw", token_cache=TokenCache()
    )
    client.preflight()
    assert routes.requests[0].url.path == "/api/v2/auth/login"
    assert routes.requests[1].headers["Authorization"] == "Bearer tok"


def test_a_transport_timeout(make_client: MakeClient) -> None:
    def hang(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("timed out")

    with pytest.raises(errors.PreflightError) as info:
        make_client(hang).preflight()
    assert info.value.cause == "timeout" and "MORI_API_URL" in info.value.fix
    assert info.value.passing


def test_a_dropped_connection_is_passing(make_client: MakeClient) -> None:
    def drop(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("Server disconnected without sending a response.")

    with pytest.raises(errors.PreflightError) as info:
        make_client(drop).preflight()
    assert info.value.cause == "unexpected" and info.value.passing


# -- the network, for real ---------------------------------------------------------------------


def _real_preflight(url: str, **kwargs: Any) -> tuple[errors.PreflightError, float]:
    started = time.monotonic()
    with (
        MoriClient(url, "sk-SECRET", retry=RetryPolicy(), **kwargs) as client,
        pytest.raises(errors.PreflightError) as info,
    ):
        client.preflight()
    return info.value, time.monotonic() - started


def test_dns() -> None:
    error, elapsed = _real_preflight("http://nonexistent.invalid")
    assert (error.cause, error.fix) == ("dns", "check MORI_API_URL: its host name does not resolve")
    assert elapsed < 10


def test_refused() -> None:
    error, elapsed = _real_preflight(f"http://127.0.0.1:{closed_port()}")
    assert error.cause == "refused" and "MORI_API_URL" in error.fix
    assert elapsed < 10


def test_tls_to_a_plain_http_server() -> None:
    with PlainReplyServer() as server:
        error, elapsed = _real_preflight(f"https://127.0.0.1:{server.port}")
    assert error.cause == "tls" and "https://" in error.fix
    assert elapsed < 10


def test_a_real_server_of_the_other_generation() -> None:
    def answer(method: str, path: str, body: bytes, headers: dict[str, str]) -> tuple:
        if (method, path) == ("GET", "/api/v2/orders/0"):
            return 404, {}, {"code": "ORDER_NOT_FOUND", "message": "no such order"}
        if (method, path) == ("POST", "/api/v2/orders/confirm"):
            return 400, {}, {"code": "IDEMPOTENCY_KEY_REQUIRED", "message": "key"}
        return 404, {}, {"message": "Cannot POST"}

    with JSONServer(answer) as server:
        with MoriClient(server.url, "k") as g1:
            g1.preflight()
        error, _ = _real_preflight(server.url, generation="g3")
    assert error.cause == "wrong_generation"
