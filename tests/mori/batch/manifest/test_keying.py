"""Image keys for a whole manifest, processing options in the key, and duplicate rows."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from mori import keys
from mori.batch.manifest import ValidationOptions, image_keys
from tests.support.images import write_image

from .support import load_rows, only


def test_duplicate_rows_point_at_the_first_row(tmp_path: Path) -> None:
    data = write_image(tmp_path / "a.jpg", seed=7)
    (tmp_path / "copy-of-a.jpg").write_bytes(data)  # same bytes, other name
    write_image(tmp_path / "b.jpg", seed=8)
    rows = [
        {"source": "b.jpg"},
        {"source": "a.jpg"},
        {"source": "a.jpg"},
        {"source": "copy-of-a.jpg"},
        {"source": "b.jpg"},
    ]
    items = load_rows(tmp_path, rows)
    assert [it.error_code for it in items] == [
        None,
        None,
        "DUPLICATE_ROW",
        "DUPLICATE_ROW",
        "DUPLICATE_ROW",
    ]
    for dup, first in ((items[2], 1), (items[3], 1), (items[4], 0)):
        assert f"row {first}" in (dup.error_message or "")
        assert dup.image_key is None
        assert dup.fingerprint == items[first].fingerprint


def test_same_url_in_two_spellings_is_a_duplicate(tmp_path: Path) -> None:
    rows = [
        {"source": "https://cdn.example.com/p/a.jpg"},
        {"source": "HTTPS://CDN.Example.com:443/p/a.jpg#top"},
        {"source": "https://cdn.example.com/p/a.jpg?v=2"},
    ]
    items = load_rows(tmp_path, rows)
    assert [it.error_code for it in items] == [None, "DUPLICATE_ROW", None]
    assert "row 0" in (items[1].error_message or "")


def test_processing_options_are_part_of_the_image_key(tmp_path: Path) -> None:
    write_image(tmp_path / "a.jpg")
    opts = {"strength": "high"}
    plain = only(load_rows(tmp_path, [{"source": "a.jpg"}]))
    with_opts = only(
        load_rows(tmp_path, [{"source": "a.jpg"}], ValidationOptions(processing_options=opts))
    )
    assert with_opts.image_key == keys.image_key(with_opts.fingerprint or "", opts)
    assert with_opts.image_key != plain.image_key
    assert with_opts.fingerprint == plain.fingerprint


def test_same_bytes_with_other_options_are_not_duplicates_across_loads(tmp_path: Path) -> None:
    write_image(tmp_path / "a.jpg")
    a = only(
        load_rows(tmp_path, [{"source": "a.jpg"}], ValidationOptions(processing_options={"x": 1}))
    )
    b = only(
        load_rows(tmp_path, [{"source": "a.jpg"}], ValidationOptions(processing_options={"x": 2}))
    )
    assert a.ok and b.ok and a.image_key != b.image_key


@pytest.mark.parametrize("options", [None, {}, {"strength": "high", "é": [1, 2]}])
def test_image_keys_match_uuid5(options: dict[str, Any] | None) -> None:
    rng = random.Random(5)
    fingerprints = [
        "url:https://cdn.example.com/a.jpg",
        "sha256:" + "0" * 64,
        "url:https://exämple.com/ü.jpg",
        "",
        *(f"url:https://h/{rng.random()}" for _ in range(2000)),
    ]
    assert image_keys(fingerprints, options) == [keys.image_key(fp, options) for fp in fingerprints]
