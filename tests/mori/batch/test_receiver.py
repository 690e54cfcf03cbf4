"""The webhook receiver over HTTP (ASGI, in process) with a real ledger: verify, record once."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from mori.batch.ledger import Ledger
from mori.batch.receiver import MAX_BODY, PATH, create_app
from mori.models import PROCESSED_EVENT_TYPES, WebhookEvent
from mori.webhooks import SIGNATURE_HEADER, sign

SECRET = "whsec-test-0123456789"
DOWNLOAD_URL = "https://results.example.com/o/ord-1.zip?X-Amz-Signature=deadbeefcafe"


def event_body(
    event_id: str = "7dddea77-232c-4ae7-a880-ba9e11563762",
    event_type: str = "ORDER.ANTI_AI.PROCESSED",
    order_id: str = "ord-1",
    status: str = "complete",
    **data: Any,
) -> bytes:
    event = {
        "eventId": event_id,
        "eventType": event_type,
        "occurredAt": "2026-02-19T12:00:00.000Z",
        "data": {
            "orderId": order_id,
            "orderName": "anti_ai_2026-02-19",
            "status": status,
            "fileCount": 3,
            "createdAt": "2026-02-19T11:50:00.000Z",
            "completedAt": "2026-02-19T12:00:00.000Z",
            "downloadUrl": DOWNLOAD_URL,
            **data,
        },
    }
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()


class Client:
    """A synchronous face on ``httpx.AsyncClient`` over the app's ASGI interface (no sockets)."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    async def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        transport = httpx.ASGITransport(app=self.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as client:
            return await client.request(method, url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return asyncio.run(self._request("POST", url, **kwargs))

    def get(self, url: str) -> httpx.Response:
        return asyncio.run(self._request("GET", url))


class Receiver:
    """The app, its ledger and a test client, with a secret the test can rotate or remove."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.secret: str | None = SECRET
        self.hooked: list[tuple[WebhookEvent, bool, str | None]] = []
        self.hook_error: Exception | None = None
        self.app = create_app(ledger, lambda: self.secret, self.on_event)
        self.client = Client(self.app)

    def on_event(self, event: WebhookEvent, new: bool) -> None:
        # What the ledger holds when the hook runs: the event must be recorded first.
        self.hooked.append((event, new, self.ledger.event_status(event.data.order_id)))
        if self.hook_error:
            raise self.hook_error

    def post(
        self,
        body: bytes | AsyncIterator[bytes],
        signature: str | None = "sign",
        secret: str = SECRET,
        headers: dict[str, str] | None = None,
    ) -> Any:
        sent = dict(headers or {})
        if signature == "sign":
            assert isinstance(body, bytes)
            sent[SIGNATURE_HEADER] = sign(body, secret)
        elif signature is not None:
            sent[SIGNATURE_HEADER] = signature
        sent.setdefault("content-type", "application/json")
        return self.client.post(PATH, content=body, headers=sent)

    def events(self) -> list[dict[str, Any]]:
        return [dict(vars(e)) for e in self.ledger.events()]

    def health(self) -> dict[str, Any]:
        return dict(self.client.get("/healthz").json())


@pytest.fixture
def rx(tmp_path: Path) -> Iterator[Receiver]:
    ledger = Ledger(tmp_path / "ledger.sqlite")
    yield Receiver(ledger)
    ledger.close()


@pytest.mark.parametrize("event_type", sorted(PROCESSED_EVENT_TYPES))
def test_valid_event_is_recorded_once(rx: Receiver, event_type: str) -> None:
    body = event_body(event_type=event_type)
    response = rx.post(body)
    assert response.status_code == 200
    assert response.json() == {"ok": True, "duplicate": False}
    (row,) = rx.events()
    assert (row["event_id"], row["event_type"], row["order_id"], row["status"]) == (
        "7dddea77-232c-4ae7-a880-ba9e11563762",
        event_type,
        "ord-1",
        "complete",
    )
    assert rx.ledger.event_status("ord-1") == "complete"
    assert rx.health()["received"] == 1


def test_failed_order_event_is_recorded(rx: Receiver) -> None:
    body = event_body(status="failed", error={"code": "PROCESSING_FAILED", "message": "boom"})
    assert rx.post(body).status_code == 200
    assert rx.ledger.event_status("ord-1") == "failed"


def test_duplicate_delivery_is_acknowledged_and_ignored(rx: Receiver) -> None:
    body = event_body()
    assert rx.post(body).json() == {"ok": True, "duplicate": False}
    again = rx.post(body)
    assert again.status_code == 200
    assert again.json() == {"ok": True, "duplicate": True}
    assert len(rx.events()) == 1
    assert [new for _, new, _ in rx.hooked] == [True, False]
    health = rx.health()
    assert (health["received"], health["duplicates"]) == (2, 1)


def test_distinct_events_for_one_order_are_all_kept(rx: Receiver) -> None:
    rx.post(event_body(event_id="e-1", status="inProgress"))
    rx.post(event_body(event_id="e-2", status="complete"))
    assert sorted(r["event_id"] for r in rx.events()) == ["e-1", "e-2"]
    assert rx.ledger.event_status("ord-1") == "complete"


def test_stored_payload_has_no_download_url(rx: Receiver) -> None:
    assert rx.post(event_body()).status_code == 200
    (row,) = rx.events()
    stored = json.loads(row["payload"])
    assert "downloadUrl" not in stored["data"]
    assert DOWNLOAD_URL not in row["payload"]
    assert "X-Amz-Signature" not in row["payload"]
    assert stored["data"]["orderId"] == "ord-1"
    assert stored["eventId"] == row["event_id"]


@pytest.mark.parametrize(
    "signature",
    [
        None,  # no header
        "",
        "not-hex",
        "0" * 64,
        sign(b"some other body", SECRET),
        sign(event_body(), SECRET)[:-1],
    ],
    ids=["missing", "empty", "garbage", "zeros", "other-body", "truncated"],
)
def test_bad_or_missing_signature_is_401_and_changes_nothing(
    rx: Receiver, signature: str | None
) -> None:
    response = rx.post(event_body(), signature=signature)
    assert response.status_code == 401
    assert response.json()["ok"] is False
    assert rx.events() == []
    assert rx.hooked == []
    assert rx.health()["rejected"] == 1


def test_signature_with_the_wrong_secret_is_401(rx: Receiver) -> None:
    response = rx.post(event_body(), secret="some-other-secret")
    assert response.status_code == 401
    assert rx.events() == []


def test_signature_is_checked_over_the_raw_bytes(rx: Receiver) -> None:
    body = event_body()
    reserialised = json.dumps(json.loads(body), indent=2).encode()  # same JSON, other bytes
    response = rx.post(reserialised, signature=sign(body, SECRET))
    assert response.status_code == 401
    assert rx.events() == []


def test_uppercase_hex_signature_is_accepted(rx: Receiver) -> None:
    body = event_body()
    assert rx.post(body, signature=sign(body, SECRET).upper()).status_code == 200


def test_a_rotated_secret_applies_at_once(rx: Receiver) -> None:
    rx.secret = "rotated-secret"
    assert rx.post(event_body(event_id="e-1")).status_code == 401
    assert rx.post(event_body(event_id="e-2"), secret="rotated-secret").status_code == 200
    assert [r["event_id"] for r in rx.events()] == ["e-2"]


def test_signature_is_verified_before_parsing(rx: Receiver) -> None:
    response = rx.post(b"{not json", signature="0" * 64)
    assert response.status_code == 401  # not 400: nothing is parsed before verification


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"",
        b"[]",
        b'{"eventType":"ORDER.PROCESSED"}',
        json.dumps({"eventId": "e", "eventType": "ORDER.PROCESSED", "data": {}}).encode(),
        b"\xff\xfe\x00garbage",
    ],
    ids=["broken", "empty", "array", "no-id", "no-data", "binary"],
)
def test_malformed_but_signed_body_is_400(rx: Receiver, body: bytes) -> None:
    response = rx.post(body)
    assert response.status_code == 400
    assert rx.events() == []
    assert rx.hooked == []


def test_body_over_the_limit_is_413(rx: Receiver) -> None:
    body = event_body(orderName="x" * MAX_BODY)
    assert len(body) > MAX_BODY
    response = rx.post(body)
    assert response.status_code == 413
    assert rx.events() == []


def test_streamed_body_over_the_limit_is_413(rx: Receiver) -> None:
    chunk = b" " * 8192

    sent: list[int] = []

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(MAX_BODY // len(chunk) + 2):
            sent.append(len(chunk))
            yield chunk

    # No Content-Length (chunked): the receiver counts as it reads and stops past the limit.
    response = rx.post(chunks(), signature="0" * 64)
    assert response.status_code == 413
    assert sum(sent) <= MAX_BODY + len(chunk)  # stopped reading once past the limit
    assert rx.events() == []


def test_body_of_exactly_the_limit_is_accepted(rx: Receiver) -> None:
    body = event_body()
    body += b" " * (MAX_BODY - len(body))  # trailing whitespace is still valid JSON
    assert len(body) == MAX_BODY
    assert rx.post(body).status_code == 200
    assert len(rx.events()) == 1


@pytest.mark.parametrize("event_type", ["ORDER.CREATED", "order.processed", "SOMETHING.ELSE"])
def test_unknown_event_type_is_ignored_with_202(rx: Receiver, event_type: str) -> None:
    response = rx.post(event_body(event_type=event_type))
    assert response.status_code == 202
    assert response.json() == {"ok": True, "ignored": event_type}
    assert rx.events() == []
    assert rx.hooked == []


def test_a_failing_hook_still_answers_200(rx: Receiver) -> None:
    rx.hook_error = RuntimeError("prefect is down")
    response = rx.post(event_body())
    assert response.status_code == 200
    assert response.json() == {"ok": True, "duplicate": False}
    assert len(rx.events()) == 1
    (event, new, status_seen_by_hook) = rx.hooked[0]
    assert new is True
    assert event.event_id == "7dddea77-232c-4ae7-a880-ba9e11563762"
    assert status_seen_by_hook == "complete"  # recorded before the hook ran


@pytest.mark.parametrize("missing", [None, ""])
def test_no_secret_configured_is_503(rx: Receiver, missing: str | None) -> None:
    rx.secret = missing
    response = rx.post(event_body())
    assert response.status_code == 503
    assert rx.events() == []


def test_receiver_without_a_hook(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.sqlite")
    try:
        body = event_body()
        response = Client(create_app(ledger, lambda: SECRET)).post(
            PATH, content=body, headers={SIGNATURE_HEADER: sign(body, SECRET)}
        )
        assert response.status_code == 200
        assert ledger.event_status("ord-1") == "complete"
    finally:
        ledger.close()
