"""Credentials masked where URLs are shown: user info and credential-like query parameters."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote, unquote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mori.batch.manifest import ValidationOptions, mask_url
from mori.batch.manifest.masking import CREDENTIAL_PARAMETERS

from .support import classified, load_rows

S3_V4 = (
    "https://bucket.s3.eu-west-1.amazonaws.com/in/a.jpg?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=ASIAEXAMPLE%2F20240101%2Feu-west-1%2Fs3%2Faws4_request"
    "&X-Amz-Date=20240101T000000Z&X-Amz-Expires=3600"
    "&X-Amz-Security-Token=IQoJb3JpZ2luX2VjEXAMPLE%2F%2F&X-Amz-SignedHeaders=host"
    "&X-Amz-Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
)
S3_V4_SHOWN = (
    "https://bucket.s3.eu-west-1.amazonaws.com/in/a.jpg?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=***&X-Amz-Date=20240101T000000Z&X-Amz-Expires=3600"
    "&X-Amz-Security-Token=***&X-Amz-SignedHeaders=host&X-Amz-Signature=***"
)
SIGNED = {
    "S3 SigV4": (S3_V4, S3_V4_SHOWN),
    "S3 SigV2": (
        "https://b.s3.amazonaws.com/a.png?AWSAccessKeyId=AKIAEXAMPLE&Expires=1700000000"
        "&Signature=vjbyPxybdZaNmGa%2ByT272YEAiv4%3D&x-amz-security-token=FQoGZXIv",
        "https://b.s3.amazonaws.com/a.png?AWSAccessKeyId=***&Expires=1700000000"
        "&Signature=***&x-amz-security-token=***",
    ),
    "GCS V4": (
        "https://storage.googleapis.com/b/o.webp?X-Goog-Algorithm=GOOG4-RSA-SHA256"
        "&X-Goog-Credential=sa%40proj.iam.gserviceaccount.com%2F20240101%2Fauto%2Fstorage"
        "%2Fgoog4_request&X-Goog-Date=20240101T000000Z&X-Goog-Expires=900"
        "&X-Goog-SignedHeaders=host&X-Goog-Signature=0a1b2c3d4e5f",
        "https://storage.googleapis.com/b/o.webp?X-Goog-Algorithm=GOOG4-RSA-SHA256"
        "&X-Goog-Credential=***&X-Goog-Date=20240101T000000Z&X-Goog-Expires=900"
        "&X-Goog-SignedHeaders=host&X-Goog-Signature=***",
    ),
    "GCS V2": (
        "https://storage.googleapis.com/b/o.jpg?GoogleAccessId=sa%40p.iam.gserviceaccount.com"
        "&Expires=1700000000&Signature=BCDEF%2B%2F%3D",
        "https://storage.googleapis.com/b/o.jpg?GoogleAccessId=***&Expires=1700000000"
        "&Signature=***",
    ),
    "Azure SAS": (
        "https://acct.blob.core.windows.net/c/b.tiff?sv=2022-11-02&ss=b&srt=o&sp=r"
        "&se=2024-01-02T00:00:00Z&st=2024-01-01T00:00:00Z&spr=https&sr=b&sig=AbC%2BdEf%3D",
        "https://acct.blob.core.windows.net/c/b.tiff?sv=2022-11-02&ss=b&srt=o&sp=r"
        "&se=2024-01-02T00:00:00Z&st=2024-01-01T00:00:00Z&spr=https&sr=b&sig=***",
    ),
}


@pytest.mark.parametrize(("url", "shown"), list(SIGNED.values()), ids=list(SIGNED))
def test_signed_urls_are_shown_without_their_secrets(url: str, shown: str) -> None:
    assert mask_url(url) == shown


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://h/a.jpg?token=abc&w=1", "https://h/a.jpg?token=***&w=1"),
        ("https://h/a.jpg?w=1&API_KEY=abc", "https://h/a.jpg?w=1&API_KEY=***"),
        ("https://h/a.jpg?X%2DAmz%2DSignature=abc", "https://h/a.jpg?X%2DAmz%2DSignature=***"),
        ("https://h/a.jpg?key=a=b&apikey=c", "https://h/a.jpg?key=***&apikey=***"),
        ("https://h/a.jpg?pwd=1;password=2", "https://h/a.jpg?pwd=***;password=***"),
        ("https://h/a.jpg?x=1?secret=2", "https://h/a.jpg?x=1?secret=***"),
        (
            "https://h/a.jpg#access_token=t&id_token=u",
            "https://h/a.jpg#access_token=***&id_token=***",
        ),
        (
            "https://h/a.jpg?auth=1&client_secret=2&sig=3",
            "https://h/a.jpg?auth=***&client_secret=***&sig=***",
        ),
        ("https://u:pw@h/a.jpg?token=1", "https://***@h/a.jpg?token=***"),
        ("https://u:p@w@h:8/a.jpg", "https://***@h:8/a.jpg"),
        ("http:u:pw@h/a.jpg", "http:***@h/a.jpg"),
        ("ftp://u:pw@h/a.jpg", "ftp://***@h/a.jpg"),
    ],
)
def test_credentials_are_masked_keeping_names_and_order(url: str, shown: str) -> None:
    assert mask_url(url) == shown


@pytest.mark.parametrize(
    "url",
    [
        "https://h/a.jpg",
        "https://h/a.jpg?se=2024&sp=r&sv=2022&sr=b&st=1&spr=https",  # Azure's readable fields
        "https://h/a.jpg?token=&sig",  # nothing to hide
        "https://h/a.jpg?tokens=1&my_key=2&keyword=3",
        "https://h/token=1/a.jpg",
        "images/a@b.jpg",
        "C:\\photos\\me@home.jpg",
        "s3://bucket/k?token=1",  # an object key may hold '?': s3 rows are not masked
    ],
)
def test_what_holds_no_credential_is_shown_as_it_is(url: str) -> None:
    if url.startswith("s3://"):
        assert classified(url).source == url
    else:
        assert mask_url(url) is url


def test_a_url_row_shows_the_masked_url_and_fetches_the_real_one() -> None:
    url, shown = SIGNED["S3 SigV4"]
    item = classified(url)
    assert item.ok, item.error_message
    assert item.source == shown
    assert item.location == url and item.fingerprint == "url:" + url
    assert "5d672d79" not in repr(item) and "IQoJb3" not in repr(item)
    assert "X-Amz-Signature=***" in repr(item)


def test_a_refused_url_row_is_shown_masked_too() -> None:
    item = classified("http://127.0.0.1/a.jpg?token=s3cr3t")
    assert item.error_code == "URL_PRIVATE_ADDRESS"
    assert "s3cr3t" not in item.source + (item.error_message or "")
    item = classified("ftp://user:pw@example.com/a.jpg")
    assert (item.error_code, item.source) == ("UNSUPPORTED_SCHEME", "ftp://***@example.com/a.jpg")


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_signed_url_rows_of_a_manifest_are_masked_on_both_paths(tmp_path: Path, kind: str) -> None:
    urls = [url for url, _ in SIGNED.values()]
    rows = [{"source": url} for url in urls]  # plain rows: the column-wise path
    rows += [{"source": url.replace("https://", "HTTPS://")} for url in urls]  # row-wise
    rows += [{"source": "https://cdn.example.com/x.jpg?w=1&Token=abc", "file_name": "t.jpg"}]
    items = load_rows(tmp_path, rows, ValidationOptions(), kind=kind)
    shown = [s for _, s in SIGNED.values()]
    assert [it.source for it in items[: len(urls)]] == shown
    assert [it.source for it in items[len(urls) : 2 * len(urls)]] == [
        s.replace("https://", "HTTPS://") for s in shown
    ]
    assert items[-1].source == "https://cdn.example.com/x.jpg?w=1&Token=***"
    assert [it.location for it in items[: len(urls)]] == urls
    assert items[-1].location == "https://cdn.example.com/x.jpg?w=1&Token=abc"
    assert all(it.ok for it in items[: len(urls)] + items[-1:])


NAMES = st.one_of(
    st.sampled_from(sorted(CREDENTIAL_PARAMETERS)).map(
        lambda n: "".join(c.upper() if i % 2 else c for i, c in enumerate(n))
    ),
    st.sampled_from(sorted(CREDENTIAL_PARAMETERS)).map(lambda n: quote(n, safe="")),
    st.text(alphabet="abekst-_%2D", min_size=1, max_size=6),
)
VALUES = st.text(alphabet="abcXYZ019%+/=-_.~:@", min_size=1, max_size=12)


@settings(max_examples=300, deadline=None)
@given(
    parameters=st.lists(st.tuples(NAMES, VALUES), min_size=1, max_size=6),
    separator=st.sampled_from(["&", ";"]),
    where=st.sampled_from(["?", "#"]),
)
def test_no_credential_value_survives_and_nothing_else_changes(
    parameters: list[tuple[str, str]], separator: str, where: str
) -> None:
    url = "https://h.example/a.jpg" + where + separator.join(f"{n}={v}" for n, v in parameters)
    shown = mask_url(url)
    assert mask_url(shown) == shown
    text = shown.split(where, 1)[1]
    got = [p.split("=", 1) for p in text.split(separator)] if "=" in text else []
    assert [n for n, _ in got] == [n for n, _ in parameters]
    for (name, value), (_, shown_value) in zip(parameters, got, strict=True):
        secret = unquote(name).lower() in CREDENTIAL_PARAMETERS
        assert shown_value == ("***" if secret else value)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_mask_url_never_raises_and_is_idempotent(text: str) -> None:
    for url in (text, "https://" + text, "https://h/a?" + text):
        shown = mask_url(url)
        assert mask_url(shown) == shown
