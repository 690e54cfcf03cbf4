"""Webhook signatures: X-Mori-Signature = lowercase hex HMAC-SHA256(secret, raw body)."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mori import webhooks
from mori.errors import SignatureVerificationError

BODY = b'{"eventId":"7dddea77-232c-4ae7-a880-ba9e11563762","eventType":"ORDER.ANTI_AI.PROCESSED"}'
SECRET = "whsec-test"

secrets = st.text(min_size=1, max_size=64)
bodies = st.binary(max_size=2048)


def test_sign_matches_an_independent_hmac() -> None:
    expected = hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()
    assert webhooks.sign(BODY, SECRET) == expected
    assert expected == expected.lower() and len(expected) == 64


def test_header_name() -> None:
    assert webhooks.SIGNATURE_HEADER == "X-Mori-Signature"


@given(bodies, secrets)
def test_round_trip(body: bytes, secret: str) -> None:
    signature = webhooks.sign(body, secret)
    webhooks.verify(body, signature, secret)
    assert webhooks.is_valid(body, signature, secret)


@given(bodies.filter(bool), secrets, st.data())
def test_one_byte_tamper_fails(body: bytes, secret: str, data: st.DataObject) -> None:
    signature = webhooks.sign(body, secret)
    index = data.draw(st.integers(0, len(body) - 1))
    flip = data.draw(st.integers(1, 255))
    tampered = body[:index] + bytes([body[index] ^ flip]) + body[index + 1 :]
    with pytest.raises(SignatureVerificationError):
        webhooks.verify(tampered, signature, secret)
    assert not webhooks.is_valid(tampered, signature, secret)


@given(bodies, secrets, st.data())
def test_tampered_signature_fails(body: bytes, secret: str, data: st.DataObject) -> None:
    signature = webhooks.sign(body, secret)
    index = data.draw(st.integers(0, len(signature) - 1))
    other = data.draw(st.sampled_from([c for c in "0123456789abcdef" if c != signature[index]]))
    assert not webhooks.is_valid(body, signature[:index] + other + signature[index + 1 :], secret)


@given(bodies, secrets)
def test_uppercase_hex_and_whitespace_accepted(body: bytes, secret: str) -> None:
    signature = webhooks.sign(body, secret)
    assert webhooks.is_valid(body, signature.upper(), secret)
    assert webhooks.is_valid(body, f" {signature}\n", secret)


@given(bodies, secrets, st.sampled_from([None, ""]))
def test_missing_header_fails(body: bytes, secret: str, signature: str | None) -> None:
    with pytest.raises(SignatureVerificationError, match="missing"):
        webhooks.verify(body, signature, secret)
    assert not webhooks.is_valid(body, signature, secret)


@given(bodies, secrets, secrets)
def test_wrong_secret_fails(body: bytes, secret: str, other: str) -> None:
    signature = webhooks.sign(body, secret)
    assert webhooks.is_valid(body, signature, other) == (secret == other)


@pytest.mark.parametrize("garbage", ["sha256=" + "0" * 64, "not-hex", "é" * 64, "0" * 63, "0" * 65])
def test_malformed_signatures_fail(garbage: str) -> None:
    assert not webhooks.is_valid(BODY, garbage, SECRET)


def test_re_serialised_body_fails() -> None:
    import json

    signature = webhooks.sign(BODY, SECRET)
    reserialised = json.dumps(json.loads(BODY)).encode()  # spaces after separators
    assert reserialised != BODY
    assert not webhooks.is_valid(reserialised, signature, SECRET)


# -- verify_request: both generations ----------------------------------------------------------

G3_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.mark.parametrize(
    ("generation", "header", "secret"),
    [("g1", "X-Mori-Signature", SECRET), ("g3", "X-MoriBiz-Signature", G3_SECRET)],
)
def test_verify_request(generation: str, header: str, secret: str) -> None:
    signature = hmac.new(secret.encode("utf-8"), BODY, hashlib.sha256).hexdigest()
    for name in (header, header.lower(), header.upper()):  # plain dicts: any case
        webhooks.verify_request(BODY, {name: signature}, secret, generation)  # type: ignore[arg-type]
        webhooks.verify_request(BODY, {name: signature.upper()}, secret, generation)  # type: ignore[arg-type]
    with pytest.raises(SignatureVerificationError, match="does not match"):
        webhooks.verify_request(BODY + b" ", {header: signature}, secret, generation)  # type: ignore[arg-type]


def test_a_g3_secret_keys_the_hmac_with_its_prefix() -> None:
    without_prefix = webhooks.sign(BODY, G3_SECRET.removeprefix("whsec_"))
    with pytest.raises(SignatureVerificationError):
        webhooks.verify_request(BODY, {"X-MoriBiz-Signature": without_prefix}, G3_SECRET, "g3")


@pytest.mark.parametrize(
    ("generation", "other"), [("g1", "X-MoriBiz-Signature"), ("g3", "X-Mori-Signature")]
)
def test_the_other_generations_header_is_not_accepted(generation: str, other: str) -> None:
    signature = webhooks.sign(BODY, SECRET)
    with pytest.raises(SignatureVerificationError, match="missing"):
        webhooks.verify_request(BODY, {other: signature}, SECRET, generation)  # type: ignore[arg-type]


# -- parse_event -------------------------------------------------------------------------------


def _event(**fields: object) -> bytes:
    import json

    base: dict[str, object] = {
        "eventId": "7dddea77-232c-4ae7-a880-ba9e11563762",
        "occurredAt": "2026-02-19T12:00:00.000Z",
    }
    return json.dumps({**base, **fields}).encode()


DATA = {"orderId": "123", "orderName": "n", "fileCount": 2, "downloadUrl": "https://s3/x?sig=1"}
FAILED = {
    "orderId": 123,
    "failedAt": "2026-02-19T12:00:00.000Z",
    "error": {"code": "PROCESSING_FAILED", "message": "bad image"},
}


COMPLETE = {**DATA, "status": "complete"}


@pytest.mark.parametrize(
    ("event_type", "data", "status", "finished"),
    [
        ("ORDER.ANTI_AI.PROCESSED", COMPLETE, "complete", True),
        ("ORDER.PROCESSED", {**DATA, "status": "failed"}, "failed", True),
        ("order.antiAi.completed", DATA, "complete", True),
        ("order.antiAi.completed", COMPLETE, "complete", True),
        ("order.antiAi.failed", FAILED, "failed", True),
        ("order.watermarkEmbed.completed", DATA, "complete", False),
        ("order.watermarkExtract.completed", {**DATA, "status": "detected"}, "detected", False),
        ("order.somethingNew.started", DATA, "unknown", False),
    ],
    ids=[
        "g1-anti-ai",
        "g1-processed",
        "g3-completed",
        "g3-with-status",
        "g3-failed",
        "g3-other-product",
        "g3-extract",
        "g3-unknown",
    ],
)
def test_parse_event(event_type: str, data: dict[str, object], status: str, finished: bool) -> None:
    event = webhooks.parse_event(_event(eventType=event_type, data=data))
    assert event.event_id == "7dddea77-232c-4ae7-a880-ba9e11563762"
    assert event.event_type == event_type
    assert event.data.order_id == "123"
    assert event.data.status == status
    assert event.is_order_finished is finished


def test_parse_event_keeps_the_failure_error() -> None:
    event = webhooks.parse_event(_event(eventType="order.antiAi.failed", data=FAILED))
    assert event.data.error is not None
    assert (event.data.error.code, event.data.error.message) == ("PROCESSING_FAILED", "bad image")


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        _event(eventType="ORDER.PROCESSED"),
        _event(data={**DATA, "status": "complete"}),
        _event(eventType="ORDER.PROCESSED", data={"status": "complete"}),
        b'{"eventType": "order.antiAi.completed", "data": {"orderId": "1"}}',
    ],
    ids=["not-json", "not-object", "no-data", "no-type", "no-order-id", "no-event-id"],
)
def test_parse_event_rejects_what_is_not_an_event(body: bytes) -> None:
    from mori.errors import InvalidEventError

    with pytest.raises(InvalidEventError) as info:
        webhooks.parse_event(body)
    assert "sig=1" not in str(info.value)
