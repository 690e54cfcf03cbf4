"""MoriClient against httpx.MockTransport: keys and presigned URLs never reach logs or errors."""

from __future__ import annotations

import logging
from collections.abc import Callable

import httpx
import pytest

from mori import errors
from mori.client import MoriClient, redact_url
from mori.retry import RetryPolicy

from .helpers import API_KEY, Script, fail, ok

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


# -- secrets -----------------------------------------------------------------------------------

SECRET_URL = "https://user:SECRET@s3.test/bucket/temp/1/0/a.jpg?X-Amz-Signature=SECRET&sig=SECRET&expires=99#SECRET"


@pytest.mark.parametrize(
    "step",
    [
        httpx.Response(500, text="oops"),
        httpx.Response(
            403, text="<Error><Code>AccessDenied</Code><Message>SECRET</Message></Error>"
        ),
        httpx.ConnectError(f"failed connecting to {SECRET_URL}"),
        httpx.ReadTimeout(f"read timed out: {SECRET_URL}"),
    ],
    ids=["500", "403", "connect", "timeout"],
)
def test_presigned_secrets_never_leak(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture, step: httpx.Response | Exception
) -> None:
    caplog.set_level(logging.DEBUG)
    client = make_client(Script(step), retry=RetryPolicy(max_attempts=2, jitter=0))
    for call in (lambda: client.upload(SECRET_URL, b"x"), lambda: client.download(SECRET_URL)):
        with pytest.raises(errors.MoriError) as info:
            call()
        assert "SECRET" not in str(info.value)
        assert "SECRET" not in repr(info.value)
        assert "s3.test/bucket/temp/1/0/a.jpg" in str(info.value)
    assert caplog.records, "expected debug logs"
    assert "SECRET" not in caplog.text
    assert all("SECRET" not in r.getMessage() for r in caplog.records)


def test_httpx_request_log_is_redacted(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    make_client(Script(httpx.Response(200))).upload(SECRET_URL, b"x")
    httpx_records = [r for r in caplog.records if r.name == "httpx"]
    assert httpx_records and "s3.test" in httpx_records[0].getMessage()
    assert "SECRET" not in caplog.text


def test_api_key_never_leaks(make_client: MakeClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    script = Script(
        fail(401, "UNAUTHORIZED", message=f"unknown key {API_KEY}"),
        httpx.ConnectError(f"cannot send Bearer {API_KEY}"),
    )
    client = make_client(script, retry=None)
    for _ in range(2):
        with pytest.raises(errors.MoriError) as info:
            client.get_order("1")
        assert "SECRET" not in str(info.value)
        assert "SECRET" not in repr(info.value)
    assert "SECRET" not in repr(client)
    assert "SECRET" not in caplog.text


def test_invalid_response_data_does_not_quote_presigned_urls(make_client: MakeClient) -> None:
    data = {
        **CREATED,
        "orderId": {"nested": "https://s3.test/a?sig=SECRET"},
        "files": [{"fileId": ["x"], "uploadUrl": "https://s3.test/a?sig=SECRET"}],
    }
    with pytest.raises(errors.UnexpectedResponseError) as info:
        make_client(Script(ok(data))).create_order(["a.jpg"], idempotency_key=KEY)
    assert info.value.code == "INVALID_RESPONSE"
    assert "orderId" in str(info.value) and "files.0.fileId" in str(info.value)
    assert "SECRET" not in str(info.value) and "SECRET" not in repr(info.value)


def test_server_message_urls_are_redacted(make_client: MakeClient) -> None:
    script = Script(
        fail(400, "INVALID_REQUEST", message="cannot fetch https://pub.test/a.jpg?token=SECRET")
    )
    with pytest.raises(errors.BadRequestError) as info:
        make_client(script).create_url_order(
            [("a.jpg", "https://pub.test/a.jpg?token=SECRET")], idempotency_key=KEY
        )
    assert "https://pub.test/a.jpg" in info.value.message
    assert "SECRET" not in str(info.value)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://s3.test/b/k.jpg?X-Amz-Signature=abc&expires=1", "https://s3.test/b/k.jpg"),
        ("https://user:pw@host.test:8443/p?q=1#frag", "https://host.test:8443/p"),
        (
            "http://127.0.0.1:9000/_s3/upload/temp/1/0/a.jpg?sig=x",
            "http://127.0.0.1:9000/_s3/upload/temp/1/0/a.jpg",
        ),
        ("http://[::1]:8080/x?y", "http://[::1]:8080/x"),
        ("https://morimori.app", "https://morimori.app/"),
        ("/api/v2/orders?x=1", "/api/v2/orders"),
        (httpx.URL("https://h.test/p?sig=1"), "https://h.test/p"),
    ],
)
def test_redact_url(url: str | httpx.URL, expected: str) -> None:
    assert redact_url(url) == expected


@pytest.mark.parametrize(
    "url", ["http://[not-an-ip/x?sig=SECRET", "http://h.test:99999999/?sig=SECRET", "\x00?SECRET"]
)
def test_redact_url_never_returns_the_query_of_odd_urls(url: str) -> None:
    assert "SECRET" not in redact_url(url)
