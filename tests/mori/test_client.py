"""MoriClient against httpx.MockTransport: requests, parsing, error mapping, construction."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from pydantic import SecretStr

from mori import errors
from mori.client import MoriClient
from mori.models import FileSpec, UrlFileSpec
from mori.ratelimit import RateLimiter
from mori.retry import RetryPolicy
from mori.settings import Settings
from tests.support.clock import FakeTime

from .helpers import API_KEY, BASE_URL, CountingLimiter, Script, fail, ok

MakeClient = Callable[..., MoriClient]

CREATED = {
    "orderId": "123456789",
    "orderName": "anti_ai_2026-02-19",
    "status": "pending",
    "files": [
        {
            "fileId": 1,
            "fileName": "a.jpg",
            "uploadUrl": "https://s3.test/temp/123456789/0/a.jpg?sig=abc",
            "fileKey": "temp/123456789/0/a.jpg",
        }
    ],
}
KEY = "2f1c9c4e-0000-5000-8000-000000000001"


# -- requests and parsing ----------------------------------------------------------------------


def test_create_order_request_and_response(make_client: MakeClient) -> None:
    script = Script(ok(CREATED))
    order = make_client(script).create_order(
        ["a.jpg", FileSpec(fileName="b.png")], idempotency_key=KEY
    )

    req = script.last
    assert req.method == "POST"
    assert req.url == f"{BASE_URL}/api/v2/orders"
    assert req.headers["Authorization"] == f"Bearer {API_KEY}"
    assert req.headers["X-Idempotency-Key"] == KEY
    assert req.headers["Content-Type"] == "application/json"
    assert json.loads(req.content) == {"files": [{"fileName": "a.jpg"}, {"fileName": "b.png"}]}
    assert order.order_id == "123456789"
    assert order.status == "pending"
    assert order.files[0].upload_url == CREATED["files"][0]["uploadUrl"]  # type: ignore[index]
    assert order.files[0].file_key == "temp/123456789/0/a.jpg"


def test_create_order_sends_order_name_and_options_only_when_given(make_client: MakeClient) -> None:
    script = Script(ok(CREATED))
    client = make_client(script)
    client.create_order(
        ["a.jpg"], idempotency_key=KEY, order_name="batch-1", options={"strength": "high"}
    )
    client.create_order(["a.jpg"], idempotency_key=KEY, options={})
    assert script.bodies() == [
        {"files": [{"fileName": "a.jpg"}], "orderName": "batch-1", "options": {"strength": "high"}},
        {"files": [{"fileName": "a.jpg"}], "options": {}},
    ]


@pytest.mark.parametrize("envelope", [True, False], ids=["envelope", "data-only"])
def test_response_parsed_with_and_without_success_message(
    make_client: MakeClient, envelope: bool
) -> None:
    order = make_client(Script(ok(CREATED, envelope=envelope))).create_order(
        ["a.jpg"], idempotency_key=KEY
    )
    assert order.order_id == "123456789"


def test_created_order_accepts_order_files_alias(make_client: MakeClient) -> None:
    data = {**CREATED, "orderFiles": CREATED["files"]}
    del data["files"]
    order = make_client(Script(ok(data))).create_order(["a.jpg"], idempotency_key=KEY)
    assert [f.file_name for f in order.files] == ["a.jpg"]


def test_create_url_order(make_client: MakeClient) -> None:
    script = Script(ok({**CREATED, "status": "inProgress", "files": []}))
    order = make_client(script).create_url_order(
        [
            ("a.jpg", "https://pub.test/a.jpg"),
            UrlFileSpec(fileName="b.png", originalFileUrl="https://pub.test/b"),
        ],
        idempotency_key=KEY,
        order_name="urls",
    )
    req = script.last
    assert (req.method, req.url.path) == ("POST", "/api/v2/orders/with-urls")
    assert req.headers["X-Idempotency-Key"] == KEY
    assert json.loads(req.content) == {
        "files": [
            {"fileName": "a.jpg", "originalFileUrl": "https://pub.test/a.jpg"},
            {"fileName": "b.png", "originalFileUrl": "https://pub.test/b"},
        ],
        "orderName": "urls",
    }
    assert order.status == "inProgress"


def test_confirm_order(make_client: MakeClient) -> None:
    script = Script(ok({"orderId": "123", "status": "inProgress"}))
    confirmed = make_client(script).confirm_order("123", idempotency_key="confirm-key")
    req = script.last
    assert (req.method, req.url.path) == ("POST", "/api/v2/orders/confirm")
    assert req.headers["X-Idempotency-Key"] == "confirm-key"
    assert req.headers["Authorization"] == f"Bearer {API_KEY}"
    assert json.loads(req.content) == {"orderId": "123"}
    assert (confirmed.order_id, confirmed.status) == ("123", "inProgress")


def test_get_order(make_client: MakeClient) -> None:
    data = {
        "orderId": "123",
        "orderName": "n",
        "type": "antiAi",
        "channel": "api",
        "status": "complete",
        "fileCount": 3,
        "createdAt": "2026-02-19T11:50:00.000Z",
        "updatedAt": "2026-02-19T12:00:00.000Z",
        "errors": [],
    }
    script = Script(ok(data))
    info = make_client(script).get_order("123")
    req = script.last
    assert (req.method, req.url.path) == ("GET", "/api/v2/orders/123")
    assert "X-Idempotency-Key" not in req.headers
    assert req.headers["Authorization"] == f"Bearer {API_KEY}"
    assert req.content == b""
    assert info.status == "complete"
    assert info.file_count == 3
    assert info.created_at == datetime(2026, 2, 19, 11, 50, tzinfo=UTC)


def test_order_id_is_quoted_as_one_path_segment(make_client: MakeClient) -> None:
    script = Script(ok({"orderId": "a/b", "status": "pending"}))
    make_client(script).get_order("a/b")
    assert script.last.url.raw_path == b"/api/v2/orders/a%2Fb"
    with pytest.raises(ValueError):
        make_client(script).get_order("")


def test_get_download(make_client: MakeClient) -> None:
    script = Script(
        ok({"downloadUrl": "https://s3.test/r.zip?sig=x", "expiresAt": "2026-02-19T12:30:00.000Z"})
    )
    info = make_client(script).get_download("123")
    assert (script.last.method, script.last.url.path) == ("GET", "/api/v2/orders/123/download")
    assert info.download_url == "https://s3.test/r.zip?sig=x"
    assert info.expires_at == datetime(2026, 2, 19, 12, 30, tzinfo=UTC)


def test_webhook_endpoints(make_client: MakeClient) -> None:
    script = Script(
        ok({"secret": "whsec"}),
        ok({"url": "https://hooks.test/mori"}),
        ok({"url": None}),
        ok(),
        httpx.Response(204),
    )
    client = make_client(script)
    assert client.register_webhook("https://hooks.test/mori").secret == "whsec"
    assert client.get_webhook().url == "https://hooks.test/mori"
    assert client.get_webhook().url is None
    client.delete_webhook()  # envelope without data
    client.delete_webhook()  # 204, empty body
    assert [(r.method, r.url.path) for r in script.requests] == [
        ("POST", "/api/v2/webhook"),
        ("GET", "/api/v2/webhook"),
        ("GET", "/api/v2/webhook"),
        ("DELETE", "/api/v2/webhook"),
        ("DELETE", "/api/v2/webhook"),
    ]
    assert json.loads(script.requests[0].content) == {"url": "https://hooks.test/mori"}
    assert all(r.headers["Authorization"] == f"Bearer {API_KEY}" for r in script.requests)


def test_no_authorization_header_without_api_key(make_client: MakeClient) -> None:
    script = Script(ok({"url": None}))
    make_client(script, api_key=None).get_webhook()
    assert "Authorization" not in script.last.headers


def test_upload_puts_raw_bytes_without_auth(make_client: MakeClient) -> None:
    script = Script(httpx.Response(200))
    limiter = CountingLimiter()
    url = "https://s3.test/_s3/upload/temp/1/0/a.jpg?expires=9&sig=abc"
    make_client(script, rate_limiter=limiter).upload(
        url, b"\xff\xd8bytes", content_type="image/jpeg"
    )
    req = script.last
    assert req.method == "PUT"
    assert str(req.url) == url
    assert req.content == b"\xff\xd8bytes"
    assert req.headers["Content-Type"] == "image/jpeg"
    assert "Authorization" not in req.headers
    assert limiter.calls == 0  # presigned storage calls are not rate-limited


def test_download_gets_bytes_without_auth(make_client: MakeClient) -> None:
    script = Script(httpx.Response(200, content=b"PK\x03\x04zip"))
    assert make_client(script).download("https://s3.test/r.zip?sig=abc") == b"PK\x03\x04zip"
    assert script.last.method == "GET"
    assert "Authorization" not in script.last.headers


def test_malformed_presigned_url_is_a_mori_error_without_its_query(make_client: MakeClient) -> None:
    with pytest.raises(errors.MoriError) as info:
        make_client(Script(httpx.Response(200))).upload("http://h.test:abc/k?sig=SECRET", b"x")
    assert "SECRET" not in str(info.value)
    assert not info.value.retryable


def test_empty_idempotency_key_is_rejected_before_sending(make_client: MakeClient) -> None:
    script = Script(ok(CREATED))
    with pytest.raises(ValueError):
        make_client(script).create_order(["a.jpg"], idempotency_key=" ")
    assert script.requests == []


# -- error mapping -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (400, "INVALID_REQUEST", errors.BadRequestError),
        (400, "FILES_NOT_UPLOADED", errors.BadRequestError),
        (401, "UNAUTHORIZED", errors.AuthenticationError),
        (404, "ORDER_NOT_FOUND", errors.NotFoundError),
        (409, "INVALID_ORDER_STATUS", errors.ConflictError),
        (410, "ORDER_EXPIRED", errors.GoneError),
        (418, None, errors.APIStatusError),
        (429, "RATE_LIMIT_EXCEEDED", errors.RateLimitedError),
        (408, None, errors.ServerError),
        (500, "INTERNAL_ERROR", errors.ServerError),
        (503, None, errors.ServerError),
    ],
)
def test_status_mapping(
    make_client: MakeClient, status: int, code: str | None, cls: type[errors.APIStatusError]
) -> None:
    script = Script(fail(status, code, message="MORI says no"))
    with pytest.raises(errors.APIStatusError) as info:
        make_client(script, retry=None).create_order(["a.jpg"], idempotency_key=KEY)
    exc = info.value
    assert type(exc) is cls
    assert (exc.status_code, exc.code, exc.message) == (status, code, "MORI says no")
    assert exc.idempotency_key == KEY
    assert exc.endpoint == "create_order"
    assert f"HTTP {status}" in str(exc)


def test_success_false_on_200_is_an_error(make_client: MakeClient) -> None:
    script = Script(fail(200, "SOMETHING", message="not really"))
    with pytest.raises(errors.APIStatusError) as info:
        make_client(script).get_order("1")
    assert (info.value.status_code, info.value.code, info.value.retryable) == (
        200,
        "SOMETHING",
        False,
    )
    assert len(script.requests) == 1


def test_nested_error_object_is_tolerated(make_client: MakeClient) -> None:
    script = Script(
        httpx.Response(404, json={"error": {"code": "ORDER_NOT_FOUND", "message": "gone"}})
    )
    with pytest.raises(errors.NotFoundError) as info:
        make_client(script).get_order("1")
    assert (info.value.code, info.value.message) == ("ORDER_NOT_FOUND", "gone")


def test_non_json_error_body(make_client: MakeClient) -> None:
    script = Script(httpx.Response(502, text="<html>Bad Gateway</html>"))
    with pytest.raises(errors.ServerError) as info:
        make_client(script, retry=None).get_order("1")
    assert info.value.code is None
    assert "non-JSON" in info.value.message


def test_non_json_success_body_is_an_unexpected_response(make_client: MakeClient) -> None:
    script = Script(httpx.Response(200, text="hello"))
    with pytest.raises(errors.UnexpectedResponseError) as info:
        make_client(script).create_order(["a.jpg"], idempotency_key=KEY)
    assert info.value.code == "INVALID_RESPONSE"
    assert (info.value.endpoint, info.value.idempotency_key) == ("create_order", KEY)
    assert not info.value.retryable
    assert len(script.requests) == 1


def test_rate_limited_with_retry_after_seconds(make_client: MakeClient) -> None:
    script = Script(fail(429, "RATE_LIMIT_EXCEEDED", **{"Retry-After": "7"}))
    client = make_client(script, retry=None)
    with pytest.raises(errors.RateLimitedError) as info:
        client.get_order("1")
    assert info.value.retry_after == 7.0
    assert info.value.retryable
    assert client.stats.rate_limited == 1


def test_rate_limited_with_retry_after_http_date(make_client: MakeClient) -> None:
    server_now = datetime(2026, 2, 19, 12, 0, tzinfo=UTC)
    headers = {
        "Date": format_datetime(server_now, usegmt=True),
        "Retry-After": format_datetime(server_now + timedelta(seconds=30), usegmt=True),
    }
    script = Script(fail(429, "RATE_LIMIT_EXCEEDED", **headers))
    with pytest.raises(errors.RateLimitedError) as info:
        make_client(script, retry=None).get_order("1")
    assert info.value.retry_after == 30.0


def test_rate_limited_with_invalid_retry_after(make_client: MakeClient) -> None:
    script = Script(fail(429, None, **{"Retry-After": "soon"}))
    with pytest.raises(errors.RateLimitedError) as info:
        make_client(script, retry=None).get_order("1")
    assert info.value.retry_after is None


@pytest.mark.parametrize(
    ("raised", "cls"),
    [
        (httpx.ReadTimeout("timed out"), errors.TimeoutError),
        (httpx.ConnectTimeout("timed out"), errors.TimeoutError),
        (httpx.PoolTimeout("timed out"), errors.TimeoutError),
        (
            httpx.RemoteProtocolError("Server disconnected without sending a response."),
            errors.TransportError,
        ),
        (httpx.ReadError("[Errno 104] Connection reset by peer"), errors.TransportError),
        (httpx.ConnectError("[Errno 111] Connection refused"), errors.TransportError),
    ],
)
def test_transport_failures(
    make_client: MakeClient, raised: Exception, cls: type[errors.MoriError]
) -> None:
    with pytest.raises(errors.TransportError) as info:
        make_client(Script(raised), retry=None).create_order(["a.jpg"], idempotency_key=KEY)
    assert type(info.value) is cls
    assert info.value.retryable
    assert info.value.__cause__ is None


def test_presigned_403_is_url_expired_and_not_retried(make_client: MakeClient) -> None:
    script = Script(httpx.Response(403, text="<Error><Code>AccessDenied</Code></Error>"))
    client = make_client(script, retry=RetryPolicy(jitter=0))
    with pytest.raises(errors.URLExpiredError) as info:
        client.upload("https://s3.test/k?sig=abc", b"x")
    assert info.value.status_code == 403
    assert not info.value.retryable
    assert "AccessDenied" in str(info.value)
    assert len(script.requests) == 1
    with pytest.raises(errors.URLExpiredError):
        client.download("https://s3.test/k?sig=abc")


def test_presigned_5xx_is_retried(make_client: MakeClient, fake_time: FakeTime) -> None:
    script = Script(httpx.Response(500), httpx.Response(503), httpx.Response(200))
    client = make_client(script)
    client.upload("https://s3.test/k?sig=abc", b"x")
    assert len(script.requests) == 3
    assert fake_time.sleeps == [0.5, 1.0]
    assert client.stats.retries == {"upload": 2}


def test_presigned_400_fails_at_once(make_client: MakeClient) -> None:
    script = Script(httpx.Response(400))
    with pytest.raises(errors.PresignedURLError) as info:
        make_client(script).download("https://s3.test/k?sig=abc")
    assert type(info.value) is errors.PresignedURLError
    assert len(script.requests) == 1


# -- construction ------------------------------------------------------------------------------


def test_from_env() -> None:
    env = {
        "MORI_API_URL": "http://127.0.0.1:8000",
        "MORI_API_KEY": "sk-env",
        "MORI_RATE_LIMIT_RPM": "300",
    }
    with MoriClient.from_env(env) as client:
        assert client.base_url == "http://127.0.0.1:8000"
        assert isinstance(client.rate_limiter, RateLimiter)
        assert client.rate_limiter.rpm == 300
        assert "sk-env" not in repr(client)
    with MoriClient.from_env({}) as client:
        assert client.base_url == "https://morimori.app"
        assert client.rate_limiter is None
    with MoriClient.from_env({"MORI_RATE_LIMIT_RPM": "0"}) as client:
        assert client.rate_limiter is None
    with pytest.raises(ValueError, match="rate_limit_rpm"):
        MoriClient.from_env({"MORI_RATE_LIMIT_RPM": "lots"})


def test_from_env_reads_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MORI_API_URL", "http://env.test")
    monkeypatch.delenv("MORI_RATE_LIMIT_RPM", raising=False)
    with MoriClient.from_env(timeout=5.0) as client:
        assert client.base_url == "http://env.test"
        assert client.timeout == 5.0


def test_from_env_with_a_mapping_reads_only_the_mapping(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MORI_API_URL", "http://env.test")
    monkeypatch.setenv("MORI_API_GENERATION", "g3")
    with MoriClient.from_env({"MORI_TIMEOUT_SECONDS": "7"}) as client:
        assert (client.base_url, client.generation, client.timeout) == (
            "https://morimori.app",
            "g1",
            7.0,
        )


def test_from_settings(fake_time: FakeTime) -> None:
    settings = Settings(
        api_url="http://mori.test/",
        api_key=SecretStr("sk-SECRET"),
        api_generation="g3",
        timeout_seconds=12,
        rate_limit_rpm=60,
    )
    script = Script(ok({"orderId": "1", "status": "pending"}))
    with MoriClient.from_settings(
        settings, transport=httpx.MockTransport(script), clock=fake_time.clock
    ) as client:
        client.get_order("1")
        assert (client.base_url, client.generation, client.timeout) == (
            "http://mori.test",
            "g3",
            12,
        )
        assert isinstance(client.rate_limiter, RateLimiter) and client.rate_limiter.rpm == 60
        assert "SECRET" not in repr(client)
    assert script.last.headers["Authorization"] == "Bearer sk-SECRET"
    assert str(script.last.url) == "http://mori.test/api/v2/orders/1"


def test_from_settings_kwargs_win() -> None:
    settings = Settings(api_key=SecretStr("sk-a"), rate_limit_rpm=300, timeout_seconds=9)
    limiter = RateLimiter(None)
    with MoriClient.from_settings(
        settings, base_url="http://other.test", rate_limiter=limiter, timeout=2.0
    ) as client:
        assert (client.base_url, client.rate_limiter, client.timeout) == (
            "http://other.test",
            limiter,
            2.0,
        )


def test_from_settings_with_a_login() -> None:
    settings = Settings(email="a@b.c", password=SecretStr("pw-SECRET"))
    with MoriClient.from_settings(settings) as client:
        assert "token" in repr(client) and "SECRET" not in repr(client)
    with pytest.raises(errors.ConfigurationError):
        MoriClient.from_settings(settings.model_copy(update={"api_generation": "g3"}))


def test_context_manager_closes() -> None:
    with MoriClient("http://x.test", transport=httpx.MockTransport(Script(ok()))) as client:
        assert not client.is_closed
    assert client.is_closed
    with MoriClient("http://x.test") as sharded:  # the network: several pools, all closed
        assert not sharded.is_closed
    assert sharded.is_closed
