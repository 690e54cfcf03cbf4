"""Ordinary URLs are accepted with their frozen fingerprints (and so image keys), byte for byte."""

from __future__ import annotations

from pathlib import Path

import pytest

from mori import keys
from mori.batch.manifest import check_url

from .support import classified, load_rows

#: Ordinary URLs and the fingerprints the pipeline gave them (frozen: a change re-processes).
GOLDEN = [
    ("https://cdn.example.com/a.jpg", "url:https://cdn.example.com/a.jpg"),
    ("http://cdn.example.com/a.jpg", "url:http://cdn.example.com/a.jpg"),
    (
        "https://CDN.Example.COM/Photos/IMG_0001.JPG",
        "url:https://cdn.example.com/Photos/IMG_0001.JPG",
    ),
    ("HTTPS://cdn.example.com/a.jpg", "url:https://cdn.example.com/a.jpg"),
    ("https://cdn.example.com:443/a.jpg", "url:https://cdn.example.com/a.jpg"),
    ("http://cdn.example.com:80/a.jpg", "url:http://cdn.example.com/a.jpg"),
    ("https://cdn.example.com:8443/a.jpg", "url:https://cdn.example.com:8443/a.jpg"),
    (
        "http://cdn.example.com:8080/p/a.png?size=large",
        "url:http://cdn.example.com:8080/p/a.png?size=large",
    ),
    ("https://cdn.example.com:0443/a.jpg", "url:https://cdn.example.com/a.jpg"),
    ("https://cdn.example.com/a.jpg#top", "url:https://cdn.example.com/a.jpg"),
    ("https://cdn.example.com/a.jpg?", "url:https://cdn.example.com/a.jpg"),
    ("https://cdn.example.com/a.jpg?v=2&w=800", "url:https://cdn.example.com/a.jpg?v=2&w=800"),
    (
        "https://cdn.example.com/p/Photo%20One.JPG?size=large#frag",
        "url:https://cdn.example.com/p/Photo%20One.JPG?size=large",
    ),
    ("https://cdn.example.com/p/a%2Fb.webp", "url:https://cdn.example.com/p/a%2Fb.webp"),
    ("https://cdn.example.com//double/slash.png", "url:https://cdn.example.com//double/slash.png"),
    ("https://cdn.example.com/x/a;b=c.png", "url:https://cdn.example.com/x/a;b=c.png"),
    ("https://cdn.example.com/x/a.jpg?x=1?y=2", "url:https://cdn.example.com/x/a.jpg?x=1?y=2"),
    ("https://cdn.example.com/x/élan.jpeg", "url:https://cdn.example.com/x/élan.jpeg"),
    ("https://img-1.example.co.uk/a.jpg", "url:https://img-1.example.co.uk/a.jpg"),
    ("https://a_b.example.net/a.jpg", "url:https://a_b.example.net/a.jpg"),
    ("https://1example.com/a.jpg", "url:https://1example.com/a.jpg"),
    ("https://example.com./a.jpg", "url:https://example.com./a.jpg"),
    ("https://xn--exmple-cua.com/a.jpg", "url:https://xn--exmple-cua.com/a.jpg"),
    ("https://XN--BCHER-KVA.de/b.png", "url:https://xn--bcher-kva.de/b.png"),
    ("https://xn--r8jz45g.jp/c.webp", "url:https://xn--r8jz45g.jp/c.webp"),
    ("https://exämple.com/a.jpg", "url:https://exämple.com/a.jpg"),
    ("https://bücher.de/b.png", "url:https://bücher.de/b.png"),
    ("https://例え.jp/c.webp", "url:https://例え.jp/c.webp"),
    ("http://8.8.8.8/a.jpg", "url:http://8.8.8.8/a.jpg"),
    ("http://8.8.8.8:8080/a.jpg", "url:http://8.8.8.8:8080/a.jpg"),
    ("https://[2606:4700::1111]/a.jpg", "url:https://[2606:4700::1111]/a.jpg"),
    ("https://[2606:4700::1111]:8443/a.jpg", "url:https://[2606:4700::1111]:8443/a.jpg"),
    ("https://[2606:4700:0:0:0:0:0:1111]/a.jpg", "url:https://[2606:4700:0:0:0:0:0:1111]/a.jpg"),
    ("https://[2606:4700::ABCD]/a.jpg", "url:https://[2606:4700::abcd]/a.jpg"),
    (" https://cdn.example.com/padded.jpg ", "url:https://cdn.example.com/padded.jpg"),
    (
        "https://bucket.s3.amazonaws.com/k/a.jpg?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAEXAMPLE%2F20240101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20240101T000000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Signature=0123456789abcdef",
        "url:https://bucket.s3.amazonaws.com/k/a.jpg?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAEXAMPLE%2F20240101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20240101T000000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Signature=0123456789abcdef",
    ),
    (
        "https://storage.googleapis.com/b/o.png?X-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Credential=sa%40p.iam.gserviceaccount.com%2F20240101%2Fauto%2Fstorage&X-Goog-Date=20240101T000000Z&X-Goog-Expires=900&X-Goog-SignedHeaders=host&X-Goog-Signature=abcdef0123",
        "url:https://storage.googleapis.com/b/o.png?X-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Credential=sa%40p.iam.gserviceaccount.com%2F20240101%2Fauto%2Fstorage&X-Goog-Date=20240101T000000Z&X-Goog-Expires=900&X-Goog-SignedHeaders=host&X-Goog-Signature=abcdef0123",
    ),
    (
        "https://acct.blob.core.windows.net/c/b.webp?sv=2022-11-02&ss=b&srt=o&sp=r&se=2024-01-02T00:00:00Z&st=2024-01-01T00:00:00Z&spr=https&sig=AbC%2BdEf%3D",
        "url:https://acct.blob.core.windows.net/c/b.webp?sv=2022-11-02&ss=b&srt=o&sp=r&se=2024-01-02T00:00:00Z&st=2024-01-01T00:00:00Z&spr=https&sig=AbC%2BdEf%3D",
    ),
    (
        "https://api.example.com/render/a.jpg?token=t0k3n&w=100",
        "url:https://api.example.com/render/a.jpg?token=t0k3n&w=100",
    ),
]


@pytest.mark.parametrize(("url", "fingerprint"), GOLDEN)
def test_accepted_urls_keep_their_fingerprints(url: str, fingerprint: str) -> None:
    assert check_url(url) == fingerprint.removeprefix("url:")
    item = classified(url.strip())
    assert item.ok, item.error_message
    assert (item.fingerprint, item.location) == (fingerprint, fingerprint.removeprefix("url:"))


def test_accepted_urls_keep_their_fingerprints_through_load(tmp_path: Path) -> None:
    rows = [{"source": url, "file_name": "f.jpg"} for url, _ in GOLDEN]
    items = load_rows(tmp_path, rows, kind="jsonl")
    assert [it.fingerprint for it in items] == [fp for _, fp in GOLDEN]
    firsts = {fp: n for n, (_, fp) in reversed(list(enumerate(GOLDEN)))}
    for n, (item, (_, fp)) in enumerate(zip(items, GOLDEN, strict=True)):
        if firsts[fp] == n:  # the corpus has spellings of one URL: later ones are duplicates
            assert (item.error_code, item.image_key) == (None, keys.image_key(fp))
        else:
            assert item.error_code == "DUPLICATE_ROW"
