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
