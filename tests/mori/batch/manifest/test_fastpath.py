"""The column-wise path gives exactly the row-wise path's items, keys, errors and masked sources."""

from __future__ import annotations

import datetime as dt
import decimal
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from mori.batch.manifest import (
    Item,
    ValidationOptions,
    classify,
    items_from_frame,
    load,
    validated_items,
)
from mori.batch.manifest.fastpath import plain_url_mask
from mori.batch.manifest.frames import column_values
from mori.batch.storage import Storage
from tests.support.images import write_image, write_manifest

from .support import as_tuple, assert_same, row_wise

HOSTS = [
    "cdn.example.com",
    "CDN.Example.COM",
    "img-1.example.co.uk",
    "a_b.example.net",
    "example.com.",
    "localhost",
    "LocalHost",
    "app.localhost",
    "printer.local",
    "metadata.google.internal",
    "nas.home.arpa",
    "home.arpa",
    "local",
    "intranet",
    "x.lan",
    "xn--exmple-cua.com",
    "xn--a.example.com",
    "127.0.0.1",
    "127.1",
    "0x7f.1",
    "2130706433",
    "8.8.8.8",
    "10.0.0.1",
    "[::1]",
    "[2606:4700::1111]",
    "user:pw@example.com",
    "user@example.com",
    "",
    "ex ample.com",
    "exämple.com",
    "1example.com",
    "example.123",
    "-bad-.example.com",
]
PORTS = ["", "", "", ":80", ":443", ":8080", ":0", ":65535", ":65536", ":x", ":", ":0080"]
PATHS = [
    "/a.jpg",
    "/photos/2024/IMG_0001.JPG",
    "/p/Photo%20One.png",
    "/p/a%2Fb.webp",
    "/dir/",
    "",
    "/no-extension",
    "/x/y.gif",
    "/x/.jpg",
    "/x/..jpg",
    "/x/a b.bmp",
    "/x/a\tb.tiff",
    '/x/a"b.jpg',
    "/x/a\\b.jpg",
    "/x/élan.jpeg",
    "/" + "n" * 251 + ".jpg",
    "/" + "n" * 252 + ".jpg",
    "//double/slash.png",
    "/x/name.JpEg",
    "/x/a;b=c.png",
]
QUERIES = ["", "", "?v=1", "?", "?a=b&c=%20d", "?q=#", "?x=1?y=2", "?sig=s3cr3t&sv=1", "?Token=t"]
FRAGMENTS = ["", "", "#frag", "#"]
SCHEMES = ["https", "http", "HTTPS", "Http", "ftp", "gs", "file", "javascript", "c"]  # no s3: I/O
FILE_NAMES = [None, None, None, "", "  ", "given.png", " padded.jpg ", "bad.gif", "no_ext", "é.jpg"]


def random_source(rng: random.Random) -> str:
    """A URL-ish source, mostly plain, often subtly not."""
    roll = rng.random()
    if roll < 0.45:  # plain: the vectorised path
        ext = rng.choice(["jpg", "png", "JPEG", "webp", "tiff", "bmp"])
        query = rng.choice(["", "?v=2", "?a=1&b=%20", "?X-Amz-Signature=abc&X-Amz-Date=1"])
        return f"https://cdn{rng.randrange(3)}.example.com/i/{rng.randrange(5000)}.{ext}{query}"
    if roll < 0.49:
        return rng.choice(
            ["", "  ", "images/a.jpg", "/abs/b.png", "../up.jpg", "s3://b/", "s3:///k"]
        )
    scheme = rng.choice(SCHEMES) if rng.random() < 0.3 else rng.choice(["https", "http"])
    url = (
        f"{scheme}://{rng.choice(HOSTS) if rng.random() < 0.5 else 'cdn.example.com'}"
        f"{rng.choice(PORTS) if rng.random() < 0.3 else ''}"
        f"{rng.choice(PATHS) if rng.random() < 0.6 else f'/img/{rng.randrange(500)}.jpg'}"
        f"{rng.choice(QUERIES)}{rng.choice(FRAGMENTS)}"
    )
    if rng.random() < 0.03:
        url = rng.choice([" ", "\t", "\u3000"]) + url
    if rng.random() < 0.03:
        url = url + rng.choice([" ", "\u00a0", "\x1c"])
    return url


