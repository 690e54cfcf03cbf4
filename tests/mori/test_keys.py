"""Deterministic keys: frozen uuid5 derivations, order-insensitivity, URL normalisation."""

from __future__ import annotations

import hashlib
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mori import keys

HELLO_FP = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"

uuid_strings = st.uuids().map(str)


def test_namespace_is_frozen() -> None:
    assert uuid.uuid5(uuid.NAMESPACE_URL, "https://morimori.app/mori-pipeline") == keys.NAMESPACE
    assert str(keys.NAMESPACE) == "914f4f47-5e54-579d-be92-15791bf7ae16"


def test_fingerprints() -> None:
    assert keys.sha256_fingerprint(b"hello") == HELLO_FP
    assert keys.sha256_fingerprint(b"") == "sha256:" + hashlib.sha256(b"").hexdigest()
    assert (
        keys.url_fingerprint("HTTPS://Example.COM:443/a.jpg?x=1#f")
        == "url:https://example.com/a.jpg?x=1"
    )


def test_image_key_is_frozen_and_documented() -> None:
    # A changed value here means every image would be processed again: never "fix" it lightly.
    assert keys.image_key(HELLO_FP) == "0b291e4f-5245-5273-9433-bb42316a8be3"
    assert keys.image_key(HELLO_FP) == str(uuid.uuid5(keys.NAMESPACE, f"image\n{HELLO_FP}\n{{}}"))
    with_options = keys.image_key(HELLO_FP, {"strength": "high"})
    assert with_options == "07f1125b-30fb-545e-960f-39f40c865aa6"
    assert with_options == str(
        uuid.uuid5(keys.NAMESPACE, f'image\n{HELLO_FP}\n{{"strength":"high"}}')
    )


def test_image_key_options_are_canonical() -> None:
    a = keys.image_key(HELLO_FP, {"b": 1, "a": [1, 2]})
    b = keys.image_key(HELLO_FP, {"a": [1, 2], "b": 1})
    assert a == b
    assert keys.image_key(HELLO_FP, None) == keys.image_key(HELLO_FP, {})
    assert keys.image_key(HELLO_FP, {"strength": "low"}) != keys.image_key(
        HELLO_FP, {"strength": "high"}
    )


def test_order_and_confirm_keys_are_frozen_and_documented() -> None:
    image = keys.image_key(HELLO_FP)
    order = keys.order_key([image])
    assert order == "6634ec0a-b036-53d2-808a-4b7ef780fde8"
    assert order == str(uuid.uuid5(keys.NAMESPACE, f"order\n{image}"))
    assert keys.order_key([image], generation=0) == order
    assert keys.order_key([image], generation=1) == "806d7a00-bffd-5f51-be6c-95879a2366f7"
    assert keys.order_key([image], 1) == str(uuid.uuid5(keys.NAMESPACE, f"order\n{image}\ngen=1"))
    assert keys.confirm_key(order) == "fa81c48d-1044-52a1-b9df-5fb828bb7431"
    assert keys.confirm_key(order) == str(uuid.uuid5(keys.NAMESPACE, f"confirm\n{order}"))


@given(st.lists(uuid_strings, min_size=1, max_size=30, unique=True), st.randoms())
def test_order_key_is_order_insensitive(images: list[str], rnd: object) -> None:
    shuffled = list(images)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert keys.order_key(shuffled) == keys.order_key(images)


@given(st.lists(uuid_strings, min_size=2, max_size=30, unique=True))
def test_order_key_changes_when_the_set_changes(images: list[str]) -> None:
    assert keys.order_key(images[:-1]) != keys.order_key(images)
    assert keys.order_key(images, 1) != keys.order_key(images, 2)
    assert keys.confirm_key(keys.order_key(images)) != keys.order_key(images)


@given(st.binary(), st.binary())
def test_image_keys_distinct_for_distinct_bytes(a: bytes, b: bytes) -> None:
    same = keys.image_key(keys.sha256_fingerprint(a)) == keys.image_key(keys.sha256_fingerprint(b))
    assert same == (a == b)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("HTTPS://Example.COM/a.jpg", "https://example.com/a.jpg"),
        ("https://example.com:443/a.jpg", "https://example.com/a.jpg"),
        ("http://example.com:80/a.jpg", "http://example.com/a.jpg"),
        ("http://example.com:8080/a.jpg", "http://example.com:8080/a.jpg"),
        ("https://example.com:80/a.jpg", "https://example.com:80/a.jpg"),
        ("https://example.com/a.jpg#frag", "https://example.com/a.jpg"),
        ("https://user:pw@example.com/a.jpg", "https://example.com/a.jpg"),
        ("https://example.com", "https://example.com/"),
        ("https://example.com?x=1", "https://example.com/?x=1"),
        (
            "https://example.com/A.JPG?B=2&a=1",
            "https://example.com/A.JPG?B=2&a=1",
        ),  # path/query kept
        ("  https://example.com/a.jpg \n", "https://example.com/a.jpg"),
        ("http://[::1]:8000/a.jpg", "http://[::1]:8000/a.jpg"),
        ("http://[2001:DB8::1]/a.jpg", "http://[2001:db8::1]/a.jpg"),
    ],
)
def test_normalise_url(url: str, expected: str) -> None:
    assert keys.normalise_url(url) == expected
    assert keys.normalise_url(expected) == expected  # idempotent
