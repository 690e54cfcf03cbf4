"""The column-wise manifest path gives exactly the row-wise path's items, keys and errors."""

from __future__ import annotations

import dataclasses
import io
import pickle
import random
import sqlite3
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
from PIL import Image

from mori import keys
from mori.batch.ledger import Ledger, PlannedIntent, Slot, make_slot
from mori.batch.manifest import (
    Item,
    RowError,
    ValidationOptions,
    classify,
    fastpath,
    fingerprint,
    inspect_image,
    items_from_frame,
    keying,
    load,
    read_manifest,
    validated_items,
)
from mori.batch.plan import plan_orders, record_intent, triage
from mori.batch.storage import Storage, parent

from .helpers import write_image, write_manifest

FIELDS = [f.name for f in dataclasses.fields(Item)]

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
QUERIES = ["", "", "?v=1", "?", "?a=b&c=%20d", "?q=#", "?x=1?y=2"]
FRAGMENTS = ["", "", "#frag", "#"]
SCHEMES = ["https", "http", "HTTPS", "Http", "ftp", "gs", "file", "javascript", "c"]  # no s3: I/O
FILE_NAMES = [None, None, None, "", "  ", "given.png", " padded.jpg ", "bad.gif", "no_ext", "é.jpg"]


def random_source(rng: random.Random) -> str:
    """A URL-ish source, mostly plain, often subtly not."""
    roll = rng.random()
    if roll < 0.45:  # plain: the vectorised path
        ext = rng.choice(["jpg", "png", "JPEG", "webp", "tiff", "bmp"])
        query = rng.choice(["", "?v=2", "?a=1&b=%20"])
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


def row_wise(uri: str, options: ValidationOptions) -> list[Item]:
    """The reference: the original one-row-at-a-time path."""
    storage = Storage()
    items = items_from_frame(read_manifest(uri, storage))
    for item in items:
        classify(item, parent(uri), options)
    for item in items:
        fingerprint(item, storage, options)
    first_row: dict[str, int] = {}
    for item in items:
        if not item.ok or item.fingerprint is None:
            continue
        key = keys.image_key(item.fingerprint, options.processing_options)
        if key in first_row:
            item.fail(
                "DUPLICATE_ROW",
                f"same image as row {first_row[key]}; it is processed once, for that row",
            )
            continue
        first_row[key] = item.row_index
        item.image_key = key
    return items


def as_tuple(item: Item) -> tuple[Any, ...]:
    """The item's fields (``repr`` of the extra columns, so NaN equals NaN)."""
    return tuple(
        repr(dict(value)) if name == "extra" else value
        for name, value in ((f, getattr(item, f)) for f in FIELDS)
    )


def assert_same(fast: list[Item], slow: list[Item]) -> None:
    assert len(fast) == len(slow)
    for a, b in zip(fast, slow, strict=True):
        assert as_tuple(a) == as_tuple(b), (a.source, as_tuple(a), as_tuple(b))


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
    plain = fastpath.plain_url_mask(pa.array([str(r["source"]) for r in rows])).to_pylist()
    assert 0.25 < sum(plain) / len(rows) < 0.75  # both paths are well exercised


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
    assert keying.image_keys(fingerprints, options) == [
        keys.image_key(fp, options) for fp in fingerprints
    ]


def reference_plan(ledger: Ledger, orders: list[PlannedIntent], fp: dict[str, str]) -> None:
    """The original ``Ledger.plan``: one transaction per order, every row bound from Python."""
    db = sqlite3.connect(ledger.path, isolation_level=None)
    at = "2000-01-01T00:00:00.000+00:00"
    for key, kind, slots, generation in orders:
        db.execute("BEGIN IMMEDIATE")
        db.execute(
            "INSERT OR IGNORE INTO orders(order_key, kind, generation, status, planned_at,"
            " updated_at) VALUES (?, ?, ?, 'planned', ?, ?)",
            (key, kind, generation, at, at),
        )
        db.executemany(
            "INSERT OR IGNORE INTO order_images VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (key, s.position, s.image_key, s.file_name, s.location, s.width, s.height)
                for s in slots
            ],
        )
        db.executemany(
            "INSERT INTO images(image_key, fingerprint, status, order_key, updated_at)"
            " VALUES (?, ?, 'planned', ?, ?) ON CONFLICT(image_key) DO UPDATE SET"
            " order_key=excluded.order_key, status='planned', updated_at=excluded.updated_at"
            " WHERE images.status = 'planned'",
            [(s.image_key, fp[s.image_key], key, at) for s in slots],
        )
        db.execute("COMMIT")
    db.close()