def random_rows(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        row: dict[str, Any] = {"source": random_source(rng), "id": f" id-{i} " if i % 7 else ""}
        name = rng.choice(FILE_NAMES)
        row["file_name"] = "" if name is None else name
        row["collection"] = f"c{i % 5}"
        rows.append(row)
    return rows


OPTIONS = [
    ValidationOptions(),
    ValidationOptions(
        allowed_private_hosts=frozenset({"localhost", "127.0.0.1:8080", "printer.local"}),
        processing_options={"strength": "high", "n": 2},
    ),
]


@pytest.mark.parametrize("kind", ["csv", "jsonl", "parquet"])
@pytest.mark.parametrize("options", OPTIONS, ids=["default", "allowed-hosts+options"])
def test_vectorised_load_matches_row_wise(
    tmp_path: Path, kind: str, options: ValidationOptions
) -> None:
    rows = random_rows(3000, seed=len(kind))
    rows += [dict(r, id=f"dup-{i}") for i, r in enumerate(rows[:200])]  # duplicate images
    write_image(tmp_path / "images" / "a.jpg")
    manifest = write_manifest(tmp_path / f"manifest.{kind}", rows)

    fast = load(str(manifest), Storage(), options)
    slow = row_wise(str(manifest), options)

    assert_same(fast, slow)
    codes = {it.error_code for it in fast}
    # The mix really exercises both paths: valid rows, duplicates and many error codes.
    assert {None, "DUPLICATE_ROW", "URL_PRIVATE_ADDRESS", "UNSUPPORTED_FORMAT"} <= codes
    assert {"URL_HAS_CREDENTIALS", "INVALID_URL", "UNSUPPORTED_SCHEME"} <= codes
    assert sum(it.ok for it in fast) > 500
    assert any(it.ok and it.source != it.location for it in fast)  # masked signatures
    plain = plain_url_mask(pa.array([str(r["source"]) for r in rows])).to_pylist()
    assert 0.25 < sum(plain) / len(rows) < 0.75  # both paths are well exercised


LABEL = st.text(alphabet="abcxyz019-_", min_size=1, max_size=6)
ODD_LABEL = st.sampled_from(
    ["xn--exmple-cua", "xn--a", "localhost", "local", "lan", "internal", "A", "1", "0x7f", "é"]
)
HOST = st.one_of(
    st.tuples(
        st.lists(LABEL, min_size=1, max_size=3), st.text("abcxyz", min_size=1, max_size=3)
    ).map(lambda t: ".".join([*t[0], t[1]])),
    st.lists(st.one_of(LABEL, ODD_LABEL), min_size=1, max_size=4).map(".".join),
)
PATH = st.one_of(
    st.text(alphabet="abcXYZ019-_./", max_size=12),
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=12),
)
QUERY = st.one_of(
    st.just(""),
    st.lists(
        st.tuples(
            st.sampled_from(["w", "sig", "SIG", "X-Amz-Signature", "to%6ben", "a%", "sv", "key"]),
            st.text(alphabet="abc12%=?;&", max_size=5),
        ),
        min_size=1,
        max_size=4,
    ).map(lambda ps: "?" + "&".join(f"{n}={v}" for n, v in ps)),
)
SOURCE = st.builds(
    "{}://{}{}/{}.{}{}".format,
    st.sampled_from(["https", "https", "https", "http", "HTTP"]),
    HOST,
    st.sampled_from(["", "", "", "", "", ":443", ":8080"]),
    PATH,
    st.sampled_from(["jpg", "png", "JPEG", "jpg", "gif", "webp"]),
    QUERY,
)
ROWS = st.lists(
    st.tuples(SOURCE, st.sampled_from(["", "", "", "given.png", "bad.gif", " x.jpg", 'a"b.jpg'])),
    min_size=1,
    max_size=25,
)


