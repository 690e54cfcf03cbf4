"""Tolerant parsing: envelopes x id types x files/orderFiles x unknown fields x unknown status;
error bodies with details; answers that cannot be understood after MORI may have acted."""

from __future__ import annotations

import itertools
import logging
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from mori import errors
from mori.client import MoriClient
from mori.models import KNOWN_ORDER_STATUSES

from .helpers import Script

MakeClient = Callable[..., MoriClient]
KEY = "order-key-1"


def _envelope(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    """``data`` wrapped the way a server of each style sends it."""
    if kind == "full":
        return {"success": True, "message": "ok", "data": data, "meta": {"requestId": "r"}}
    if kind == "data-only":
        return {"data": data}
    return dict(data)  # bare: the fields at the top level, no data key


ENVELOPES = ["full", "data-only", "bare"]
ID_TYPES = {"string": "123456789", "number": 123456789}
FILE_KEYS = ["files", "orderFiles"]
EXTRAS = {"none": {}, "unknown": {"planet": "mars", "nested": {"x": [1, 2]}, "fileCount": 1}}


def _created(id_value: Any, files_key: str, extra: dict[str, Any], status: str) -> dict[str, Any]:
    file = {"fileId": 1 if isinstance(id_value, int) else "1", "fileName": "a.jpg"}
    file.update({"uploadUrl": "https://s3.test/u?sig=x", **extra})
    return {"orderId": id_value, "orderName": "n", "status": status, files_key: [file], **extra}


@pytest.mark.parametrize(
    ("envelope", "id_type", "files_key", "extra"),
    list(itertools.product(ENVELOPES, ID_TYPES, FILE_KEYS, EXTRAS)),
)
def test_create_order_variants(
    make_client: MakeClient, envelope: str, id_type: str, files_key: str, extra: str
) -> None:
    data = _created(ID_TYPES[id_type], files_key, EXTRAS[extra], "pending")
    script = Script(httpx.Response(200, json=_envelope(envelope, data)))
    order = make_client(script).create_order(["a.jpg"], idempotency_key=KEY)
    assert order.order_id == "123456789"
    assert [(f.file_id, f.file_name) for f in order.files] == [("1", "a.jpg")]
    assert order.files[0].upload_url == "https://s3.test/u?sig=x"
    assert order.status == "pending"


@pytest.mark.parametrize(
    ("envelope", "id_type", "extra"), list(itertools.product(ENVELOPES, ID_TYPES, EXTRAS))
)
def test_get_order_and_confirm_variants(
    make_client: MakeClient, envelope: str, id_type: str, extra: str
) -> None:
    data = {"orderId": ID_TYPES[id_type], "status": "inProgress", **EXTRAS[extra]}
    script = Script(httpx.Response(200, json=_envelope(envelope, data)))
    client = make_client(script)
    assert client.get_order("123456789").order_id == "123456789"
    confirmed = client.confirm_order("123456789", idempotency_key=KEY)
    assert (confirmed.order_id, confirmed.status) == ("123456789", "inProgress")


@pytest.mark.parametrize("envelope", ENVELOPES)
@pytest.mark.parametrize("call", ["create", "confirm", "get"])
def test_an_unknown_status_is_kept_and_logged_once(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture, envelope: str, call: str
) -> None:
    status = f"reviewing-{uuid.uuid4().hex[:8]}"  # new to this process
    data = _created("1", "files", {}, status)
    script = Script(httpx.Response(200, json=_envelope(envelope, data)))
    client = make_client(script)
    caplog.set_level(logging.WARNING, logger="mori.models")
    for _ in range(3):
        if call == "create":
            got = client.create_order(["a.jpg"], idempotency_key=KEY).status
        elif call == "confirm":
            got = client.confirm_order("1", idempotency_key=KEY).status
        else:
            got = client.get_order("1").status
        assert got == status
    warnings = [r for r in caplog.records if status in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING


def test_an_answer_with_the_order_id_is_enough(make_client: MakeClient) -> None:
    script = Script(httpx.Response(200, json={"data": {"orderId": 9, "files": [{"fileId": 1}]}}))
    client = make_client(script)
    order = client.create_order(["a.jpg"], idempotency_key=KEY)
    assert (order.order_id, order.status, order.files[0].file_name) == ("9", None, None)
    assert client.confirm_order("9", idempotency_key=KEY).status is None


def test_known_statuses_are_not_logged(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="mori.models")
    for status in sorted(KNOWN_ORDER_STATUSES):
        data = {"orderId": "1", "status": status}
        assert make_client(Script(httpx.Response(200, json={"data": data}))).get_order("1")
    assert not caplog.records


def test_nulls_odd_timestamps_and_a_single_error_object(make_client: MakeClient) -> None:
    data = {
        "orderId": 7,
        "status": "failed",
        "type": None,
        "fileCount": None,
        "createdAt": "yesterday",
        "updatedAt": "2026-02-19T12:00:00.000Z",
        "errors": {"code": "PROCESSING_FAILED", "message": "0/a.jpg: bad"},
    }
    info = make_client(Script(httpx.Response(200, json={"data": data}))).get_order("7")
    assert (info.order_id, info.type, info.file_count, info.created_at) == ("7", "antiAi", 0, None)
    assert info.updated_at is not None and info.updated_at.hour == 12
    assert [(e.code, e.message) for e in info.errors or []] == [
        ("PROCESSING_FAILED", "0/a.jpg: bad")
    ]


def test_file_ids_go_back_on_the_wire_as_numbers() -> None:
    from mori.models import OrderFile

    numeric = OrderFile.model_validate({"fileId": 7, "fileName": "a.jpg"})
    textual = OrderFile.model_validate({"fileId": "f-7", "fileName": "a.jpg"})
    assert (numeric.file_id, textual.file_id) == ("7", "f-7")
    assert numeric.model_dump(by_alias=True, mode="json")["fileId"] == 7
    assert textual.model_dump(by_alias=True, mode="json")["fileId"] == "f-7"


# -- answers that cannot be understood ---------------------------------------------------------

UNREADABLE = {
    "not-json": httpx.Response(200, text="<html>ok</html>"),
    "empty": httpx.Response(200),
    "no-order-id": httpx.Response(200, json={"data": {"status": "pending", "files": []}}),
    "files-not-a-list": httpx.Response(200, json={"data": {"orderId": "1", "files": "a.jpg"}}),
    "data-is-a-list": httpx.Response(200, json={"data": [{"orderId": "1"}]}),
    "null-data": httpx.Response(200, json={"success": True, "data": None}),
    "bad-id-type": httpx.Response(200, json={"data": {"orderId": [1], "status": "pending"}}),
}
ACTING_CALLS: dict[str, Callable[[MoriClient], object]] = {
    "create_order": lambda c: c.create_order(["a.jpg"], idempotency_key=KEY),
    "create_url_order": lambda c: c.create_url_order(
        [("a.jpg", "https://pub.test/a.jpg?token=SECRET")], idempotency_key=KEY
    ),
    "confirm_order": lambda c: c.confirm_order("1", idempotency_key=KEY),
}


@pytest.mark.parametrize(
    ("endpoint", "answer"),
    [
        (endpoint, answer)
        for endpoint, answer in itertools.product(sorted(ACTING_CALLS), sorted(UNREADABLE))
        if not (endpoint == "confirm_order" and answer == "files-not-a-list")
    ],
)
def test_unreadable_answers_after_acting_raise_unexpected_response(
    make_client: MakeClient, endpoint: str, answer: str
) -> None:
    script = Script(UNREADABLE[answer])
    with pytest.raises(errors.UnexpectedResponseError) as info:
        ACTING_CALLS[endpoint](make_client(script))
    exc = info.value
    assert (exc.endpoint, exc.idempotency_key, exc.status_code) == (endpoint, KEY, 200)
    assert not exc.retryable and not isinstance(exc, errors.APIStatusError)
    assert len(script.requests) == 1  # never retried
    assert "SECRET" not in str(exc) and "html" not in str(exc)


# -- error details -----------------------------------------------------------------------------

BAD_EXTENSION = {
    "message": "fileName has an unsupported extension",
    "propertyName": "files[0].fileName",
}
DETAILED = "Bad Request: files[0].fileName: fileName has an unsupported extension"


@pytest.mark.parametrize(
    ("body", "code", "detail_message"),
    [
        (
            {
                "success": False,
                "message": "Bad Request",
                "code": "INVALID_REQUEST",
                "errors": BAD_EXTENSION,
            },
            "INVALID_REQUEST",
            DETAILED,
        ),
        (
            {
                "success": False,
                "message": "Bad Request",
                "code": "INVALID_REQUEST",
                "errors": [BAD_EXTENSION, {"message": "too long", "propertyName": "orderName"}],
            },
            "INVALID_REQUEST",
            DETAILED + "; orderName: too long",
        ),
        (
            {
                "error": {
                    "code": "INVALID_REQUEST",
                    "message": "Bad Request",
                    "errors": [BAD_EXTENSION],
                }
            },
            "INVALID_REQUEST",
            DETAILED,
        ),
        (
            {"code": "INVALID_REQUEST", "message": "Bad Request", "errors": BAD_EXTENSION},
            "INVALID_REQUEST",
            DETAILED,
        ),
        (
            {"statusCode": 400, "message": ["files must not be empty"], "error": "Bad Request"},
            None,
            "Bad Request: files must not be empty",
        ),
        (
            {
                "success": False,
                "message": "Bad Request",
                "code": "INVALID_REQUEST",
                "errors": ["first", {"code": "TOO_MANY"}, 42, None],
            },
            "INVALID_REQUEST",
            "Bad Request: first; TOO_MANY",
        ),
        (
            {"success": False, "message": "Bad Request", "code": "INVALID_REQUEST"},
            "INVALID_REQUEST",
            "Bad Request",
        ),
    ],
    ids=["object", "list", "nested-error", "g3-no-success", "framework-list", "odd-items", "none"],
)
def test_error_details(
    make_client: MakeClient, body: dict[str, Any], code: str | None, detail_message: str
) -> None:
    script = Script(httpx.Response(400, json=body))
    with pytest.raises(errors.BadRequestError) as info:
        make_client(script).create_order(["a.exe"], idempotency_key=KEY)
    exc = info.value
    assert exc.code == code
    assert exc.detail_message == detail_message
    assert str(exc) == f"HTTP 400 {code or '-'} on create_order: {detail_message}"


def test_the_brief_example_reads_exactly(make_client: MakeClient) -> None:
    body = {
        "success": False,
        "message": "Bad Request",
        "code": "INVALID_REQUEST",
        "errors": BAD_EXTENSION,
    }
    with pytest.raises(errors.BadRequestError) as info:
        make_client(Script(httpx.Response(400, json=body))).create_order(
            ["a.exe"], idempotency_key=KEY
        )
    assert str(info.value) == (
        "HTTP 400 INVALID_REQUEST on create_order: Bad Request: files[0].fileName:"
        " fileName has an unsupported extension"
    )
    (detail,) = info.value.details
    assert (detail.property_name, detail.message) == ("files[0].fileName", BAD_EXTENSION["message"])


def test_details_are_redacted(make_client: MakeClient) -> None:
    body = {
        "code": "INVALID_REQUEST",
        "message": "Bad Request",
        "errors": [
            {
                "message": "cannot fetch https://pub.test/a.jpg?token=SECRET",
                "propertyName": "files[0].originalFileUrl",
            }
        ],
    }
    with pytest.raises(errors.BadRequestError) as info:
        make_client(Script(httpx.Response(400, json=body))).create_url_order(
            [("a.jpg", "https://pub.test/a.jpg?token=SECRET")], idempotency_key=KEY
        )
    assert "https://pub.test/a.jpg" in info.value.detail_message
    assert "SECRET" not in str(info.value)