def dump(ledger: Ledger) -> list[list[tuple[Any, ...]]]:
    """Every table's rows, timestamps left out."""
    return [
        [tuple(r) for r in ledger._query(query)]
        for query in (
            "SELECT * FROM order_images ORDER BY 1, 2",
            "SELECT image_key, fingerprint, status, order_key FROM images ORDER BY 1",
            "SELECT order_key, kind, generation, status FROM orders ORDER BY 1",
        )
    ]


def slot(i: int, key: str, location: str, size: int | None = None) -> Slot:
    return Slot(i, key, f"{key}.jpg", location, size, size)


URL_A = [slot(i, f"a{i}", f"https://h/a{i}.jpg") for i in range(3)]
URL_B = [slot(i, f"b{i}", f"https://h/b{i}.jpg") for i in range(2)]
FILES = [slot(i, f"f{i}", f"/data/f{i}.jpg", 10 + i) for i in range(3)]
FINGERPRINTS = {
    **{s.image_key: "url:" + s.location for s in URL_A + URL_B},
    **{s.image_key: f"sha256:{i:064x}" for i, s in enumerate(FILES)},
}
LONG_URLS = [slot(i, f"l{i}", f"https://h/l{i}.jpg") for i in range(250)]
LONG_FILES = [slot(i, f"m{i}", f"/data/m{i}.jpg", i) for i in range(150)]
FINGERPRINTS.update({s.image_key: "url:" + s.location for s in LONG_URLS})
FINGERPRINTS.update({s.image_key: f"sha256:{i:064x}" for i, s in enumerate(LONG_FILES)})
BULK_CASES: dict[str, list[list[PlannedIntent]]] = {
    "url orders": [[("oa", "url", URL_A, 0), ("ob", "url", URL_B, 0)]],
    "mixed kinds": [[("oa", "url", URL_A, 0), ("of", "upload", FILES, 0), ("ob", "url", URL_B, 0)]],
    "planned again": [
        [("oa", "url", URL_A, 0)],
        [("oa", "url", URL_A, 0), ("ob", "url", URL_B, 0)],
    ],
    "image in two orders": [[("oa", "url", URL_A, 0), ("ox", "url", URL_A[:1], 1)]],
    "image in a copied and a bound order": [
        [("ox", "url", [slot(0, "a0", "https://h/elsewhere.jpg")], 1), ("oa", "url", URL_A, 0)]
    ],
    "image moves to a new order": [[("oa", "url", URL_A, 0)], [("oz", "url", URL_A[::-1], 1)]],
    "fingerprint is not url:location": [
        [("oa", "url", URL_A, 0)],
        [("ow", "url", [slot(0, "w", "https://h/w.jpg")], 0)],
    ],
    "gap in positions": [[("og", "url", [slot(1, "g", "https://h/g.jpg")], 0)]],
    "more than 100 images an order": [
        [("ol", "url", LONG_URLS, 0), ("om", "upload", LONG_FILES, 0), ("oe", "url", [], 0)]
    ],
}


BULK_FINGERPRINTS = {**FINGERPRINTS, "w": "url:https://h/other.jpg", "g": "url:https://h/g.jpg"}


def vouchable(case: str) -> bool:
    """Every url slot of the case has the fingerprint url:<location> (see url_fingerprints)."""
    calls = [order for orders in BULK_CASES[case] for order in orders]
    return all(
        BULK_FINGERPRINTS[s.image_key] == "url:" + s.location
        for _, kind, slots, _ in calls
        if kind == "url"
        for s in slots
    )


@pytest.mark.parametrize(
    ("case", "vouched"),
    [(case, False) for case in BULK_CASES] + [(c, True) for c in BULK_CASES if vouchable(c)],
)
def test_plan_many_matches_the_original_plan(tmp_path: Path, case: str, vouched: bool) -> None:
    fingerprints = given = BULK_FINGERPRINTS
    if vouched:  # url_fingerprints: the url slots' fingerprints are not passed at all
        given = {k: v for k, v in fingerprints.items() if not v.startswith("url:")}
    bulk, reference = Ledger(tmp_path / "bulk.sqlite"), Ledger(tmp_path / "ref.sqlite")
    for n, calls in enumerate(BULK_CASES[case]):
        bulk.plan_many(calls, given, url_fingerprints=vouched)
        reference_plan(reference, calls, fingerprints)
        if n == 0:  # an image processed in between must stay processed
            for ledger in (bulk, reference):
                ledger.image_done("a1", "s3://out/a1.jpg", "0" * 64)
        assert dump(bulk) == dump(reference)