@settings(max_examples=250, deadline=None)
@given(rows=ROWS, allow=st.booleans())
def test_generated_url_rows_give_the_same_items_on_both_paths(
    rows: list[tuple[str, str]], allow: bool
) -> None:
    options = OPTIONS[allow]
    frame = pd.DataFrame({"source": [s for s, _ in rows], "file_name": [n for _, n in rows]})
    slow = items_from_frame(frame)
    for item in slow:
        classify(item, "/tmp", options)
    fast = validated_items(frame, "/tmp", options)
    assert [as_tuple(i) for i in fast] == [as_tuple(i) for i in slow]
    plain = plain_url_mask(pa.array([s for s, _ in rows])).to_pylist()
    event(f"column-wise rows: {'some' if any(plain) else 'none'}")


def test_mixed_types_and_missing_values(tmp_path: Path) -> None:
    rows: list[dict[str, Any]] = [
        {"source": "https://cdn.example.com/a.jpg", "id": 1, "file_name": None, "n": 1.5},
        {"source": None, "id": None, "file_name": "x.jpg", "n": None},
        {"source": "https://cdn.example.com/b.jpg", "id": 3, "file_name": 7, "n": 2},
        {"source": 42, "id": "x", "file_name": "", "n": True},
        {"source": "https://cdn.example.com/c.png", "id": "y", "file_name": "  ", "n": 0},
    ]
    manifest = write_manifest(tmp_path / "m.jsonl", rows)
    assert_same(load(str(manifest), Storage()), row_wise(str(manifest), ValidationOptions()))


def test_frames_with_non_string_column_names(tmp_path: Path) -> None:
    """A frame built in code may name columns ``7`` or ``("a", "b")``: same items as row-wise."""
    sources = ["https://cdn.example.com/a.jpg", "ftp://x/y.jpg", "https://cdn.example.com/b.png"]
    for extra_name in (7, ("a", "b"), 1.5):
        frame = pd.DataFrame({"source": sources, "id": ["1", "2", "3"]})
        frame[extra_name] = [10, 20, 30]
        fast = validated_items(frame, str(tmp_path), ValidationOptions())
        slow = items_from_frame(frame)
        for item in slow:
            classify(item, str(tmp_path), ValidationOptions())
        assert [as_tuple(i) for i in fast] == [as_tuple(i) for i in slow]
        assert [i.ok for i in fast] == [True, False, True]
        assert fast[0].extra == {extra_name: 10}


@pytest.mark.parametrize("odd_names", [False, True])
def test_a_later_slice_of_a_manifest_keeps_its_row_numbers(odd_names: bool) -> None:
    frame = pd.DataFrame({"source": ["https://cdn.example.com/a.jpg", "ftp://x/y.jpg"]})
    if odd_names:
        frame[7] = [1, 2]
    items = validated_items(frame, "/tmp", ValidationOptions(), first_row=1_000)
    assert [(it.row_index, it.ok) for it in items] == [(1_000, True), (1_001, False)]


def test_extra_columns_are_read_only_rows_that_pickle_as_dicts(tmp_path: Path) -> None:
    rows = [
        {"source": f"https://cdn.example.com/{i}.jpg", "album": f"a{i}", "rank": i}
        for i in range(3)
    ]
    rows.append({"source": "ftp://cdn.example.com/bad.jpg", "album": "x", "rank": 9})
    items = load(str(write_manifest(tmp_path / "m.jsonl", rows)), Storage())
    assert [dict(it.extra) for it in items] == [
        {"album": r["album"], "rank": r["rank"]} for r in rows
    ]
    assert items[1].extra == {"album": "a1", "rank": 1} and len(items[1].extra) == 2
    assert repr(items[3].extra) == "{'album': 'x', 'rank': 9}"
    with pytest.raises(TypeError):
        items[0].extra["album"] = "changed"  # type: ignore[index]
    with pytest.raises(KeyError):
        items[0].extra["missing"]
    copied = pickle.loads(pickle.dumps(items[2]))
    assert type(copied.extra) is dict and copied.extra == {"album": "a2", "rank": 2}


def test_plain_rows_take_the_vectorised_path(tmp_path: Path) -> None:
    rows = [{"source": f"https://cdn{i % 3}.example.com/p/{i}.jpg?v=1"} for i in range(50)]
    manifest = write_manifest(tmp_path / "m.csv", rows)
    items = load(str(manifest), Storage())
    assert all(it.ok and it.kind == "url" for it in items)
    assert all(it.location is it.source for it in items)  # the fast path shares the string
    assert items[0].extra == {}
    with pytest.raises(TypeError):
        items[0].extra["x"] = 1


def odd_frame() -> pd.DataFrame:
    """One column per dtype a manifest (or a frame built in code) can hold, missing values too."""
    n = 4
    frame = pd.DataFrame(
        {
            "object": pd.Series(
                [np.int64(1), np.float32(1.5), np.bool_(True), pd.NA], dtype=object
            ),
            "object2": pd.Series(
                [np.datetime64("2024-01-02"), np.timedelta64(5, "s"), decimal.Decimal("1.5"), None],
                dtype=object,
            ),
            "object3": pd.Series([[1, 2], {"a": 1}, np.nan, dt.date(2024, 1, 1)], dtype=object),
            "Int64": pd.array([1, None, 3, 4], dtype="Int64"),
            "boolean": pd.array([True, None, False, True], dtype="boolean"),
            "Float64": pd.array([0.5, None, 1.0, 2.0], dtype="Float64"),
            "string": pd.array(["a", None, "c", "d"], dtype="string"),
            "str": pd.Series(["a", None, "c", "d"], dtype="str"),
            "category": pd.Categorical(["x", "y", None, "x"]),
            "datetime": pd.to_datetime(["2024-01-01", None, "2024-01-03", "2024-01-04"]),
            "datetime_tz": pd.to_datetime(
                ["2024-01-01", None, "2024-01-03", "2024-01-04"], utc=True
            ),
            "timedelta": pd.to_timedelta([1, None, 3, 4], unit="s"),
            "period": pd.period_range("2024-01", periods=n, freq="M"),
            "int": np.arange(n, dtype=np.int64),
            "float": np.array([0.5, np.nan, 1.5, 2.5]),
            "bool": np.array([True, False, True, False]),
            "arrow_int": pd.array([1, None, 3, 4], dtype="int64[pyarrow]"),
            "arrow_list": pd.Series(
                pd.arrays.ArrowExtensionArray(pa.array([[1], None, [2, 3], []]))
            ),
        }
    )
    frame.insert(0, "source", [f"https://cdn.example.com/{i}.jpg" for i in range(n)])
    return frame


@pytest.mark.parametrize("column", list(odd_frame().columns))
def test_column_values_are_the_values_records_hold(column: str) -> None:
    frame = odd_frame()
    expected = [record[column] for record in frame.to_dict(orient="records")]
    got = column_values(frame[column])
    assert [(type(v), repr(v)) for v in got] == [(type(v), repr(v)) for v in expected]


def test_items_from_an_odd_frame_match_row_wise(tmp_path: Path) -> None:
    frame = odd_frame()
    fast = validated_items(frame, str(tmp_path), ValidationOptions())
    slow = items_from_frame(frame)
    for item in slow:
        classify(item, str(tmp_path), ValidationOptions())
    assert [as_tuple(i) for i in fast] == [as_tuple(i) for i in slow]
    assert all(isinstance(i, Item) and i.ok for i in fast)