@pytest.mark.parametrize("odd_url_fingerprint", [False, True])
def test_bulk_intent_of_a_manifest(tmp_path: Path, odd_url_fingerprint: bool) -> None:
    rows = [{"source": f"https://cdn.example.com/p/{i}.jpg"} for i in range(450)]
    rows += [{"source": f"images/{i}.jpg"} for i in range(30)]
    for i in range(30):
        write_image(tmp_path / "images" / f"{i}.jpg", seed=i)
    manifest = write_manifest(tmp_path / "m.csv", rows)
    items = load(str(manifest), Storage())
    if odd_url_fingerprint:  # record_intent must not vouch for URL fingerprints, and check
        items[7].fingerprint = "url:https://elsewhere.example.com/x.jpg"
    orders = plan_orders(triage(items, Ledger(tmp_path / "a.sqlite")).new)

    bulk, reference = Ledger(tmp_path / "bulk.sqlite"), Ledger(tmp_path / "ref.sqlite")
    record_intent(orders, items, bulk)
    fingerprints = {it.image_key or "": it.fingerprint or "" for it in items}
    reference_plan(
        reference, [(o.order_key, o.kind, o.slots, o.generation) for o in orders], fingerprints
    )
    assert dump(bulk) == dump(reference)
    assert [o.order_key for o in bulk.open_orders()] == [o.order_key for o in orders]
    assert triage(items, bulk).new == []


def test_make_slot_is_a_slot() -> None:
    made = make_slot(3, "k", "n.jpg", "https://h/n.jpg", 4, 5)
    assert made == Slot(3, "k", "n.jpg", "https://h/n.jpg", 4, 5)
    assert hash(made) == hash(Slot(3, "k", "n.jpg", "https://h/n.jpg", 4, 5))
    assert make_slot(0, "k", "n", "l") == Slot(0, "k", "n", "l")
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.position = 1  # type: ignore[misc]


@pytest.mark.parametrize("nested", [False, True])
def test_bulk_intent_checkpoints_in_the_background(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, nested: bool
) -> None:
    monkeypatch.setattr("mori.batch.ledger._BULK_ROWS", 5)
    ledger = Ledger(tmp_path / "ledger.sqlite")
    if nested:
        with ledger.exclusive():
            ledger.plan_many([("oa", "url", URL_A, 0), ("ob", "url", URL_B, 0)], FINGERPRINTS)
    else:
        ledger.plan_many([("oa", "url", URL_A, 0), ("ob", "url", URL_B, 0)], FINGERPRINTS)
    assert ledger._checkpointer is not None  # the commit left the checkpoint to a thread
    ledger._checkpointer.join()
    assert ledger._query("PRAGMA wal_autocheckpoint")[0][0] == 1000  # restored
    assert not ledger._checkpoint_later
    assert len(ledger.images(s.image_key for s in URL_A + URL_B)) == 5
    ledger.close()


def full_decode_facts(data: bytes) -> tuple[Any, ...]:
    """``inspect_image`` as it was: a full-size decode of every format."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            return ("ok", img.size, img.format)
    except (OSError, SyntaxError, ValueError) as exc:
        return ("INVALID_IMAGE", f"image is damaged or truncated: {exc}")


def jpeg_variants() -> list[bytes]:
    rng = random.Random(9)
    noisy = Image.frombytes("RGB", (120, 90), rng.randbytes(120 * 90 * 3))
    out = []
    for mode, options in (
        ("RGB", {}),
        ("RGB", {"progressive": True}),
        ("RGB", {"subsampling": 0, "quality": 95}),
        ("L", {}),
        ("CMYK", {}),
    ):
        buffer = io.BytesIO()
        noisy.convert(mode).save(buffer, "JPEG", **options)
        out.append(buffer.getvalue())
    return out


@pytest.mark.parametrize("n", range(5))
def test_jpeg_checks_at_reduced_scale_fail_exactly_like_a_full_decode(n: int) -> None:
    data = jpeg_variants()[n]
    rng = random.Random(n)
    damaged = [data]
    damaged += [data[: int(len(data) * f)] for f in (0.2, 0.5, 0.8, 0.95, 0.99, 0.999)]
    for _ in range(40):  # flipped bytes in the entropy-coded data
        b = bytearray(data)
        for _ in range(rng.randrange(1, 6)):
            b[rng.randrange(len(b) // 3, len(b) - 2)] = rng.randrange(256)
        damaged.append(bytes(b))
    for sample in damaged:
        expected = full_decode_facts(sample)
        try:
            facts = inspect_image(sample)
            got: tuple[Any, ...] = ("ok", (facts.width, facts.height), facts.format)
        except RowError as exc:
            got = (exc.code, exc.message)
        assert got == expected
